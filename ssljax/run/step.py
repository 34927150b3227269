"""The one train step of every run type: value_and_grad of the run type's objective (optionally
over micro-batches), the optimizer's update, the run type's `after_update`, and the non-finite
guard. The step key is fold_in(key(seed), step)."""
import jax
import jax.numpy as jnp
import optax

from ssljax.run import nonfinite
from ssljax.run.state import TrainState


def _first_dim(batch):
  return jax.tree.leaves(batch)[0].shape[0]


def accumulated(value_and_grad, accum, params, model_state, frozen, batch, rng):
  """value_and_grad over `accum` micro-batches run one after the other: the mean loss, metrics
  and gradient. The batch gains `example_index` (each example's index in the whole batch), so
  per-example random keys, and without BatchNorm the update, are the large batch's. Micro-batch
  j holds examples j, j + accum, ...: every device keeps computing on its own examples."""
  size = _first_dim(batch)
  batch = dict(batch, example_index=jnp.arange(size))
  micro = jax.tree.map(
      lambda x: jnp.moveaxis(x.reshape((size // accum, accum) + x.shape[1:]), 1, 0), batch)

  def one(carry, micro_batch):
    grad_sum, state = carry
    (loss, (state, step_metrics)), grads = value_and_grad(params, state, frozen, micro_batch, rng)
    return (jax.tree.map(jnp.add, grad_sum, grads), state), (loss, step_metrics)

  zeros = jax.tree.map(jnp.zeros_like, params)
  (grad_sum, model_state), (losses, step_metrics) = jax.lax.scan(one, (zeros, model_state),
                                                                 micro)
  mean = lambda x: jnp.mean(x, axis=0)
  return ((mean(losses), (model_state, jax.tree.map(mean, step_metrics))),
          jax.tree.map(lambda g: g / accum, grad_sum))


def keep(params, model_state, step):
  del step
  return params, model_state


def make_train_step(objective, tx, learning_rate, seed, after_update=keep, grad_accum_steps=1):
  """(state, frozen, batch) -> (state, metrics).

  `objective(params, model_state, frozen, batch, rng) -> (loss, (model_state, metrics))`;
  `frozen` holds constants of the step (a frozen encoder), never differentiated or updated;
  `after_update(params, model_state, step) -> (params, model_state)` runs after the optimizer.
  """
  base_key = jax.random.key(seed)
  value_and_grad = jax.value_and_grad(objective, argnums=0, has_aux=True)

  def train_step(state, frozen, batch):
    rng = jax.random.fold_in(base_key, state.step)
    if grad_accum_steps == 1:
      (loss, (model_state, step_metrics)), grads = value_and_grad(
          state.params, state.model_state, frozen, batch, rng)
    else:
      (loss, (model_state, step_metrics)), grads = accumulated(
          value_and_grad, grad_accum_steps, state.params, state.model_state, frozen, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    params, model_state = after_update(params, model_state, state.step)
    (params, opt_state, model_state), skipped, grad_norm = nonfinite.guard_update(
        loss, grads, (params, opt_state, model_state),
        (state.params, state.opt_state, state.model_state), state.skipped_steps)
    step_metrics = dict(step_metrics, loss=step_metrics.get("loss", loss), grad_norm=grad_norm,
                        learning_rate=learning_rate(state.step), skipped_steps=skipped[0],
                        consecutive_skips=skipped[1])
    return TrainState(state.step + 1, params, opt_state, model_state, skipped), step_metrics

  return train_step
