"""What a run type hands the loop: everything that differs between pre-training, a linear probe,
fine-tuning and a kNN evaluation, as data and functions. The loop (`ssljax.run.loop`) owns the
rest and knows no run type by name.

A run type is a module with `validate(config)` and `plan(config, mesh) -> Plan`
(`ssljax.run.registry` picks it from the config).
"""
import dataclasses
from typing import Any, Callable, Optional

import optax

from ssljax.run import step


def _unchanged(state):
  return state


def _state_variables(state):
  return state.variables()


@dataclasses.dataclass
class Plan:
  """A run type's parts. Shapes: `batch` is this host's slice of a global batch, a dict of
  [b, ...] arrays; `params` / `model_state` are pytrees."""
  name: str  # "pre-training", "linear probe", ... in logs and errors
  data: Any  # endless iterator of this host's batches, with get_state() / set_state(s) / close()
  source: Any  # the training split (its `skipped_files`, if any, are counted)
  batch_size: int  # global
  schedule: Any  # config.durations.Schedule
  # key -> (params, model_state) at random init; jitted by the loop with the state shardings.
  init: Callable
  # (params, model_state, frozen, batch, rng) -> (loss, (model_state, metrics))
  objective: Callable
  tx: optax.GradientTransformation
  learning_rate: Callable  # step -> learning rate (logged)
  frozen: Any = ()  # constants of the step: a frozen encoder's variables (not checkpointed)
  # (params, model_state, step) -> (params, model_state) after each update (EMA targets, ...)
  after_update: Callable = step.keep
  # state -> state, applied once to a fresh (not a resumed) state: pre-trained weights
  start: Callable = _unchanged
  # state -> the variables evaluators get
  eval_variables: Callable = _state_variables
  evaluators: dict = dataclasses.field(default_factory=dict)  # {name: evaluator}
  sharded_state: tuple = ()  # model_state leaves sharded over the batch axis
  flops_per_example: float = 0  # model FLOPs of one example's step (TFLOP/s, MFU); 0: unknown
  description: str = ""  # logged once: what is trained, on what
  # results.json of an evaluation run: the fields known before it trains, and
  # (evaluation scalars) -> {"metric": name, "value": v, ...} at its end.
  record: Optional[dict] = None
  result: Optional[Callable] = None
  # an evaluation scalar ("linear_probe/top1") whose best over all the run's evaluations
  # results.json keeps too (`run_record.best_evaluation`); "": none
  best_of: str = ""
