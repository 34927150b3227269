"""Durations and cadences in steps or epochs, resolved from the final config (after the
command-line overrides) and the dataset size, so `--config.input.batch_size=1024` keeps the
epochs a recipe states.

Each duration `name` is a pair of fields `{name}_steps` / `{name}_epochs`, one of them set:
  total            the run's length
  optim.warmup     the learning-rate warm-up
  checkpoint_every the checkpoint cadence
  eval_every       an evaluation run's test-split cadence
  evals.X.every    a pre-training evaluator's cadence
"""
import dataclasses

from ssljax.errors import ConfigError


def steps(config, name, steps_per_epoch, default=None, prefix=""):
  """Duration `name` in steps, from `{name}_steps` or `{name}_epochs` of `config` (`prefix`
  names the section in errors)."""
  num_steps = config.get(f"{name}_steps")
  epochs = config.get(f"{name}_epochs")
  if num_steps is not None and epochs is not None:
    raise ConfigError(f"both {prefix}{name}_steps={num_steps} and {prefix}{name}_epochs={epochs} "
                      "are set: set only one (the other to None)")
  if num_steps is not None:
    return int(num_steps)
  if epochs is not None:
    resolved = int(round(epochs * steps_per_epoch))
    # A cadence of a fraction of an epoch on a tiny dataset still means every step.
    return max(resolved, 1) if name.endswith("every") and epochs > 0 else resolved
  if default is None:
    raise ConfigError(f"neither {prefix}{name}_steps nor {prefix}{name}_epochs is set: set one")
  return default


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A run's durations in steps."""
  steps_per_epoch: int
  total_steps: int
  warmup_steps: int
  checkpoint_every_steps: int
  eval_every_steps: int  # evaluation runs' test-split cadence; 0 where the config has none


def schedule(config, num_examples):
  """The `Schedule` of `config` for a training split of `num_examples` at its final batch size."""
  steps_per_epoch = max(num_examples // config.input.batch_size, 1)
  total_steps = steps(config, "total", steps_per_epoch)
  if total_steps < 1:  # total_epochs too small for this dataset (total_steps is validated)
    raise ConfigError(f"total_epochs={config.total_epochs} is {total_steps} steps at "
                      f"{steps_per_epoch} steps per epoch ({num_examples} examples, batch "
                      f"{config.input.batch_size}): train at least one step (raise "
                      "total_epochs or set total_steps)")
  return Schedule(
      steps_per_epoch=steps_per_epoch,
      total_steps=total_steps,
      warmup_steps=steps(config.optim, "warmup", steps_per_epoch, default=0, prefix="optim."),
      checkpoint_every_steps=steps(config, "checkpoint_every", steps_per_epoch),
      eval_every_steps=steps(config, "eval_every", steps_per_epoch, default=0))
