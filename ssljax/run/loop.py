"""THE run loop, for every run type (pre-training, linear probe, fine-tuning, kNN).

Sections: setup, mesh, plan, state, resume, step, evals, loop, summary. A run type
(`ssljax.run.plan`) supplies what differs: its data, state init, objective, trainable
parameters (its optimizer), evaluators and result record. The loop owns the rest, so every run
type gets every guarantee: sharded shapes-first state, exact resume (state and data position),
SIGTERM saves at the next step and stops (exit 3 in `main`), non-finite steps skipped and
counted with too many in a row stopping the run, progress with img/s and MFU, evaluators at
their cadence and at the end, checkpoints, and one summary.
"""
import contextlib
import logging
import os
import time

import jax
import numpy as np

from ssljax.config import sections
from ssljax.errors import ConfigError, UserError
from ssljax.evals import run_record
from ssljax.models import flops
from ssljax.run import nonfinite, step as step_lib
from ssljax.run.state import TrainState
from ssljax.runtime import (checkpoint, distributed, metrics, preemption, profiling, sharding,
                            storage, workdir_lock)

TrainingDiverged = nonfinite.TrainingDiverged  # what a run raises after too many skipped steps

log = logging.getLogger("ssljax")


def check_writable(workdir):
  """Creates `workdir` (a local directory or an object-store prefix) and writes and removes a
  probe file there; a one-line UserError when it cannot be written."""
  directory = storage.path(workdir)  # an object store whose backend is missing: UserError
  probe = directory / f".write_test.{jax.process_index()}.{os.getpid()}"
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe.write_text("ok")
    probe.unlink()
  except OSError as e:
    raise UserError(f"workdir {workdir} is not writable ({e.strerror or e}): pass a writable "
                    "--workdir") from None
  except Exception as e:  # pylint: disable=broad-except  # object stores: auth, bucket, network
    if not storage.is_remote(workdir):
      raise
    raise UserError(f"workdir {workdir} is not writable ({type(e).__name__}: "
                    f"{' '.join(str(e).split())[:200]}): check the bucket and this machine's "
                    "credentials, or pass another --workdir") from None
  if storage.is_remote(workdir):
    return
  checkpoints = checkpoint.directory_of(workdir)
  if os.path.exists(checkpoints) and not os.path.isdir(checkpoints):
    raise UserError(f"{checkpoints} is a file, not the directory this run saves checkpoints "
                    "in: move it away or pass another --workdir")
  if os.path.isdir(checkpoints) and not os.access(checkpoints, os.W_OK | os.X_OK):
    raise UserError(f"{checkpoints} is not writable: fix its permissions or pass another "
                    "--workdir")


def _check_batch_size(batch_size, mesh, accum):
  sharding.check_batch_size(batch_size, mesh)
  if batch_size % (mesh.devices.size * accum):
    raise ConfigError(f"input.batch_size={batch_size} is not divisible by {mesh.devices.size} "
                      f"devices x grad_accum_steps={accum}: use a multiple of "
                      f"{mesh.devices.size * accum}")


def _divergence_fix(config):
  lr_field = "optim.lr" if config.optim.get("lr") is not None else "optim.blr"
  return f"lower {lr_field} (or lengthen the warm-up) and restart"


# What an evaluation run's checkpoint was trained on: resuming it on another encoder would
# report the new encoder with a head (or fine-tuned weights) of the old one.
ENCODER_FIELDS = ("init_from", "baseline", "encoder_config")


def _check_config_changes(ckpt, step, config):
  """Warns of every field changed since `step` was saved; raises on a changed encoder."""
  changes = [c for c in ckpt.config_changes(step, config.to_json())
             if not c.startswith("resume_with_changed_encoder:")]
  encoder = [c for c in changes if c.split(":")[0] in ENCODER_FIELDS]
  if encoder and not config.get("resume_with_changed_encoder"):
    raise ConfigError(f"the checkpoint in {ckpt.directory} (step {step}) was trained on another "
                      f"encoder ({'; '.join(encoder)}): pass a new --workdir, or "
                      "--config.resume_with_changed_encoder=true to continue it anyway")
  if changes:
    log.warning("resuming step %d under a changed config: %s", step, "; ".join(changes))


def run(run_type, config, workdir, *, devices=None):
  """Runs `config` as `run_type` in `workdir` (resuming what is there); returns the summary.

  The workdir is locked for the run (`runtime.workdir_lock`): a second run on it stops at once.
  A stop notice (SIGTERM, Ctrl-C) saves at the next step while unsaved steps run and raises
  `preemption.Preempted` anywhere else (`runtime.preemption`).
  """
  start_time = time.time()
  with preemption.Watch() as watch:
    run_type.validate(config)
    check_writable(workdir)
    with workdir_lock.held(workdir):
      return _run(run_type, config, workdir, devices, start_time, watch)


def _run(run_type, config, workdir, devices, start_time, watch):
  with contextlib.ExitStack() as release:
    summary, state, plan, step_metrics = _train(run_type, config, workdir, devices, watch,
                                                release)
  return _summarize(summary, state, plan, step_metrics, workdir, start_time)


def _train(run_type, config, workdir, devices, watch, release):
  """Setup to the last step and its evaluations; (summary so far, state, plan, last step's
  metrics). What it opens is closed by `release` (an ExitStack) however it ends."""
  # ----------------------------------------------------------------- setup
  writer = metrics.Writer(workdir, config=config)
  release.callback(writer.close)

  # ----------------------------------------------------------------- mesh
  mesh_config = config.get("mesh") or {}
  mesh = sharding.make_mesh(devices, mesh_config.get("fsdp", 1))
  accum = config.get("grad_accum_steps", 1)  # micro-batches per update
  _check_batch_size(config.input.batch_size, mesh, accum)

  # ----------------------------------------------------------------- plan
  plan = run_type.plan(config, mesh)
  release.callback(plan.data.close)
  schedule, total_steps = plan.schedule, plan.schedule.total_steps
  log.info("%s: %s; data %s, %d examples, %d steps/epoch, %d steps", plan.name,
           plan.description, getattr(plan.source, "name", "?"), len(plan.source),
           schedule.steps_per_epoch, total_steps)

  # ----------------------------------------------------------------- state
  def init_state(key):
    params, model_state = plan.init(key)
    return TrainState.create(params, plan.tx.init(params), model_state)

  init_key = jax.random.fold_in(jax.random.key(config.seed), -1 % 2**31)
  abstract_state = jax.eval_shape(init_state, init_key)
  state_shardings = sharding.state_shardings(abstract_state, mesh, plan.sharded_state,
                                             mesh_config.get("fsdp_min_size", 2**16))
  kept_whole, state_bytes = sharding.replicated_bytes(abstract_state, state_shardings)
  num_params = sum(np.prod(x.shape) for x in jax.tree.leaves(abstract_state.params))
  log.info("train state %.1f MiB, of which %.1f MiB replicated on every device; %.2fM "
           "trainable parameters, %.3g GFLOP per example per step, mesh %s",
           state_bytes / 2**20, kept_whole / 2**20, num_params / 1e6,
           plan.flops_per_example / 1e9, dict(mesh.shape))
  init_fn = jax.jit(init_state, out_shardings=state_shardings)

  # ----------------------------------------------------------------- resume
  distributed.barrier("ssljax: before the first collective")
  ckpt = checkpoint.Checkpointer(workdir, keep=config.keep_checkpoints,
                                 async_save=config.checkpoint_async)
  release.callback(ckpt.close)
  restored = ckpt.restore_latest(abstract_state, state_shardings, config.to_json())
  if restored is not None:
    latest, state, data_state = restored
    _check_config_changes(ckpt, latest, config)
    writer.resumed(latest)
    plan.data.set_state(data_state)
    log.info("resumed from %s at step %d", ckpt.directory, latest)
  else:
    latest = None
    state = jax.device_put(plan.start(init_fn(init_key)), state_shardings)
  first_step = int(state.step)
  if first_step > total_steps:
    raise ConfigError(f"the checkpoint in {ckpt.directory} is at step {first_step}, past this "
                      f"run's {total_steps} steps: set total_steps (or total_epochs) to at "
                      f"least its length to evaluate it, or pass a new --workdir")

  # ----------------------------------------------------------------- step
  if first_step < total_steps:  # a finished or evaluation-only run has no step to compile
    train_step = jax.jit(
        step_lib.make_train_step(plan.objective, plan.tx, plan.learning_rate, config.seed,
                                 plan.after_update, accum),
        in_shardings=(state_shardings, None, sharding.batch_sharding(mesh)),
        out_shardings=(state_shardings, sharding.replicated(mesh)),
        donate_argnums=(0,))

  # ----------------------------------------------------------------- evals
  summary = {"workdir": storage.join(workdir), "metrics_file": writer.jsonl_path,
             "tensorboard_dir": writer.tensorboard_dir, "figures": [], "evals": {},
             "preempted": False, "stop_signal": None, "final_loss": None}

  def run_evals(step, variables, which, prefix=""):
    for name, evaluator in plan.evaluators.items():
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

  if any(e.random_init_baseline for e in plan.evaluators.values()):
    baseline = init_fn(init_key) if latest is not None else state
    run_evals(0, plan.eval_variables(baseline), lambda e: e.random_init_baseline,
              prefix="random_init/")
    del baseline

  # ----------------------------------------------------------------- loop
  progress = metrics.Progress(total_steps, plan.batch_size)
  profile = config.get("profile") or sections.profile_config()
  trace = profiling.StepTrace(writer.tensorboard_dir, first_step, profile.after_steps,
                              profile.steps)
  release.callback(trace.close)
  step_metrics, evaluated_last = None, False
  if first_step < total_steps:
    watch.defer()  # steps not yet saved: a stop notice saves at the next step
  for step in range(first_step + 1, total_steps + 1):
    batch = sharding.global_batch(next(plan.data), mesh)
    trace.before(step)
    state, step_metrics = train_step(state, plan.frozen, batch)
    trace.after(step, step_metrics)
    if step == first_step + 1:
      jax.block_until_ready(step_metrics)
      progress.start(step)  # excludes compilation from img/s
    is_last = step == total_steps
    preempted = watch.reached(step) and not is_last
    will_save = is_last or preempted or step % schedule.checkpoint_every_steps == 0
    if step % config.log_every_steps == 0 or will_save:
      values = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
      summary["final_loss"] = values["loss"]
      nonfinite.check(values, config.max_consecutive_skips, step, f"{plan.name} loss", ckpt,
                      _divergence_fix(config))
      if values["consecutive_skips"]:
        log.warning("step %d: non-finite loss %s / grad norm %s, update skipped (%d in a "
                    "row, %d in all)", step, values["loss"], values["grad_norm"],
                    values["consecutive_skips"], values["skipped_steps"])
      if step % config.log_every_steps == 0 or is_last:
        if hasattr(plan.source, "skipped_files"):  # undecodable images replaced so far
          values["skipped_images"] = len(plan.source.skipped_files)
        if step > first_step + 1:
          line, values["img_per_s"] = progress.line(step, {"loss": values["loss"]})
          if plan.flops_per_example:
            values["tflops_per_s"], utilisation = flops.mfu(
                values["img_per_s"], plan.flops_per_example, list(mesh.devices.flat))
            line += f" TFLOP/s {values['tflops_per_s']:.3g}"
            if utilisation is not None:
              values["mfu"] = utilisation
              line += f" MFU {utilisation:.1%}"
          log.info(line)
        writer.scalars(step, values)
    if will_save:
      ckpt.save(step, state, plan.data.get_state(), config.to_json())
    if preempted:
      ckpt.wait()
      summary["preempted"], summary["stop_signal"] = True, watch.received
      log.warning("preemption notice: saved step %d in %s and stopped", step, ckpt.directory)
      break
    if is_last:
      watch.immediate()  # every step is saved (closing the checkpointer finishes the write)
    run_evals(step, plan.eval_variables(state), lambda e, s=step, last=is_last: (
        last or bool(e.every_steps and s % e.every_steps == 0)))
    evaluated_last = is_last
  if not summary["preempted"] and not evaluated_last:
    # Finished before this process started (or an evaluation-only run): evaluate the state.
    run_evals(int(state.step), plan.eval_variables(state), lambda e: True)
  return summary, state, plan, step_metrics


def _summarize(summary, state, plan, step_metrics, workdir, start_time):
  # ----------------------------------------------------------------- summary
  schedule, total_steps = plan.schedule, plan.schedule.total_steps
  summary.update(step=int(state.step), total_steps=total_steps,
                 skipped_images=sorted(getattr(plan.source, "skipped_files", ())),
                 wall_time_s=time.time() - start_time)
  if step_metrics is None and total_steps:
    log.info("nothing to do: the checkpoint in %s is already at the last step, %d", workdir,
             total_steps)
  if plan.record is not None and not summary["preempted"]:
    record = dict(plan.record, **plan.result(summary["evals"]),
                  epochs=total_steps / schedule.steps_per_epoch, steps=total_steps,
                  batch_size=plan.batch_size, wall_time_s=summary["wall_time_s"])
    if plan.best_of and storage.path(summary["metrics_file"]).exists():  # process 0's, resumes too
      record.update(run_record.best_evaluation(
          metrics.curve(metrics.read_jsonl(summary["metrics_file"])), plan.best_of))
    run_record.write(workdir, record)
    summary["record"] = record
  return summary
