"""The train state every run type checkpoints: step, trainable params, optimizer state,
non-trainable collections, and the skipped-update counters of the non-finite guard."""
from typing import Any

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # what the optimizer updates (a method's networks, a probe's head, a classifier)
  opt_state: Any
  model_state: Any  # non-trainable collections (batch stats, EMA targets, queues)
  skipped_steps: jax.Array  # [2] int32: all skipped updates, and the current run of them

  @classmethod
  def create(cls, params, opt_state, model_state):
    """The state at step 0."""
    return cls(jnp.zeros((), jnp.int32), params, opt_state, model_state,
               jnp.zeros((2,), jnp.int32))

  def variables(self):
    """{"params": ..., other collections}: what `model.apply` and evaluators take."""
    return {"params": self.params, **self.model_state}
