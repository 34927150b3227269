"""THE pretraining loop, used by every method; nothing in it is method-specific.

Sections: setup, mesh, data, state, step, resume, evals, loop. A method module (see
`ssljax.methods`) supplies init / loss / encode; evaluators come from `config.evals`.
"""
import logging
import os
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssljax import (checkpoint, config_lib, distributed, flops, methods, metrics, nonfinite,
                    online_probe, optim, preemption, sharding)
from ssljax import evals as evals_lib
from ssljax.data import pipeline, sources
from ssljax.errors import ConfigError, UserError

TrainingDiverged = nonfinite.TrainingDiverged  # what a run raises after too many skipped steps

log = logging.getLogger("ssljax")


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  model_state: Any  # non-trainable collections (batch stats, EMA targets, queues)
  skipped_steps: jax.Array  # [2] int32: all skipped updates, and the current run of them

  @classmethod
  def create(cls, params, opt_state, model_state):
    """The state at step 0."""
    return cls(jnp.zeros((), jnp.int32), params, opt_state, model_state,
               jnp.zeros((2,), jnp.int32))


def make_train_step(config, method, tx, learning_rate, total_steps):
  """(state, batch) -> (state, metrics); the step key is fold_in(seed, step).

  A method's optional `after_update(config, params, model_state, step, total_steps)` returns
  `(params, model_state)` after the optimizer's update (EMA targets, re-normalised prototypes).
  """
  base_key = jax.random.key(config.seed)
  objective = (online_probe.wrap_loss(config, method) if online_probe.enabled(config)
               else method.loss)

  value_and_grad = jax.value_and_grad(objective, argnums=1, has_aux=True)
  accum = config.grad_accum_steps

  def accumulated(params, model_state, batch, rng):
    """value_and_grad over `accum` micro-batches run one after the other: the mean loss,
    metrics and gradient; each example keeps the random keys it has in the whole batch, so
    without BatchNorm this is the large batch's update. Micro-batch j holds examples
    j, j + accum, ...: every device keeps computing on its own examples."""
    size = batch["image"].shape[0]
    batch = dict(batch, example_index=jnp.arange(size))
    micro = jax.tree.map(
        lambda x: jnp.moveaxis(x.reshape((size // accum, accum) + x.shape[1:]), 1, 0), batch)

    def one(carry, micro_batch):
      grad_sum, state = carry
      (loss, (state, step_metrics)), grads = value_and_grad(config, params, state, micro_batch,
                                                            rng)
      return (jax.tree.map(jnp.add, grad_sum, grads), state), (loss, step_metrics)

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grad_sum, model_state), (losses, step_metrics) = jax.lax.scan(one, (zeros, model_state),
                                                                   micro)
    mean = lambda x: jnp.mean(x, axis=0)
    return ((mean(losses), (model_state, jax.tree.map(mean, step_metrics))),
            jax.tree.map(lambda g: g / accum, grad_sum))

  def train_step(state, batch):
    rng = jax.random.fold_in(base_key, state.step)
    if accum == 1:
      (loss, (model_state, step_metrics)), grads = value_and_grad(
          config, state.params, state.model_state, batch, rng)
    else:
      (loss, (model_state, step_metrics)), grads = accumulated(state.params, state.model_state,
                                                               batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if hasattr(method, "after_update"):
      params, model_state = method.after_update(config, params, model_state, state.step,
                                                total_steps)
    (params, opt_state, model_state), skipped, grad_norm = nonfinite.guard_update(
        loss, grads, (params, opt_state, model_state),
        (state.params, state.opt_state, state.model_state), state.skipped_steps)
    step_metrics = dict(step_metrics, loss=step_metrics.get("loss", loss), grad_norm=grad_norm,
                        learning_rate=learning_rate(state.step), skipped_steps=skipped[0],
                        consecutive_skips=skipped[1])
    return TrainState(state.step + 1, params, opt_state, model_state, skipped), step_metrics

  return train_step


def _variables(state):
  return {"params": state.params, **state.model_state}


def _check_writable(workdir):
  if "://" in workdir:  # object stores (gs://...) are checked by their first write
    return
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_test.{jax.process_index()}.{os.getpid()}")
    with open(probe, "w", encoding="utf-8") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise UserError(f"workdir {workdir} is not writable ({e.strerror}): pass a writable "
                    "--workdir") from None


def train_and_evaluate(config, workdir, *, devices=None):
  """Pre-trains `config.method` in `workdir` (resuming what is there); returns a summary."""
  # ----------------------------------------------------------------- setup
  start_time = time.time()
  config_lib.validate(config)
  method = methods.get(config.method)
  if hasattr(method, "validate"):
    method.validate(config)
  _check_writable(workdir)
  writer = metrics.Writer(workdir)

  # ----------------------------------------------------------------- mesh
  mesh = sharding.make_mesh(devices, config.mesh.fsdp)
  batch_size = config.input.batch_size
  sharding.check_batch_size(batch_size, mesh)
  if batch_size % (mesh.devices.size * config.grad_accum_steps):
    raise ConfigError(f"input.batch_size={batch_size} is not divisible by {mesh.devices.size} "
                      f"devices x grad_accum_steps={config.grad_accum_steps}: use a multiple of "
                      f"{mesh.devices.size * config.grad_accum_steps}")
  batch_sharding = sharding.batch_sharding(mesh)

  # ----------------------------------------------------------------- data
  source = sources.get_source(config.input, config.input.split)
  data_iter = pipeline.train_iterator(source, batch_size, config.seed,
                                      num_threads=config.input.num_threads)
  steps_per_epoch = max(len(source) // batch_size, 1)
  total_steps = config_lib.steps(config, "total", steps_per_epoch)
  warmup_steps = config_lib.steps(config.optim, "warmup", steps_per_epoch, default=0)
  log.info("data: %s, %d examples, %d steps/epoch, %d steps", source.name, len(source),
           steps_per_epoch, total_steps)

  # ----------------------------------------------------------------- state
  tx, learning_rate = optim.make(config.optim, batch_size, total_steps, warmup_steps)
  if online_probe.enabled(config):
    tx = online_probe.wrap_optimizer(config, tx)
  image_shape = (1, config.input.image_size, config.input.image_size, 3)

  def init_state(rng):
    variables = dict(method.init(config, rng, image_shape))
    if online_probe.enabled(config):
      variables = online_probe.init(config, method, variables, image_shape)
    params = variables.pop("params")
    return TrainState.create(params, tx.init(params), variables)

  init_key = jax.random.fold_in(jax.random.key(config.seed), -1 % 2**31)
  abstract_state = jax.eval_shape(init_state, init_key)
  state_shardings = sharding.state_shardings(abstract_state, mesh,
                                             getattr(method, "SHARDED_STATE", ()),
                                             config.mesh.fsdp_min_size)
  kept_whole, state_bytes = sharding.replicated_bytes(abstract_state, state_shardings)
  log.info("train state %.1f MiB, of which %.1f MiB replicated on every device",
           state_bytes / 2**20, kept_whole / 2**20)
  init_fn = jax.jit(init_state, out_shardings=state_shardings)
  num_params = sum(np.prod(x.shape) for x in jax.tree.leaves(abstract_state.params))
  step_flops = method.flops_per_example(config) if hasattr(method, "flops_per_example") else 0
  log.info("method %s, %.2fM parameters, %.3g GFLOP per example per step, mesh %s",
           config.method, num_params / 1e6, step_flops / 1e9, dict(mesh.shape))

  # ----------------------------------------------------------------- step
  train_step = jax.jit(
      make_train_step(config, method, tx, learning_rate, total_steps),
      in_shardings=(state_shardings, batch_sharding),
      out_shardings=(state_shardings, sharding.replicated(mesh)),
      donate_argnums=(0,))

  # ----------------------------------------------------------------- resume
  distributed.barrier("ssljax: before the first collective")
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints,
                                 async_save=config.checkpoint_async)
  restored = ckpt.restore_latest(abstract_state, state_shardings, config.to_json())
  if restored is not None:
    latest, state, data_state = restored
    data_iter.set_state(data_state)
    log.info("resumed from %s at step %d", ckpt.directory, latest)
  else:
    latest, state = None, init_fn(init_key)
  first_step = int(state.step)

  # ----------------------------------------------------------------- evals
  evaluators = evals_lib.build(config, method, mesh)
  summary = {"workdir": os.path.abspath(workdir), "metrics_file": writer.jsonl_path,
             "tensorboard_dir": writer.tensorboard_dir, "figures": [], "evals": {}}

  def run_evals(step, variables, which, prefix=""):
    for name, evaluator in evaluators.items():
      if not which(evaluator):
        continue
      scalars, images = evaluator.run(variables, step)
      scalars = {f"{prefix}{name}/{k}": v for k, v in scalars.items()}
      writer.scalars(step, scalars)
      summary["evals"].update(scalars)
      for image_name, image in images.items():
        path = writer.image(step, f"{prefix}{image_name}", image)
        if path:
          summary["figures"].append(path)
      if scalars:
        log.info("eval %s step %d: %s", name, step,
                 ", ".join(f"{k} {v:.4f}" for k, v in scalars.items()))

  if any(e.random_init_baseline for e in evaluators.values()):
    baseline = init_fn(init_key) if latest is not None else state
    run_evals(0, _variables(baseline), lambda e: e.random_init_baseline, prefix="random_init/")
    del baseline

  # ----------------------------------------------------------------- loop
  progress = metrics.Progress(total_steps, batch_size)
  step_metrics, last_loss = None, None
  summary["preempted"] = False
  try:
    with preemption.Watch() as watch:
      for step in range(first_step + 1, total_steps + 1):
        batch = sharding.global_batch(next(data_iter), mesh)
        state, step_metrics = train_step(state, batch)
        if step == first_step + 1:
          jax.block_until_ready(step_metrics)
          progress.start(step)  # excludes compilation from img/s
        is_last = step == total_steps
        preempted = watch.reached(step) and not is_last
        will_save = is_last or preempted or step % config.checkpoint_every_steps == 0
        if step % config.log_every_steps == 0 or will_save:
          values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
          last_loss = values["loss"]
          nonfinite.check(values, config.max_consecutive_skips, step, "loss", ckpt,
                          "lower optim.blr (or lengthen the warm-up) and restart, which "
                          "resumes from it")
          if values["consecutive_skips"]:
            log.warning("step %d: non-finite loss %s / grad norm %s, update skipped (%d in a "
                        "row, %d in all)", step, last_loss, values["grad_norm"],
                        values["consecutive_skips"], values["skipped_steps"])
          if step % config.log_every_steps == 0 or is_last:
            if hasattr(source, "skipped_files"):  # undecodable images replaced so far
              values["skipped_images"] = len(source.skipped_files)
            if step > first_step + 1:
              line, values["img_per_s"] = progress.line(step, {"loss": last_loss})
              if step_flops:
                values["tflops_per_s"], utilisation = flops.mfu(
                    values["img_per_s"], step_flops, list(mesh.devices.flat))
                line += f" TFLOP/s {values['tflops_per_s']:.3g}"
                if utilisation is not None:
                  values["mfu"] = utilisation
                  line += f" MFU {utilisation:.1%}"
              log.info(line)
            writer.scalars(step, values)
        if will_save:
          ckpt.save(step, state, data_iter.get_state(), config.to_json())
        if preempted:
          ckpt.wait()
          summary["preempted"] = True
          log.warning("preemption notice: saved step %d in %s and stopped", step, ckpt.directory)
          break
        run_evals(step, _variables(state), lambda e, s=step, last=is_last: (
            last or bool(e.every_steps and s % e.every_steps == 0)))
  finally:
    ckpt.close()
    writer.close()
  summary.update(step=int(state.step), final_loss=last_loss, total_steps=total_steps,
                 skipped_images=sorted(getattr(source, "skipped_files", ())),
                 wall_time_s=time.time() - start_time)
  if step_metrics is None:
    log.info("nothing to do: the checkpoint in %s is already at step %d", workdir, total_steps)
  return summary

