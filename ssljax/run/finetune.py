"""Fine-tuning run type (`protocol="finetune"`): end-to-end fine-tuning for classification of
the encoder a method's `finetune_encoder` names: a ViT (MAE's encoder, a Siamese ViT backbone)
or a ResNet (the Siamese methods' backbone).

  python -m ssljax.main --config=configs/finetune_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_finetune

MAE's recipe (He et al. 2022, appendix A.3): the encoder's weights (the decoder is dropped) under
a fresh head (`models.classifier`, average pooling + LayerNorm by default), AdamW with
layer-wise lr decay (`ssljax.run.layer_decay`), drop path, and on device per step: random resized
crop + flip, RandAugment (`data.randaugment`), normalisation, random erasing, then Mixup/CutMix
with label smoothing over the batch (`data.mixup`); soft-target cross-entropy. Top-1 on the test
split every `eval_every` and at the end (`finetune/top1`); the loop gives it exact resume,
SIGTERM saves and the non-finite guard as it does every run type.
`baseline="random_init"` fine-tunes the same architecture from random init with the same budget.
Writes `results.json` like the other evaluation runs.

A ResNet (`models.classifier.ResNetClassifier`): the pre-trained backbone, its parameters and
BatchNorm statistics loaded, under a zero-initialised linear head. BatchNorm normalises with
the batch's statistics in training, over the whole (micro-)batch whatever grouping the
pre-training used, and updates the running statistics the evaluations use. Its recipe is
SimCLR's (`recipes.finetune_resnet`, `configs/finetune_cifar10.py:recipe=resnet`); layer decay,
drop path and a learned position embedding are ViT-only and refused for a ResNet (`VIT_ONLY`);
`finetune.pool`, `remat` and `attention_impl` describe the ViT and a ResNet ignores them (it
has one pooling, global average, and no attention).
"""
import logging

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from ssljax import methods
from ssljax.config import durations, loading, validation
from ssljax.data import augment, mixup, pipeline, randaugment, random_erasing, sources
from ssljax.errors import ConfigError
from ssljax.evals import run_record, top1
from ssljax.models import attention, classifier
from ssljax.run import layer_decay, optim
from ssljax.run.plan import Plan
from ssljax.runtime import pretrained, sharding

NAME = "fine-tuning"
log = logging.getLogger("ssljax")


validate = validation.validate_probe


def _pretraining(config, replicated):
  """(pre-training config, its variables or None for random init, description)."""
  if config.init_from:
    pre_config, variables, step_dir = pretrained.load(config.init_from, replicated)
    description = f"encoder of {step_dir}"
  elif config.baseline == "random_init" and config.encoder_config:
    pre_config, variables, description = loading.load(config.encoder_config), None, ""
  else:
    raise ConfigError("init_from is not set: pass --config.init_from=PRETRAINING_WORKDIR (or "
                      "baseline=random_init with encoder_config)")
  if methods.get(pre_config.method).finetune_encoder is None:
    raise ConfigError(f"fine-tuning takes an encoder a method names with finetune_encoder (a "
                      f"ViT or a ResNet), and {pre_config.method} names none: evaluate "
                      f"{pre_config.method} with protocol=linear_probe or knn")
  if config.baseline == "random_init":  # the same label as the probes' random-init rows
    return pre_config, None, f"{pre_config.method} encoder at random init"
  return pre_config, variables, f"{pre_config.method} {description}"


def pretrained_encoder(variables, part):
  """{"params": ..., "batch_stats": ... if any} of the encoder under `part` of a pre-training
  checkpoint's `variables`."""
  if part not in variables["params"]:
    raise ConfigError(f"the checkpoint has no params/{part}, the encoder its method names: "
                      "pass the pre-training workdir of that method")
  encoder = {"params": variables["params"][part]}
  if part in variables.get("batch_stats", {}):
    encoder["batch_stats"] = variables["batch_stats"][part]
  return encoder


# Classifier leaves a pre-training checkpoint need not have: a learned `pos_embed` keeps its
# initialisation, the fixed sin-cos table the encoder was pre-trained with.
KEEP_INIT = ("pos_embed",)


def load_encoder(params, encoder_params, name="encoder"):
  """`params` (or batch stats) with every leaf under `name` replaced by the pre-trained one of
  the same path in `encoder_params`.

  Pre-trained leaves the classifier does not use (the final `norm` under average pooling, a
  `mask_token`) are left out; a classifier leaf missing from the checkpoint (other than those
  in `KEEP_INIT`), or of another shape, is an error naming it.
  """
  wanted = traverse_util.flatten_dict(params[name], sep="/")
  given = traverse_util.flatten_dict(encoder_params, sep="/")
  given = dict({leaf: wanted[leaf] for leaf in KEEP_INIT if leaf in wanted}, **given)
  for leaf_name, leaf in wanted.items():
    if leaf_name not in given:
      raise ConfigError(f"the checkpoint's encoder has no {name}/{leaf_name}: it was "
                        "pre-trained with another architecture")
    if tuple(given[leaf_name].shape) != tuple(leaf.shape):
      raise ConfigError(f"{name}/{leaf_name} has shape {tuple(given[leaf_name].shape)} in the "
                        f"checkpoint but {tuple(leaf.shape)} here: fine-tune with the "
                        "pre-training model")
  loaded = {leaf_name: jnp.asarray(given[leaf_name], leaf.dtype)
            for leaf_name, leaf in wanted.items()}
  unused = sorted(set(given) - set(wanted))
  if unused:
    log.info("pre-trained encoder leaves not used by the classifier: %s", ", ".join(unused))
  return dict(params, **{name: traverse_util.unflatten_dict(loaded, sep="/")})


def start_from(encoder, name):
  """state -> state with the classifier's encoder `name` (params, and batch stats where the
  classifier has them) replaced by the pre-trained `encoder` (`pretrained_encoder`)."""
  def start(state):
    model_state = state.model_state
    if "batch_stats" in model_state:
      model_state = dict(model_state, batch_stats=load_encoder(
          model_state["batch_stats"], encoder["batch_stats"], name))
    return state.replace(params=load_encoder(state.params, encoder["params"], name),
                         model_state=model_state)
  return start


# Fine-tuning fields a ResNet has no use for, and the values that turn them off: layer decay
# ranks a ViT's blocks by depth, drop path drops its residual branches (ssljax's ResNet has no
# stochastic depth), the position embedding is the ViT's.
VIT_ONLY = {"layer_decay": 1.0, "drop_path": 0.0, "learned_pos_embed": False}


def check_resnet_fields(config, method):
  for field, off in VIT_ONLY.items():
    if config.finetune[field] != off:
      raise ConfigError(f"finetune.{field}={config.finetune[field]!r} applies to ViT encoders "
                        f"only and the {method} encoder is a ResNet: set "
                        f"--config.finetune.{field}={off}, or take the ResNet recipe "
                        "configs/finetune_cifar10.py:recipe=resnet")


def build_classifier(config, pre_config, spec, num_classes, size):
  """(classifier of `num_classes` around the encoder `spec`, the name of its encoder part)."""
  dtype = jnp.dtype(config.finetune.dtype)
  if spec["kind"] == "resnet":
    check_resnet_fields(config, pre_config.method)
    backbone = spec["module"].clone(dtype=dtype, bn_group_size=None)
    return classifier.ResNetClassifier(backbone, num_classes), "backbone"
  vit_spec = spec["vit"]
  if size % vit_spec["patch_size"]:
    raise ConfigError(f"input.image_size={size} is not divisible by the encoder's patch size "
                      f"{vit_spec['patch_size']}: use a multiple of it")
  impl = config.finetune.get("attention_impl", "auto")
  attention.require_runnable("finetune.attention_impl", impl, config.finetune.dtype,
                             vit_spec["width"] // vit_spec["num_heads"])
  return classifier.ViTClassifier(vit_spec, num_classes, pool=config.finetune.pool,
                                  drop_path=config.finetune.drop_path, dtype=dtype,
                                  remat=config.finetune.remat, attention_impl=impl,
                                  learned_pos_embed=config.finetune.learned_pos_embed), "encoder"


def train_view(config, key, image, size, extent=None):
  """uint8-valued float [H, W, 3] (the top-left `extent` of it) -> normalised float
  [size, size, 3] (crop, flip, RandAugment, normalisation, random erasing)."""
  f = config.finetune
  crop_key, ra_key, erase_key = jax.random.split(key, 3)
  x = augment.crop_flip(crop_key, image, size, crop_scale=tuple(f.crop_scale), flip=f.flip,
                        extent=extent, interpolation=config.input.interpolation,
                        ratio=tuple(config.input.crop_ratio)) / 255.0
  if f.rand_augment_ops:
    x = randaugment.rand_augment(ra_key, jnp.clip(x, 0.0, 1.0), f.rand_augment_ops,
                                 f.rand_augment_magnitude, f.rand_augment_magnitude_std)
  x = augment.standardize(x)
  return random_erasing.random_erase(erase_key, x, f.random_erase_prob)


def train_views(config, key, batch, size):
  """uint8-valued batch["image"] [B, H, W, 3] -> normalised float views [B, size, size, 3],
  one key per example: for a micro-batch (gradient accumulation) the key its examples have in
  the whole batch, so accumulating changes no example's view."""
  images = batch["image"]
  micro = augment.micro_batch(batch, config)
  keys = augment.example_keys(key, images.shape[0], micro.get("index"), micro.get("total"))
  return augment.per_example(lambda k, x, ext: train_view(config, k, x, size, ext), keys,
                             images.astype(jnp.float32), batch.get("extent"))


def micro_batch_key(key, batch):
  """`key` for a whole batch; for a micro-batch, a key of its own (folded with its first
  example's index), so micro-batches draw different mixes and drop paths."""
  if "example_index" not in batch:
    return key
  return jax.random.fold_in(key, batch["example_index"][0])


def objective(config, model, num_classes, size):
  """(params, model_state, frozen, batch, rng) -> (loss, (model_state, metrics)): on device,
  per-example views, Mixup/CutMix over groups of the batch, soft-target cross-entropy with drop
  path."""
  f = config.finetune

  def loss_fn(params, model_state, frozen, batch, rng):
    del frozen
    aug_key, mix_key, drop_key = jax.random.split(rng, 3)
    views = train_views(config, aug_key, batch, size)
    mix_key, drop_key = (micro_batch_key(k, batch) for k in (mix_key, drop_key))
    views, targets, _ = mixup.mix_batch(
        mix_key, views, batch["label"], num_classes, mixup_alpha=f.mixup_alpha,
        cutmix_alpha=f.cutmix_alpha, prob=f.mixup_prob, switch_prob=f.mixup_switch_prob,
        smoothing=f.label_smoothing, group_size=f.mixup_group_size)
    if "batch_stats" in model_state:  # a ResNet: BatchNorm on this batch, running stats updated
      logits, model_state = model.apply({"params": params, **model_state}, views, train=True,
                                        mutable=["batch_stats"])
    else:
      logits = model.apply({"params": params}, views, train=True, rngs={"dropout": drop_key})
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    train_top1 = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
    return loss, (model_state, {"train_top1": train_top1})

  return loss_fn


def plan(config, mesh):
  train_source, test_source, num_classes = run_record.splits(config, "finetune")
  test_images, test_labels = sources.labelled_arrays(test_source)
  pre_config, checkpoint, description = _pretraining(config, sharding.replicated(mesh))
  size, batch_size = config.input.image_size, config.input.batch_size
  spec = methods.get(pre_config.method).finetune_encoder(pre_config)
  model, name = build_classifier(config, pre_config, spec, num_classes, size)
  schedule = durations.schedule(config, len(train_source))
  tx, learning_rate = optim.make(config.optim, batch_size, schedule.total_steps,
                                 schedule.warmup_steps)
  if spec["kind"] == "vit":
    tx = optax.chain(tx, layer_decay.scale_by_layer(spec["vit"]["depth"],
                                                    config.finetune.layer_decay))

  def init(key):
    initial = dict(model.init(key, jnp.zeros((1, size, size, 3))))
    return initial.pop("params"), initial

  def logits(variables, images):
    return model.apply(variables, augment.eval_view(images, size), train=False)

  return Plan(
      name=NAME, source=train_source, batch_size=batch_size, schedule=schedule,
      data=pipeline.from_config(train_source, config),
      init=init, objective=objective(config, model, num_classes, size), tx=tx,
      learning_rate=learning_rate,
      start=(lambda state: state) if checkpoint is None else start_from(
          pretrained_encoder(checkpoint, spec["part"]), name),
      evaluators={"finetune": top1.Top1Evaluator(logits, test_images, test_labels,
                                                 config.finetune.eval_batch_size, mesh,
                                                 schedule.eval_every_steps)},
      description=f"the {description} ({num_classes} classes)",
      record=dict(run_record.base_record(
          config, description, config.finetune.pool if name == "encoder" else "backbone",
          train_source, test_source),
                  layer_decay=config.finetune.layer_decay),
      result=lambda evals: {"metric": "top1", "value": evals["finetune/top1"]})
