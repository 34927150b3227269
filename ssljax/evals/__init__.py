"""Evaluation: evaluators the run loop calls (kNN, reconstruction figures, test top-1), the
feature extractors of evaluation runs (`features`), and their `results.json` (`run_record`).

An evaluator has `run(variables, step) -> (scalars, images)`, `every_steps` (0: only at the end)
and `random_init_baseline` (also evaluate a random-init encoder once, as a floor). The loop
knows nothing else about them; their scalars are logged as `<name>/<scalar>`.
"""
from ssljax.config import durations
from ssljax.errors import ConfigError


def build(config, method, mesh, steps_per_epoch):
  """{name: evaluator} for every entry of `config.evals` (key `type` picks the kind); their
  cadences (`every_steps` or `every_epochs`) resolved with `steps_per_epoch`."""
  from ssljax.evals import knn, recon  # pylint: disable=g-import-not-at-top
  kinds = {"knn": knn.KnnEvaluator.from_config, "recon": recon.ReconstructionEvaluator}
  evaluators = {}
  for name, eval_config in config.get("evals", {}).items():
    kind = eval_config.get("type", name)
    if kind not in kinds:
      raise ConfigError(f"evals.{name}.type={kind!r} is unknown: use one of "
                        f"{', '.join(kinds)}")
    every = durations.steps(eval_config, "every", steps_per_epoch, default=0,
                            prefix=f"evals.{name}.")
    evaluators[name] = kinds[kind](config, eval_config, method, mesh, every)
  return evaluators
