"""Which run type a config runs, and running it: pre-training configs have a `method`,
evaluation configs a `protocol` (linear_probe, knn, finetune)."""
from ssljax.run import finetune, knn, linear_probe, loop, pretrain

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
  return loop.run(for_config(config), config, workdir, devices=devices)
