"""Evaluators run during pre-training, configured under `config.evals.<name>`.

Each evaluator is built as `Evaluator(config, eval_config, method, mesh)` and has
`run(variables, step) -> (scalars, images)`, an `every_steps` attribute and a
`random_init_baseline` flag (also evaluate a random-init encoder once, as a floor). The trainer knows
nothing else about them.
"""
from ssljax.errors import ConfigError


def build(config, method, mesh):
  """{name: evaluator} for every entry of `config.evals` (key `type` picks the kind)."""
  from ssljax.evals import knn, recon  # pylint: disable=g-import-not-at-top
  kinds = {"knn": knn.KnnEvaluator, "recon": recon.ReconstructionEvaluator}
  evaluators = {}
  for name, eval_config in config.get("evals", {}).items():
    kind = eval_config.get("type", name)
    if kind not in kinds:
      raise ConfigError(f"evals.{name}.type={kind!r} is unknown: use one of "
                        f"{', '.join(kinds)}")
    evaluators[name] = kinds[kind](config, eval_config, method, mesh)
  return evaluators
