"""Which run type a config runs, and running it: pre-training configs have a `method`,
evaluation configs a `protocol` (linear_probe, knn, finetune)."""
import os

from ssljax.errors import ConfigError
from ssljax.run import finetune, knn, linear_probe, loop, pretrain
from ssljax.runtime import checkpoint, storage

RUN_TYPES = {"pretrain": pretrain, "linear_probe": linear_probe, "knn": knn,
             "finetune": finetune}


def for_config(config):
  """The run type module of `config` (`validate(config)`, `plan(config, mesh)`)."""
  if "protocol" not in config:
    return pretrain
  if config.protocol == "finetune" and "finetune" in config:
    return finetune
  if config.protocol == "knn" and "probe" in config:
    return knn
  return linear_probe  # whose validation also reports an unknown protocol or a wrong config


def run(config, workdir, *, devices=None):
  """Runs `config` in `workdir` through the loop (resuming what is there); returns the summary
  `main` prints: step, total_steps, final_loss, evals, figures, wall_time_s, preempted, and for
  evaluation runs the `record` written to results.json."""
  _check_workdir_is_not_the_encoders(config, workdir)
  return loop.run(for_config(config), config, workdir, devices=devices)


def _check_workdir_is_not_the_encoders(config, workdir):
  """An evaluation run writes its own checkpoints, metrics and results.json: in the
  pre-training workdir it evaluates they would mix with (or replace) the pre-training's."""
  init_from = config.get("init_from")
  if not init_from:
    return
  encoder = storage.path(init_from)  # a workdir, checkpoints/ or /N
  own_checkpoints = checkpoint.directory_of(workdir)
  if os.fspath(encoder) in (storage.join(workdir), own_checkpoints) or (
      os.fspath(encoder.parent) == own_checkpoints):
    raise ConfigError(f"--workdir={workdir} is the workdir of init_from={init_from}: this "
                      f"{config.protocol} run would write its own checkpoints and results "
                      "among the pre-training's; pass a new --workdir")
