"""Linear probing and kNN of a frozen encoder: the second, small trainer (`config.protocol`).

  python -m ssljax.main --config=configs/linear_probe_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_probe

protocol="linear_probe": a linear classifier on frozen features (the encoder's variables are
constants of the step, never differentiated or updated), optionally after BatchNorm without
affine (MAE), trained with `config.optim` (LARS in the papers' recipes) and cross-entropy;
top-1 on the test split every `eval_every_steps` and at the end.
  probe.augment=True   each step crops and flips the images on device, then encodes them (the
                       papers' protocol);
  probe.augment=False  features of the un-augmented images are computed once and the head
                       trains on them (fast on CPU; a documented deviation).
protocol="knn": weighted kNN top-1 of the same features (k and temperature from `config.knn`).

Both write `results.json` in the workdir: encoder, protocol, dataset, metric, value, epochs,
wall time. A linear probe checkpoints its head and resumes exactly.
"""
import logging
import time
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax import checkpoint, config_lib, features, optim, run_record, sharding
from ssljax.data import augment, pipeline, sources
from ssljax.errors import ConfigError
from ssljax.evals import knn

log = logging.getLogger("ssljax")


class LinearHead(nn.Module):
  """[B, D] -> logits [B, num_classes]: optional BatchNorm without affine, then Linear."""
  num_classes: int
  norm: bool

  @nn.compact
  def __call__(self, x, train):
    if self.norm:
      x = nn.BatchNorm(use_running_average=not train, use_bias=False, use_scale=False,
                       momentum=0.9, epsilon=1e-6, name="norm")(x)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.truncated_normal(0.01),
                    name="head")(x)


@flax.struct.dataclass
class ProbeState:
  step: jax.Array
  params: Any  # the head only
  batch_stats: Any
  opt_state: Any


def _features(featurizer, images, batch_size, mesh):
  """uint8 [N, H, W, 3] -> float32 [N, D] of un-augmented images."""
  encode = jax.jit(lambda v, x: featurizer.fn(v, x.astype(jnp.float32)),
                   out_shardings=sharding.replicated(mesh))
  return knn.extract_features(encode, featurizer.variables, images, batch_size, mesh)


def _knn_scalars(config, train, test, num_classes):
  return {f"knn_top1_k{k}_t{t}": knn.knn_accuracy(train[0], train[1], test[0], test[1], k=k,
                                                 temperature=t, num_classes=num_classes)
          for k in config.knn.k for t in config.knn.temperatures}


def _epoch_batch_indices(num_examples, batch_size, seed, step):
  """Example indices of cached-feature batch `step` (0-based): a seeded permutation per epoch."""
  per_epoch = num_examples // batch_size
  epoch, position = divmod(step, per_epoch)
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  return order[position * batch_size:(position + 1) * batch_size]


def run(config, workdir, *, devices=None):
  """Runs `config.protocol` on the encoder `config` names; returns a summary like `train`'s."""
  start_time = time.time()
  evaluation = run_record.start(config, workdir, devices, config.probe.test_split)
  mesh, writer, num_classes = evaluation.mesh, evaluation.writer, evaluation.num_classes
  train_source, test_source = evaluation.train_source, evaluation.test_source
  batch_size = config.input.batch_size
  train_images, train_labels = sources.labelled_arrays(train_source)
  test_images, test_labels = sources.labelled_arrays(test_source)
  featurizer = features.build(config, mesh, train_images)
  log.info("%s of %s on %s (%d train / %d test examples)", config.protocol,
           featurizer.description, train_source.name, len(train_labels), len(test_labels))
  record = {"protocol": config.protocol, "encoder": featurizer.description,
            "init_from": config.init_from or None, "baseline": config.baseline or None,
            "feature": config.probe.feature, "dataset": train_source.name,
            "test_dataset": test_source.name}
  summary = run_record.new_summary(workdir, writer)

  eval_batch = config.probe.eval_batch_size
  test_features = _features(featurizer, test_images, eval_batch, mesh)
  cached = None
  if config.protocol == "knn" or not config.probe.augment:
    cached = _features(featurizer, train_images, eval_batch, mesh)

  if config.protocol == "knn":
    scalars = _knn_scalars(config, (cached, train_labels), (test_features, test_labels),
                           num_classes)
    writer.scalars(0, scalars)
    writer.close()
    best = max(scalars, key=scalars.get)
    record.update(metric=best, value=scalars[best], all=scalars, epochs=0,
                  wall_time_s=time.time() - start_time)
    run_record.write(workdir, record)
    summary.update(step=0, total_steps=0, evals=scalars, wall_time_s=record["wall_time_s"],
                   record=record)
    return summary

  # ----------------------------------------------------------------- state
  steps_per_epoch = max(len(train_labels) // batch_size, 1)
  total_steps = config_lib.steps(config, "total", steps_per_epoch)
  warmup_steps = config_lib.steps(config.optim, "warmup", steps_per_epoch, default=0)
  tx, learning_rate = optim.make(config.optim, batch_size, total_steps, warmup_steps)
  head = LinearHead(num_classes, config.probe.head_norm)
  feature_dim = test_features.shape[-1]

  def init_state(key):
    variables = head.init(key, jnp.zeros((2, feature_dim)), train=False)
    params = variables["params"]
    return ProbeState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                      tx.init(params))

  init_key = jax.random.key(config.seed)
  abstract_state = jax.eval_shape(init_state, init_key)
  state_shardings = sharding.state_shardings(abstract_state, mesh)
  base_key = jax.random.fold_in(init_key, 1)
  size = featurizer.image_size

  def train_step(state, variables, inputs, labels):
    if config.probe.augment:  # inputs: uint8 images; the encoder is a constant here
      keys = jax.random.split(jax.random.fold_in(base_key, state.step), inputs.shape[0])
      views = jax.vmap(lambda k, x: augment.crop_flip(
          k, x, size, crop_scale=config.probe.crop_scale))(keys, inputs.astype(jnp.float32))
      inputs = jax.lax.stop_gradient(featurizer.fn(variables, views))

    def loss_fn(params):
      logits, new_stats = head.apply({"params": params, "batch_stats": state.batch_stats},
                                     inputs, train=True, mutable=["batch_stats"])
      one_hot = jax.nn.one_hot(labels, num_classes)
      loss = optax.softmax_cross_entropy(logits, one_hot).mean()
      return loss, (new_stats.get("batch_stats", {}), jnp.mean(jnp.argmax(logits, -1) == labels))

    (loss, (batch_stats, accuracy)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    new_state = ProbeState(state.step + 1, optax.apply_updates(state.params, updates),
                           batch_stats, opt_state)
    return new_state, {"loss": loss, "train_top1": accuracy,
                       "learning_rate": learning_rate(state.step)}

  batch_sharding = sharding.batch_sharding(mesh)
  step_fn = jax.jit(train_step, in_shardings=(state_shardings, None, batch_sharding,
                                              batch_sharding),
                    out_shardings=(state_shardings, sharding.replicated(mesh)),
                    donate_argnums=(0,))
  logits_fn = jax.jit(lambda state, x: head.apply(
      {"params": state.params, "batch_stats": state.batch_stats}, x, train=False))

  def test_top1(state):
    predictions = np.concatenate([
        np.argmax(np.asarray(logits_fn(state, test_features[i:i + eval_batch])), -1)
        for i in range(0, len(test_labels), eval_batch)])
    return float(np.mean(predictions == test_labels))

  # ----------------------------------------------------------------- resume
  data_iter = None
  if cached is None:
    data_iter = pipeline.train_iterator(train_source, batch_size, config.seed,
                                        num_threads=config.input.num_threads)
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints,
                                 async_save=config.checkpoint_async)
  restored = ckpt.restore_latest(abstract_state, state_shardings, config.to_json())
  if restored is not None:
    _, state, data_state = restored
    if data_iter is not None:
      data_iter.set_state(data_state)
    log.info("resumed the probe at step %d", int(state.step))
  else:
    state = jax.jit(init_state, out_shardings=state_shardings)(init_key)
  first_step = int(state.step)

  # ----------------------------------------------------------------- loop
  values = {}
  try:
    for step in range(first_step + 1, total_steps + 1):
      if data_iter is None:
        index = _epoch_batch_indices(len(train_labels), batch_size, config.seed, step - 1)
        index = np.array_split(index, jax.process_count())[jax.process_index()]  # this host's
        inputs, labels = cached[index], train_labels[index]
      else:
        batch = next(data_iter)
        inputs, labels = batch["image"], batch["label"]
      inputs, labels = sharding.global_batch((inputs, labels), mesh)
      state, step_metrics = step_fn(state, featurizer.variables, inputs, labels)
      is_last = step == total_steps
      if step % config.log_every_steps == 0 or is_last:
        values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        if not np.isfinite(values["loss"]):
          raise ConfigError(f"the probe's loss is {values['loss']} at step {step}: lower "
                            f"optim.blr (now {config.optim.blr})")
        writer.scalars(step, values)
      if step % config.eval_every_steps == 0 or is_last:
        top1 = test_top1(state)
        writer.scalars(step, {"test_top1": top1})
        summary["evals"]["linear_probe/top1"] = top1
        log.info("probe step %d/%d: loss %.4f, test top-1 %.4f", step, total_steps,
                 values.get("loss", float("nan")), top1)
      if step % config.checkpoint_every_steps == 0 or is_last:
        ckpt.save(step, state, data_iter.get_state() if data_iter else {}, config.to_json())
  finally:
    ckpt.close()
    writer.close()

  top1 = summary["evals"].get("linear_probe/top1")
  if top1 is None:  # already finished: evaluate the restored head
    top1 = summary["evals"]["linear_probe/top1"] = test_top1(state)
  record.update(metric="top1", value=top1, epochs=total_steps / steps_per_epoch,
                steps=total_steps, batch_size=batch_size, augment=config.probe.augment,
                wall_time_s=time.time() - start_time)
  run_record.write(workdir, record)
  summary.update(step=int(state.step), total_steps=total_steps,
                 final_loss=values.get("loss"), wall_time_s=record["wall_time_s"],
                 record=record)
  return summary
