"""End-to-end fine-tuning of a pre-trained MAE encoder for classification (`protocol="finetune"`).

  python -m ssljax.main --config=configs/finetune_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_finetune

MAE's recipe (He et al. 2022, appendix A.3): the encoder's weights (the decoder is dropped) under
a fresh head (`models.classifier`, average pooling + LayerNorm by default), AdamW with
layer-wise lr decay (`ssljax.layer_decay`), drop path, and on device per step: random resized
crop + flip, RandAugment (`data.randaugment`), normalisation, random erasing, then Mixup/CutMix
with label smoothing over the batch (`data.mixup`); soft-target cross-entropy. Top-1 on the test
split every `eval_every_steps` and at the end; checkpoints resume exactly; SIGTERM saves and
stops at the next step (as pre-training does); a non-finite loss or gradient skips the update
(counted) and `max_consecutive_skips` in a row stop the run.
`baseline="random_init"` fine-tunes the same architecture from random init with the same budget.
Writes `results.json` like the other evaluation runs.
"""
import logging
import time
from typing import Any

import flax
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax import (checkpoint, config_lib, layer_decay, metrics, nonfinite, optim, preemption,
                    pretrained, run_record, sharding)
from ssljax.data import augment, mixup, pipeline, randaugment, random_erasing, sources
from ssljax.errors import ConfigError
from ssljax.models import classifier, vit

log = logging.getLogger("ssljax")


@flax.struct.dataclass
class FinetuneState:
  step: jax.Array
  params: Any  # {"encoder", "fc_norm" (avg pooling), "head"}
  opt_state: Any
  skipped_steps: jax.Array  # [2] int32: all skipped updates, and the current run of them


def _pretraining(config, replicated):
  """(pre-training config, its encoder params or None for random init, description)."""
  if config.init_from:
    pre_config, variables, step_dir = pretrained.load(config.init_from, replicated)
    encoder_params, description = variables["params"].get("encoder"), f"encoder of {step_dir}"
  elif config.baseline == "random_init" and config.encoder_config:
    pre_config, encoder_params, description = config_lib.load(config.encoder_config), None, ""
  else:
    raise ConfigError("init_from is not set: pass --config.init_from=PRETRAINING_WORKDIR (or "
                      "baseline=random_init with encoder_config)")
  if pre_config.method != "mae":
    raise ConfigError(f"fine-tuning takes a ViT encoder (method mae), not {pre_config.method}: "
                      f"evaluate {pre_config.method} with protocol=linear_probe or knn, as its "
                      "paper does")
  if config.baseline == "random_init":  # the same label as the probes' random-init rows
    return pre_config, None, f"{pre_config.method} encoder at random init"
  return pre_config, encoder_params, f"{pre_config.method} {description}"


def load_encoder(params, encoder_params):
  """`params` with every `encoder` leaf replaced by the pre-trained one of the same name.

  Pre-trained leaves the classifier does not use (the final `norm` under average pooling, a
  `mask_token`) are left out; a classifier leaf missing from the checkpoint, or of another
  shape, is an error naming it.
  """
  wanted = traverse_util.flatten_dict(params["encoder"], sep="/")
  given = traverse_util.flatten_dict(encoder_params, sep="/")
  for name, leaf in wanted.items():
    if name not in given:
      raise ConfigError(f"the checkpoint's encoder has no parameter encoder/{name}: it was "
                        "pre-trained with another architecture")
    if tuple(given[name].shape) != tuple(leaf.shape):
      raise ConfigError(f"encoder/{name} has shape {tuple(given[name].shape)} in the checkpoint "
                        f"but {tuple(leaf.shape)} here: fine-tune with the pre-training model")
  loaded = {name: jnp.asarray(given[name], leaf.dtype) for name, leaf in wanted.items()}
  unused = sorted(set(given) - set(wanted))
  if unused:
    log.info("pre-trained encoder parameters not used by the classifier: %s", ", ".join(unused))
  return dict(params, encoder=traverse_util.unflatten_dict(loaded, sep="/"))


def train_view(config, key, image, size):
  """uint8-valued float [H, W, 3] -> normalised float [size, size, 3] (crop, flip, RandAugment,
  normalisation, random erasing)."""
  f = config.finetune
  crop_key, ra_key, erase_key = jax.random.split(key, 3)
  x = augment.crop_flip(crop_key, image, size, crop_scale=tuple(f.crop_scale),
                        flip=f.flip) / 255.0
  if f.rand_augment_ops:
    x = randaugment.rand_augment(ra_key, jnp.clip(x, 0.0, 1.0), f.rand_augment_ops,
                                 f.rand_augment_magnitude, f.rand_augment_magnitude_std)
  x = augment.standardize(x)
  return random_erasing.random_erase(erase_key, x, f.random_erase_prob)


def make_train_step(config, model, tx, learning_rate, num_classes, size):
  """(state, images uint8 [B, H, W, 3], labels [B]) -> (state, metrics); key fold_in(seed, step)."""
  f = config.finetune
  base_key = jax.random.fold_in(jax.random.key(config.seed), 1)

  def train_step(state, images, labels):
    aug_key, mix_key, drop_key = jax.random.split(jax.random.fold_in(base_key, state.step), 3)
    views = jax.vmap(lambda k, x: train_view(config, k, x, size))(
        jax.random.split(aug_key, images.shape[0]), images.astype(jnp.float32))
    views, targets, _ = mixup.mix_batch(
        mix_key, views, labels, num_classes, mixup_alpha=f.mixup_alpha,
        cutmix_alpha=f.cutmix_alpha, prob=f.mixup_prob, switch_prob=f.mixup_switch_prob,
        smoothing=f.label_smoothing)

    def loss_fn(params):
      logits = model.apply({"params": params}, views, train=True, rngs={"dropout": drop_key})
      return optax.softmax_cross_entropy(logits, targets).mean(), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    (params, opt_state), skipped, grad_norm = nonfinite.guard_update(
        loss, grads, (params, opt_state), (state.params, state.opt_state), state.skipped_steps)
    step_metrics = {"loss": loss, "grad_norm": grad_norm, "learning_rate": learning_rate(
        state.step), "train_top1": jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1)),
                    "skipped_steps": skipped[0], "consecutive_skips": skipped[1]}
    return FinetuneState(state.step + 1, params, opt_state, skipped), step_metrics

  return train_step


def run(config, workdir, *, devices=None):
  """Fine-tunes the encoder `config` names; returns a summary like `train`'s."""
  start_time = time.time()
  evaluation = run_record.start(config, workdir, devices, config.finetune.test_split)
  mesh, writer, num_classes = evaluation.mesh, evaluation.writer, evaluation.num_classes
  train_source, test_source = evaluation.train_source, evaluation.test_source
  batch_size = config.input.batch_size
  replicated = sharding.replicated(mesh)
  test_images, test_labels = sources.labelled_arrays(test_source)
  pre_config, encoder_params, description = _pretraining(config, replicated)
  size = config.input.image_size
  spec = vit.spec_from_config(pre_config.model)
  if size % spec["patch_size"]:
    raise ConfigError(f"input.image_size={size} is not divisible by the encoder's patch size "
                      f"{spec['patch_size']}: use a multiple of it")
  model = classifier.ViTClassifier(spec, num_classes, pool=config.finetune.pool,
                                   drop_path=config.finetune.drop_path,
                                   dtype=jnp.dtype(config.finetune.dtype),
                                   remat=config.finetune.remat)
  log.info("fine-tuning the %s on %s (%d train / %d test examples, %d classes)", description,
           train_source.name, len(train_source), len(test_labels), num_classes)
  record = {"protocol": "finetune", "encoder": description,
            "init_from": config.init_from or None, "baseline": config.baseline or None,
            "feature": config.finetune.pool, "dataset": train_source.name,
            "test_dataset": test_source.name}
  summary = run_record.new_summary(workdir, writer)

  # ----------------------------------------------------------------- state
  steps_per_epoch = max(len(train_source) // batch_size, 1)
  total_steps = config_lib.steps(config, "total", steps_per_epoch)
  warmup_steps = config_lib.steps(config.optim, "warmup", steps_per_epoch, default=0)
  base_tx, learning_rate = optim.make(config.optim, batch_size, total_steps, warmup_steps)
  tx = optax.chain(base_tx, layer_decay.scale_by_layer(spec["depth"],
                                                       config.finetune.layer_decay))

  def init_state(key):
    params = model.init(key, jnp.zeros((1, size, size, 3)))["params"]
    return FinetuneState(jnp.zeros((), jnp.int32), params, tx.init(params),
                         jnp.zeros((2,), jnp.int32))

  init_key = jax.random.key(config.seed)
  abstract_state = jax.eval_shape(init_state, init_key)
  state_shardings = sharding.state_shardings(abstract_state, mesh)
  train_step = make_train_step(config, model, tx, learning_rate, num_classes, size)
  batch_sharding = sharding.batch_sharding(mesh)
  step_fn = jax.jit(train_step, in_shardings=(state_shardings, batch_sharding, batch_sharding),
                    out_shardings=(state_shardings, replicated), donate_argnums=(0,))
  logits_fn = jax.jit(lambda params, x: model.apply(
      {"params": params}, augment.eval_view(x, size), train=False), out_shardings=replicated)
  eval_batch = config.finetune.eval_batch_size

  def test_top1(params):
    correct = 0
    for i in range(0, len(test_labels), eval_batch):
      chunk = test_images[i:i + eval_batch]
      padded = np.concatenate([chunk, np.zeros((eval_batch - len(chunk),) + chunk.shape[1:],
                                               chunk.dtype)])  # one compiled shape
      logits = np.asarray(logits_fn(params, padded))[:len(chunk)]
      correct += int(np.sum(np.argmax(logits, -1) == test_labels[i:i + eval_batch]))
    return correct / len(test_labels)

  # ----------------------------------------------------------------- resume
  data_iter = pipeline.train_iterator(train_source, batch_size, config.seed,
                                      num_threads=config.input.num_threads)
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints,
                                 async_save=config.checkpoint_async)
  restored = ckpt.restore_latest(abstract_state, state_shardings, config.to_json())
  if restored is not None:
    _, state, data_state = restored
    data_iter.set_state(data_state)
    log.info("resumed fine-tuning at step %d", int(state.step))
  else:
    state = jax.jit(init_state, out_shardings=state_shardings)(init_key)
    if encoder_params is not None:
      state = state.replace(params=jax.device_put(load_encoder(state.params, encoder_params),
                                                  state_shardings.params))
  first_step = int(state.step)

  # ----------------------------------------------------------------- loop
  values = {}
  progress = metrics.Progress(total_steps, batch_size)
  try:
    with preemption.Watch() as watch:
      for step in range(first_step + 1, total_steps + 1):
        batch = next(data_iter)
        images, labels = sharding.global_batch((batch["image"], batch["label"]), mesh)
        state, step_metrics = step_fn(state, images, labels)
        if step == first_step + 1:
          jax.block_until_ready(step_metrics)
          progress.start(step)  # excludes compilation from img/s
        is_last = step == total_steps
        preempted = watch.reached(step) and not is_last
        if step % config.log_every_steps == 0 or is_last:
          values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
          nonfinite.check(values, config.max_consecutive_skips, step, "fine-tuning loss", ckpt,
                          "lower optim.blr and restart, which resumes from it")
          if step > first_step + 1:
            line, values["img_per_s"] = progress.line(step, {"loss": values["loss"]})
            log.info(line)
          writer.scalars(step, values)
        if step % config.eval_every_steps == 0 or is_last:
          top1 = test_top1(state.params)
          writer.scalars(step, {"test_top1": top1})
          summary["evals"]["finetune/top1"] = top1
          log.info("fine-tune step %d/%d: test top-1 %.4f", step, total_steps, top1)
        if step % config.checkpoint_every_steps == 0 or is_last or preempted:
          ckpt.save(step, state, data_iter.get_state(), config.to_json())
        if preempted:
          ckpt.wait()
          summary["preempted"] = True
          log.warning("preemption notice: saved step %d in %s and stopped", step,
                      ckpt.directory)
          break
  finally:
    ckpt.close()
    writer.close()

  if summary["preempted"]:
    summary.update(step=int(state.step), total_steps=total_steps, final_loss=values.get("loss"),
                   wall_time_s=time.time() - start_time)
    return summary
  top1 = summary["evals"].get("finetune/top1")
  if top1 is None:  # already finished: evaluate the restored model
    top1 = summary["evals"]["finetune/top1"] = test_top1(state.params)
  record.update(metric="top1", value=top1, epochs=total_steps / steps_per_epoch,
                steps=total_steps, batch_size=batch_size,
                layer_decay=config.finetune.layer_decay, wall_time_s=time.time() - start_time)
  run_record.write(workdir, record)
  summary.update(step=int(state.step), total_steps=total_steps,
                 final_loss=values.get("loss"), wall_time_s=record["wall_time_s"],
                 record=record)
  return summary
