"""Validation of config values that would otherwise fail late or silently; one-line
`ConfigError`s naming the field and the fix. Method-specific checks live in each method's
`validate` (`ssljax.methods.contract`)."""
from ssljax.config.sections import (ATTENTION_IMPLS, COLOR_JITTER_IMPLS, CROP_SAMPLERS,
                                     INTERPOLATIONS, KMEANS_INPUTS, MODEL_DTYPES, PROBE_HEAD_INITS, PROTOCOLS,
                                     REMAT_POLICIES, RESNET_INITS, VIT_INITS)
from ssljax.errors import ConfigError


def validate_input(input_config):
  """Checks of `config.input` (`sections.input_config`); raises ConfigError."""
  c = input_config
  ratio = tuple(c.crop_ratio)
  checks = [
      ("image_size", c.image_size > 0, "a positive size"),
      ("batch_size", c.batch_size > 0, "a positive batch size"),
      ("num_workers", c.num_workers is None or c.num_workers >= 0,
       "None (one per host core) or a count >= 0 (0: decode in this process)"),
      ("num_threads", c.num_threads >= 1, "a count >= 1"),
      ("crop_pct", 0 < c.crop_pct <= 1, "a fraction in (0, 1] (1: no border cut)"),
      ("interpolation", c.interpolation in INTERPOLATIONS, " or ".join(INTERPOLATIONS)),
      ("crop_sampler", c.crop_sampler in CROP_SAMPLERS, " or ".join(CROP_SAMPLERS)),
      ("resize_antialias", isinstance(c.resize_antialias, bool),
       "True (Pillow's antialiased reduction) or False (tf.image.resize's)"),
      ("canvas_size", c.canvas_size >= c.image_size,
       f"at least input.image_size={c.image_size} (512 keeps ImageNet images whole)"),
      ("crop_ratio", len(ratio) == 2 and 0 < ratio[0] <= ratio[1],
       "(min, max) aspect ratios with 0 < min <= max, e.g. (0.75, 1.333)"),
  ]
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"input.{field}={c[field]!r} is invalid: use {fix}")


def validate(config):
  """Checks of values that would otherwise fail late or silently; raises ConfigError."""
  validate_input(config.input)
  for field, minimum in (("log_every_steps", 1), ("checkpoint_every_steps", 1),
                         ("keep_checkpoints", 1)):
    if config[field] is not None and config[field] < minimum:
      raise ConfigError(f"{field}={config[field]} is below {minimum}: use a value >= {minimum}")
  if config.model.dtype not in MODEL_DTYPES:
    raise ConfigError(f"model.dtype={config.model.dtype!r} is unknown: use one of "
                      f"{', '.join(MODEL_DTYPES)}")
  _check_run_fields(config)
  _check_vit_compute("model", config.model)
  if config.model.get("vit_init", "xavier") not in VIT_INITS:
    raise ConfigError(f"model.vit_init={config.model.vit_init!r} is unknown: use one of "
                      f"{', '.join(VIT_INITS)}")
  if config.model.get("resnet_init", "torchvision") not in RESNET_INITS:
    raise ConfigError(f"model.resnet_init={config.model.resnet_init!r} is unknown: use one of "
                      f"{', '.join(RESNET_INITS)}")
  if config.max_consecutive_skips < 0:
    raise ConfigError(f"max_consecutive_skips={config.max_consecutive_skips} is below 0: use "
                      "a value >= 0 (0 stops at the first non-finite step)")
  _validate_optim_and_durations(config)
  _check_crop_scale("aug.crop_scale", config.aug.crop_scale)
  _check_view_probs(config)
  if config.aug.color_jitter_impl not in COLOR_JITTER_IMPLS:
    raise ConfigError(f"aug.color_jitter_impl={config.aug.color_jitter_impl!r} is invalid: use "
                      + " or ".join(COLOR_JITTER_IMPLS))
  for name, eval_config in config.get("evals", {}).items():
    if "k" in eval_config and "temperatures" in eval_config:
      _check_knn(f"evals.{name}", eval_config)


def _check_run_fields(config):
  """The fields every run type has: gradient accumulation, profiling, W&B."""
  _check_grad_accum(config)
  _check_profile(config)
  _check_wandb(config)


def _check_grad_accum(config):
  if config.get("grad_accum_steps", 1) < 1:
    raise ConfigError(f"grad_accum_steps={config.grad_accum_steps} is below 1: use 1 (no "
                      "accumulation) or more micro-batches")


def _check_profile(config):
  for field in ("steps", "after_steps"):
    value = config.get("profile", {}).get(field, 0)
    if not isinstance(value, int) or value < 0:
      raise ConfigError(f"profile.{field}={value!r} is invalid: use an integer >= 0 (profile."
                        "steps=0 traces nothing)")


def _check_wandb(config):
  c = config.get("wandb") or {}
  for field in ("project", "entity", "name"):
    if not isinstance(c.get(field, ""), str):
      raise ConfigError(f"wandb.{field}={c[field]!r} is invalid: use a string (wandb.project='' "
                        "runs without W&B)")
  tags = c.get("tags", ())
  if isinstance(tags, str) or not all(isinstance(t, str) and 0 < len(t) <= 64 for t in tags):
    raise ConfigError(f"wandb.tags={tags!r} is invalid: use a tuple of strings of 1 to 64 "
                      "characters, e.g. ('mae', 'cifar10')")


def _check_crop_scale(name, scale):
  scale = tuple(scale)
  if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
    raise ConfigError(f"{name}={scale} is invalid: use (min, max) area fractions with "
                      "0 < min <= max <= 1, e.g. (0.2, 1.0)")


def _check_view_probs(config):
  """aug.blur_prob / aug.solarize_prob: a probability, or one per view of the method."""
  method_config = config.get(config.method) or {}
  views = 2 + method_config.get("num_small_crops", 0)  # multi-crop methods add small crops
  for field in ("blur_prob", "solarize_prob"):
    value = config.aug[field]
    probs = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    per_view_ok = not isinstance(value, (tuple, list)) or len(probs) == views
    if not per_view_ok or not all(isinstance(p, (int, float)) and 0 <= p <= 1 for p in probs):
      raise ConfigError(f"aug.{field}={value!r} is invalid: use a probability in [0, 1] for "
                        f"every view or a tuple of {views} (one per view of "
                        f"{config.method or 'the method'}), e.g. (1.0, 0.1)")


def _validate_optim_and_durations(config):
  """The optimizer's values, the run's length and seed, shared by every run type."""
  if not 0 <= config.seed < 2**31:
    raise ConfigError(f"seed={config.seed} is invalid: use an integer in [0, 2**31)")
  for field in ("blr", "lr", "weight_decay", "warmup_init_lr"):
    value = config.optim.get(field)
    if value is not None and not value >= 0:  # NaN fails too
      raise ConfigError(f"optim.{field}={value} is not a number >= 0: use a value >= 0")
  for field in ("b1", "b2", "momentum"):
    value = config.optim.get(field)
    if value is not None and not 0 <= value < 1:
      raise ConfigError(f"optim.{field}={value} is outside [0, 1): use e.g. 0.9")
  clip = config.optim.get("clip_norm")
  if clip is not None and not clip > 0:
    raise ConfigError(f"optim.clip_norm={clip} is not positive (a negative norm would turn the "
                      "step into gradient ascent): use a value > 0, or None for no clipping")
  for field in ("warmup_steps", "warmup_epochs"):
    value = config.optim.get(field)
    if value is not None and value < 0:
      raise ConfigError(f"optim.{field}={value} is negative: use a value >= 0")
  _check_schedule_switches(config.optim)
  for field in ("total_steps", "total_epochs"):
    value = config.get(field)
    if value is not None and value <= 0:
      raise ConfigError(f"{field}={value} is not positive: use a value > 0")


def _check_schedule_switches(optim):
  """The optional schedule and update-order switches (`sections.base_config`)."""
  decay_epochs = tuple(optim.get("step_decay_epochs") or ())
  if any(e <= 0 for e in decay_epochs) or list(decay_epochs) != sorted(decay_epochs):
    raise ConfigError(f"optim.step_decay_epochs={decay_epochs} is invalid: use increasing "
                      "epochs > 0, e.g. (60, 80), or () for the cosine schedule")
  factor = optim.get("step_decay_factor", 0.1)
  if not 0 < factor <= 1:
    raise ConfigError(f"optim.step_decay_factor={factor} is invalid: use a factor in (0, 1]")
  if optim.get("nesterov") and optim.name != "sgd":
    raise ConfigError(f"optim.nesterov=True needs optim.name='sgd' (not {optim.name!r}): set "
                      "optim.nesterov=False")
  if optim.get("lars_lr_after_momentum") and optim.name != "lars":
    raise ConfigError(f"optim.lars_lr_after_momentum=True needs optim.name='lars' (not "
                      f"{optim.name!r}; sgd and adamw apply the lr after momentum already): "
                      "set it False")


def _check_vit_compute(section, fields):
  """`{section}.remat` and `{section}.attention_impl` name a known policy and kernel."""
  remat = fields.get("remat", "none")
  if not (isinstance(remat, bool) or remat in REMAT_POLICIES):
    raise ConfigError(f"{section}.remat={remat!r} is unknown: use one of "
                      f"{', '.join(REMAT_POLICIES)} (True = 'full', False = 'none')")
  impl = fields.get("attention_impl", "auto")
  if impl not in ATTENTION_IMPLS:
    raise ConfigError(f"{section}.attention_impl={impl!r} is unknown: use one of "
                      f"{', '.join(ATTENTION_IMPLS)}")


def _validate_finetune(config):
  f = config.finetune
  _check_vit_compute("finetune", f)
  checks = [
      ("layer_decay", 0 < f.layer_decay <= 1, "a value in (0, 1] (1 turns the decay off)"),
      ("drop_path", 0 <= f.drop_path < 1, "a value in [0, 1)"),
      ("label_smoothing", 0 <= f.label_smoothing < 1, "a value in [0, 1)"),
      ("mixup_alpha", f.mixup_alpha >= 0, "a value >= 0 (0 turns mixup off)"),
      ("cutmix_alpha", f.cutmix_alpha >= 0, "a value >= 0 (0 turns cutmix off)"),
      ("mixup_prob", 0 <= f.mixup_prob <= 1, "a probability in [0, 1]"),
      ("mixup_switch_prob", 0 <= f.mixup_switch_prob <= 1, "a probability in [0, 1]"),
      ("random_erase_prob", 0 <= f.random_erase_prob <= 1, "a probability in [0, 1]"),
      ("rand_augment_ops", f.rand_augment_ops >= 0, "a count >= 0 (0 turns RandAugment off)"),
      ("rand_augment_magnitude", 0 <= f.rand_augment_magnitude <= 10, "a value in [0, 10]"),
      ("pool", f.pool in ("avg", "cls"), "'avg' or 'cls'"),
      ("dtype", f.dtype in MODEL_DTYPES, " or ".join(repr(d) for d in MODEL_DTYPES)),
  ]
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"finetune.{field}={f[field]!r} is invalid: use {fix}")
  _check_run_fields(config)
  accum = config.get("grad_accum_steps", 1)
  group = f.get("mixup_group_size")
  if group is not None and (group < 1 or (config.input.batch_size // accum) % group):
    raise ConfigError(f"finetune.mixup_group_size={group} does not divide the micro-batch of "
                      f"{config.input.batch_size // accum} images: use a divisor of it, or None "
                      "(one group)")
  if config.baseline not in ("", "random_init"):
    raise ConfigError(f"baseline={config.baseline!r} cannot be fine-tuned: use '' (the "
                      "init_from encoder) or 'random_init'")


def validate_probe(config):
  """Checks of an evaluation config (linear probe, kNN, fine-tuning); raises ConfigError."""
  if config.protocol not in PROTOCOLS:
    raise ConfigError(f"protocol={config.protocol!r} is unknown: use one of "
                      f"{', '.join(PROTOCOLS)}")
  section = "finetune" if config.protocol == "finetune" else "probe"
  if section not in config:
    kind = "a fine-tuning config (configs/finetune_*.py)" if section == "finetune" else (
        "a probe config (configs/probe_*.py)")
    raise ConfigError(f"protocol={config.protocol!r} needs {kind}: this config has no "
                      f"{section} section")
  validate_input(config.input)
  for field in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                "keep_checkpoints", "max_consecutive_skips"):
    minimum = 0 if field == "max_consecutive_skips" else 1
    if config[field] is not None and config[field] < minimum:
      raise ConfigError(f"{field}={config[field]} is below {minimum}: use a value >= {minimum}")
  _validate_optim_and_durations(config)
  section_config = config[section]
  _check_crop_scale(f"{section}.crop_scale", section_config.crop_scale)
  head_init = section_config.get("head_init")
  if head_init is not None and head_init not in PROBE_HEAD_INITS:
    raise ConfigError(f"probe.head_init={head_init!r} is unknown: use one of "
                      f"{', '.join(PROBE_HEAD_INITS)}")
  _check_run_fields(config)
  group = section_config.get("bn_group_size")
  if group is not None and section_config.head_norm:
    micro = config.input.batch_size // config.get("grad_accum_steps", 1)
    if group < 2 or micro % group:
      raise ConfigError(f"probe.bn_group_size={group} does not divide the (micro-)batch of "
                        f"{micro} into groups of 2 or more: use a divisor of {micro}, or None "
                        "(BatchNorm over the whole batch)")
  if "knn" in config:
    _check_knn("knn", config.knn)
  if config.get("baseline") == "kmeans":
    _check_kmeans(config)
  if config.protocol == "finetune":
    _validate_finetune(config)


def _check_knn(name, knn_config):
  """k: positive counts; temperatures: positive."""
  ks, temperatures = tuple(knn_config.k), tuple(knn_config.temperatures)
  if knn_config.get("batch_size") is not None and knn_config.batch_size < 1:
    raise ConfigError(f"{name}.batch_size={knn_config.batch_size} is invalid: use a batch "
                      "size >= 1")
  if not ks or any(int(k) != k or k < 1 for k in ks):
    raise ConfigError(f"{name}.k={ks} is invalid: use neighbour counts >= 1, e.g. (20, 200)")
  if not temperatures or any(t <= 0 for t in temperatures):
    raise ConfigError(f"{name}.temperatures={temperatures} is invalid: use values > 0, e.g. "
                      "(0.07,)")


def _check_kmeans(config):
  """probe.kmeans_*: the k-means floor's input, sizes and iterations (`evals.kmeans`)."""
  p, size = config.probe, config.input.image_size
  if p.kmeans_input not in KMEANS_INPUTS:
    raise ConfigError(f"probe.kmeans_input={p.kmeans_input!r} is unknown: use "
                      + " or ".join(KMEANS_INPUTS))
  count = lambda v, low: isinstance(v, int) and v >= low
  checks = [("kmeans_k", count(p.kmeans_k, 1), "a number of centroids >= 1, e.g. 256"),
            ("kmeans_iterations", count(p.kmeans_iterations, 1), "a count >= 1, e.g. 20"),
            ("kmeans_fit_examples", count(p.kmeans_fit_examples, max(p.kmeans_k, 1)),
             f"at least probe.kmeans_k={p.kmeans_k} patches or images to fit on"),
            ("kmeans_patch_size", count(p.kmeans_patch_size, 1) and p.kmeans_patch_size <= size,
             f"a patch side in [1, input.image_size={size}], e.g. 6")]
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"probe.{field}={p[field]!r} is invalid: use {fix}")
