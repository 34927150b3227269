"""Config helpers: "file.py:arg" parsing, durations in steps or epochs, validation.

Configs are `ml_collections.ConfigDict`s from `get_config(arg)`; `arg` is the text after the
colon of `--config=configs/x.py:runlocal,batch=64` and is parsed by `parse_arg`.
"""
import importlib.util
import os

import ml_collections
from ml_collections.config_dict import placeholder

from ssljax.errors import ConfigError

MODEL_DTYPES = ("float32", "bfloat16", "float16")
CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "configs")


def parse_arg(arg, **defaults):
  """"runlocal,size=B/16" -> ConfigDict(runlocal=True, size="B/16", **other defaults).

  Flags are `name` (True) or `name=value`; values are cast to the type of their default.
  Unknown names are an error.
  """
  result = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    name, _, value = item.partition("=")
    if name not in result:
      raise ConfigError(f"config argument {name!r} is unknown: use one of "
                        f"{', '.join(sorted(result)) or '(none)'}")
    default = result[name]
    if not value:
      value = True
    elif isinstance(default, bool):
      value = value.lower() in ("1", "true", "yes")
    elif default is not None:
      value = type(default)(value)
    result[name] = value
  return ml_collections.ConfigDict(result)


def set_field(config, path, value):
  """Sets the field at dotted `path` ("input.batch_size") of `config`; unknown names raise."""
  *sections, key = path.split(".")
  node = config
  for section in sections:
    node = node[section]
  if key not in node:
    raise AttributeError(f"'{key}'")
  node[key] = value


def load(spec):
  """"simsiam_cifar10:cpu" or "path/to/x.py:arg" -> the locked config of that file.

  A bare name is looked up in the repository's `configs/` directory.
  """
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    path = os.path.join(CONFIGS_DIR, path + ".py")
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} does not exist: pass an existing configs/*.py")
  module_spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def steps(config, name, steps_per_epoch, default=None):
  """Duration `name` in steps, from `{name}_steps` or `{name}_epochs` of `config`."""
  num_steps = config.get(f"{name}_steps")
  epochs = config.get(f"{name}_epochs")
  if num_steps is not None and epochs is not None:
    raise ConfigError(f"both {name}_steps={num_steps} and {name}_epochs={epochs} are set: "
                      "set only one (the other to None)")
  if num_steps is not None:
    return int(num_steps)
  if epochs is not None:
    return int(round(epochs * steps_per_epoch))
  if default is None:
    raise ConfigError(f"neither {name}_steps nor {name}_epochs is set: set one")
  return default


def changed_fields(before, after, prefix=""):
  """["model.width: 64 -> 32", ...] for the leaves that differ between two config dicts."""
  changes = []
  for key in sorted(set(before) | set(after)):
    old, new = before.get(key), after.get(key)
    if isinstance(old, dict) and isinstance(new, dict):
      changes += changed_fields(old, new, f"{prefix}{key}.")
    elif isinstance(old, dict) or isinstance(new, dict):
      if old != new:
        changes.append(f"{prefix}{key}: {'added' if old is None else 'removed'}")
    elif old != new:
      changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
  return changes


def validate(config):
  """Checks of values that would otherwise fail late or silently; raises ConfigError."""
  size = config.input.image_size
  if size <= 0:
    raise ConfigError(f"input.image_size={size} must be positive")
  if config.input.batch_size <= 0:
    raise ConfigError(f"input.batch_size={config.input.batch_size} must be positive")
  for field, minimum in (("log_every_steps", 1), ("checkpoint_every_steps", 1),
                         ("keep_checkpoints", 1)):
    if config[field] < minimum:
      raise ConfigError(f"{field}={config[field]} is below {minimum}: use a value >= {minimum}")
  if config.model.dtype not in MODEL_DTYPES:
    raise ConfigError(f"model.dtype={config.model.dtype!r} is unknown: use one of "
                      f"{', '.join(MODEL_DTYPES)}")
  if config.grad_accum_steps < 1:
    raise ConfigError(f"grad_accum_steps={config.grad_accum_steps} is below 1: use 1 (no "
                      "accumulation) or more micro-batches")
  if config.max_consecutive_skips < 0:
    raise ConfigError(f"max_consecutive_skips={config.max_consecutive_skips} is below 0: use "
                      "a value >= 0 (0 stops at the first non-finite step)")
  if "mae" in config:
    from ssljax.models import vit  # pylint: disable=g-import-not-at-top
    try:
      spec = vit.spec_from_config(config.model)
    except ValueError as e:
      raise ConfigError(f"model.variant: {e}") from None
    patch = spec["patch_size"]
    if spec["width"] % spec["num_heads"]:
      raise ConfigError(f"model width {spec['width']} is not divisible by num_heads "
                        f"{spec['num_heads']}: change model.num_heads")
    if size % patch:
      raise ConfigError(f"input.image_size {size} is not divisible by patch_size {patch}: "
                        "change input.image_size or model.variant")
    ratio = config.mae.mask_ratio
    if not 0 <= ratio < 1:
      raise ConfigError(f"mae.mask_ratio={ratio} is outside [0, 1): use e.g. 0.75")
  for field in ("blr", "lr", "weight_decay"):
    value = config.optim.get(field)
    if value is not None and value < 0:
      raise ConfigError(f"optim.{field}={value} is negative: use a value >= 0")


def base_config():
  """Trainer fields every recipe has; recipes fill in method, model, input and durations."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = ""
  c.total_steps = placeholder(int)  # optional fields are typed, so the CLI can set them
  c.total_epochs = placeholder(float)
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3
  # Async saves overlap training; a save still being written when the process dies is lost
  # with it. False: every save is final before the next step (a crash loses < one interval).
  c.checkpoint_async = True
  # A step with a non-finite loss or gradient leaves the state as it was (counted in
  # `skipped_steps`); this many in a row stop the run. 0 stops at the first.
  c.max_consecutive_skips = 5
  # Gradient accumulation: the batch runs as this many micro-batches, one update (less memory).
  c.grad_accum_steps = 1

  c.input = ml_collections.ConfigDict()
  c.input.source = "digits"  # digits | npz | tfds | image_folder
  c.input.name = ""  # TFDS dataset name
  c.input.data_dir = placeholder(str)
  c.input.split = "train"
  c.input.image_size = 32
  c.input.batch_size = 256
  c.input.num_threads = 4
  c.input.corrupt_images = "skip"  # image_folder: skip (log, count, use the next) | fail

  c.aug = ml_collections.ConfigDict()
  c.aug.crop = True
  c.aug.crop_scale = (0.2, 1.0)
  c.aug.flip = True
  c.aug.color_jitter = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
  c.aug.color_jitter_prob = 0.0
  c.aug.grayscale_prob = 0.0
  c.aug.blur_prob = 0.0

  c.model = ml_collections.ConfigDict()
  c.model.variant = "B/16"
  c.model.width = placeholder(int)  # width/depth/num_heads/mlp_dim override the variant
  c.model.depth = placeholder(int)
  c.model.num_heads = placeholder(int)
  c.model.mlp_dim = placeholder(int)
  c.model.dtype = "float32"
  c.model.remat = False
  c.model.resnet_width = 64  # ResNet base width (64 in the papers; smaller for CPU runs)
  c.model.cifar_stem = False  # ResNet 3x3 stride-1 stem without max-pool for 32x32 images

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.blr = 1.5e-4  # peak lr = blr * batch_size / 256 unless optim.lr is set
  c.optim.lr = placeholder(float)
  c.optim.b1 = 0.9
  c.optim.b2 = 0.95
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.05
  c.optim.wd_exclude = r"(^|/)(cls_token|mask_token|pos_embed)$"
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = placeholder(float)
  c.optim.min_lr = 0.0
  c.optim.clip_norm = placeholder(float)
  c.optim.decay_1d_params = False  # also decay biases and norm parameters
  c.optim.frozen_regex = placeholder(str)  # parameters that never move
  c.optim.fixed_lr_regex = placeholder(str)  # parameters kept at the constant peak lr

  # fsdp > 1: a data x fsdp mesh with the large state arrays split over fsdp (ssljax.sharding).
  c.mesh = ml_collections.ConfigDict(dict(fsdp=1, fsdp_min_size=2**16))

  c.evals = ml_collections.ConfigDict()
  # A linear layer on stop-gradient encoder features, trained alongside (ssljax.online_probe).
  c.online_probe = ml_collections.ConfigDict(dict(enabled=False, feature="cls",
                                                  num_classes=10, lr=1e-3))
  return c


PROTOCOLS = ("linear_probe", "knn", "finetune")


def _evaluation_run_config(protocol):
  """Fields every evaluation run (`ssljax.runs`) has: encoder, data, schedule, I/O."""
  c = ml_collections.ConfigDict()
  c.protocol = protocol
  c.init_from = ""  # pre-training workdir, its checkpoints/ or checkpoints/N
  c.baseline = ""  # "" (the init_from encoder) | random_init | pixels | pca
  c.encoder_config = ""  # architecture for random_init without init_from, e.g. "mae_cifar10"
  c.seed = 0
  c.total_steps = placeholder(int)
  c.total_epochs = placeholder(float)
  c.log_every_steps = 50
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 2
  c.checkpoint_async = True

  c.input = ml_collections.ConfigDict()
  c.input.source = "digits"
  c.input.name = ""
  c.input.data_dir = placeholder(str)
  c.input.split = "train"
  c.input.image_size = 32  # pixels/pca baselines; an encoder uses its own pre-training size
  c.input.batch_size = 256
  c.input.num_threads = 4
  c.input.corrupt_images = "skip"
  return c


def probe_base_config():
  """Fields of a linear probe or kNN run (`ssljax.linear_probe`); recipes set the values."""
  c = _evaluation_run_config("linear_probe")  # linear_probe | knn
  c.probe = ml_collections.ConfigDict()
  c.probe.feature = "cls"  # MAE: cls | patch_mean; SimSiam: backbone
  c.probe.head_norm = True  # BatchNorm without affine before the linear layer (MAE)
  c.probe.augment = True  # random crop + flip on device every step (else cached features)
  c.probe.crop_scale = (0.08, 1.0)
  c.probe.test_split = "test"
  c.probe.eval_batch_size = 256
  c.probe.pca_dims = 256
  c.probe.pca_fit_examples = 10000

  c.knn = ml_collections.ConfigDict()
  c.knn.k = (20, 200)
  c.knn.temperatures = (0.07, 0.1)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "lars"
  c.optim.blr = 0.1
  c.optim.lr = placeholder(float)
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.0
  c.optim.wd_exclude = ""
  c.optim.decay_1d_params = False
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = placeholder(float)
  c.optim.min_lr = 0.0
  return c


def finetune_base_config():
  """Fields of a fine-tuning run (`ssljax.finetune`): MAE's ViT-B recipe (He et al. 2022,
  appendix A.3, Table 9) at batch 1024; `recipes.finetune` adapts it per model."""
  c = _evaluation_run_config("finetune")
  c.total_epochs = 100.0
  c.max_consecutive_skips = 10  # non-finite steps in a row before the run stops
  c.input.batch_size = 1024
  c.finetune = ml_collections.ConfigDict()
  c.finetune.pool = "avg"  # avg (mean of patch tokens, then LayerNorm) | cls
  c.finetune.layer_decay = 0.65  # lr of layer l: lr * layer_decay ** (depth + 1 - l)
  c.finetune.drop_path = 0.1
  c.finetune.label_smoothing = 0.1
  c.finetune.mixup_alpha = 0.8
  c.finetune.cutmix_alpha = 1.0
  c.finetune.mixup_prob = 1.0
  c.finetune.mixup_switch_prob = 0.5
  c.finetune.crop_scale = (0.08, 1.0)
  c.finetune.flip = True
  c.finetune.rand_augment_ops = 2  # 0 turns RandAugment off
  c.finetune.rand_augment_magnitude = 9.0
  c.finetune.rand_augment_magnitude_std = 0.5
  c.finetune.random_erase_prob = 0.25
  c.finetune.dtype = "float32"  # compute dtype; parameters stay float32
  c.finetune.remat = False
  c.finetune.test_split = "test"
  c.finetune.eval_batch_size = 256

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.blr = 5e-4
  c.optim.lr = placeholder(float)
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.weight_decay = 0.05
  c.optim.wd_exclude = "cls_token|mask_token|pos_embed"
  c.optim.decay_1d_params = False
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = 5.0
  c.optim.min_lr = 1e-6
  c.optim.clip_norm = placeholder(float)
  return c


def _validate_finetune(config):
  f = config.finetune
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
  if config.input.batch_size <= 0:
    raise ConfigError(f"input.batch_size={config.input.batch_size} must be positive")
  for field in ("log_every_steps", "eval_every_steps", "checkpoint_every_steps",
                "keep_checkpoints"):
    if config[field] < 1:
      raise ConfigError(f"{field}={config[field]} is below 1: use a value >= 1")
  for field in ("blr", "lr", "weight_decay"):
    value = config.optim.get(field)
    if value is not None and value < 0:
      raise ConfigError(f"optim.{field}={value} is negative: use a value >= 0")
  if config.protocol == "finetune":
    _validate_finetune(config)


def knn_eval_config(every_steps, *, test_split="test", feature="patch_mean", batch_size=256,
                    max_train_examples=None, max_test_examples=None):
  """`config.evals.knn`: weighted kNN top-1 (k 20 and 200, temperature 0.07)."""
  return ml_collections.ConfigDict(dict(
      type="knn", every_steps=every_steps, train_split="train", test_split=test_split,
      feature=feature, k=(20, 200), temperature=0.07, batch_size=batch_size,
      max_train_examples=placeholder(int) if max_train_examples is None else max_train_examples,
      max_test_examples=placeholder(int) if max_test_examples is None else max_test_examples,
      random_init_baseline=False))
