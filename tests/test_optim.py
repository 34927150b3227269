"""Optimizer from config: lr scaling, schedule, weight-decay mask."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from ssljax.run import optim
from ssljax.methods import mae


def test_linear_lr_scaling_and_warmup_cosine_schedule():
  c = load_config("mae_vitb")
  assert optim.peak_learning_rate(c.optim, 4096) == pytest.approx(1.5e-4 * 4096 / 256)
  lr = optim.schedule(c.optim, 4096, total_steps=1000, warmup_steps=100)
  peak = 1.5e-4 * 16
  assert float(lr(0)) == 0.0
  assert float(lr(50)) == pytest.approx(peak / 2, rel=1e-5)
  assert float(lr(100)) == pytest.approx(peak, rel=1e-5)
  assert float(lr(550)) == pytest.approx(peak / 2, rel=1e-4)  # cosine half-way
  assert float(lr(1000)) == pytest.approx(0.0, abs=1e-9)


def test_no_weight_decay_on_biases_norms_tokens():
  c = load_config("mae_vitb", "runlocal")
  params = jax.eval_shape(lambda: mae.init(c, jax.random.key(0), (1, 32, 32, 3)))["params"]
  mask = optim.weight_decay_mask(params, c.optim.wd_exclude)
  flat = {optim.path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}
  assert flat["encoder/blocks_0/attn/qkv/kernel"]
  assert flat["decoder/decoder_pred/kernel"]
  assert flat["encoder/patch_embed/kernel"]
  for name in ("encoder/blocks_0/attn/qkv/bias", "encoder/blocks_0/norm1/scale",
               "encoder/cls_token", "decoder/mask_token", "encoder/norm/bias"):
    assert not flat[name], name


def test_weight_decay_leaves_excluded_parameters_alone():
  c = load_config("mae_vitb", "runlocal")
  params = {"w": jnp.ones((3, 3)), "bias": jnp.ones((3,)), "cls_token": jnp.ones((1, 1, 3))}
  with c.unlocked():
    c.optim.lr = 1.0
  tx, _ = optim.make(c.optim, 256, total_steps=10, warmup_steps=0)
  state = tx.init(params)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, state, params)
  # with zero gradients only decoupled weight decay moves parameters (cosine lr at step 0 = 1)
  assert float(jnp.abs(updates["w"]).sum()) > 0
  np.testing.assert_array_equal(updates["bias"], 0)
  np.testing.assert_array_equal(updates["cls_token"], 0)
