"""bf16 compute with float32 parameters, optimizer state and loss, in the real train step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from ssljax import methods
from ssljax.run import optim, pretrain
from ssljax.run.state import TrainState


@pytest.mark.parametrize("name", ["demo", pytest.param("simsiam_cifar10", marks=pytest.mark.slow)])
def test_bfloat16_steps_keep_float32_state_and_track_the_float32_loss(name):
  losses = {}
  for dtype in ("float32", "bfloat16"):
    config = load_config(name, "runlocal")
    with config.unlocked():
      config.model.dtype = dtype
    method = methods.get(config.method)
    variables = dict(method.init(config, jax.random.key(0), (1, 32, 32, 3)))
    params = variables.pop("params")
    tx, lr = optim.make(config.optim, 32, total_steps=10, warmup_steps=0)
    state = TrainState.create(params, tx.init(params), variables)
    step = jax.jit(pretrain.make_train_step(config, method, tx, lr, total_steps=10))
    images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), np.uint8)
    losses[dtype] = []
    for _ in range(3):
      state, step_metrics = step(state, {"image": images, "label": np.zeros(32, np.int32)})
      assert step_metrics["loss"].dtype == jnp.float32
      losses[dtype].append(float(step_metrics["loss"]))
    floating = [x for x in jax.tree.leaves((state.params, state.opt_state, state.model_state))
                if jnp.issubdtype(x.dtype, jnp.floating)]
    assert all(x.dtype == jnp.float32 for x in floating)  # the master copies stay float32
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=0.03, atol=0.01)
