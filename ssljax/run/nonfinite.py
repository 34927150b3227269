"""Non-finite updates: skipped inside the step, counted, and stopping the run when too many
come in a row (pre-training and fine-tuning share this).

A non-finite loss or gradient (bf16 overflow, a bad batch) keeps the previous state, so the
state, and every checkpoint of it, stays finite.
"""
import jax
import jax.numpy as jnp
import optax

from ssljax.errors import UserError


class TrainingDiverged(UserError):
  """The loss or gradient became NaN/Inf; the message names the step and the checkpoint."""


def guard_update(loss, grads, new, old, skipped_steps):
  """(`new`, or `old` where loss or grads are not finite; counts [2]; grad norm).

  `skipped_steps` [2] int32 counts all skipped updates and the current run of them.
  """
  grad_norm = optax.tree.norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)
  skipped = jnp.where(finite, jnp.stack([skipped_steps[0], 0]), skipped_steps + 1)
  return kept, skipped, grad_norm


def check(values, limit, step, what, checkpointer, fix):
  """Raises TrainingDiverged when the logged `values` show more than `limit` skips in a row."""
  if values["consecutive_skips"] > limit:
    checkpointer.wait()
    raise TrainingDiverged(
        f"{what} {values['loss']} / grad norm {values['grad_norm']} at step {step}, "
        f"{int(values['consecutive_skips'])} non-finite steps in a row (limit "
        f"max_consecutive_skips={limit}); in {checkpointer.directory} a rerun "
        f"{checkpointer.resume_point()}: {fix}")
