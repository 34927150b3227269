"""Optimizer from config: lr scaling, schedule, weight-decay mask, LARS update order."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from ssljax import methods
from ssljax.config import durations, sections, validation
from ssljax.errors import ConfigError
from ssljax.run import optim
from ssljax.methods import mae

IMAGENET_TRAIN = 1281167


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


def _decay_by_name(config, params):
  mask = optim.config_weight_decay_mask(config.optim, params)
  return {optim.path_name(p): m for p, m in jax.tree_util.tree_leaves_with_path(mask)}


def test_no_weight_decay_on_biases_norms_tokens():
  """The shared default of `sections.base_config` (kept by the CIFAR-10 and demo MAE configs)."""
  c = load_config("mae_vitb", "runlocal")
  params = jax.eval_shape(lambda: mae.init(c, jax.random.key(0), (1, 32, 32, 3)))["params"]
  flat = _decay_by_name(sections.base_config(), params)
  assert load_config("mae_cifar10").optim.wd_exclude == sections.base_config().optim.wd_exclude
  assert flat["encoder/blocks_0/attn/qkv/kernel"]
  assert flat["decoder/decoder_pred/kernel"]
  assert flat["encoder/patch_embed/kernel"]
  for name in ("encoder/blocks_0/attn/qkv/bias", "encoder/blocks_0/norm1/scale",
               "encoder/cls_token", "decoder/mask_token", "encoder/norm/bias"):
    assert not flat[name], name


def test_weight_decay_leaves_excluded_parameters_alone():
  c = load_config("mae_cifar10", "runlocal")  # the base default wd_exclude
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


def test_frozen_parameters_never_move_while_the_rest_trains():
  """SimSiam's predictor fixed at random init (`optim.frozen_regex`), on SimSiam's parameter
  tree with its optimizer (weight decay, the predictor's fixed lr): it moves only unfrozen."""
  c = load_config("simsiam_cifar10", "runlocal")
  shapes = jax.eval_shape(lambda: methods.get("simsiam").init(c, jax.random.key(0),
                                                              (1, 32, 32, 3)))["params"]
  params = jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)
  for frozen in ("^predictor/", None):
    with c.unlocked():
      c.optim.frozen_regex = frozen
    tx, _ = optim.make(c.optim, 256, total_steps=4, warmup_steps=0)
    state, moved = tx.init(params), params
    for _ in range(3):
      updates, state = tx.update(jax.tree.map(jnp.ones_like, moved), state, moved)
      moved = jax.tree.map(jnp.add, moved, updates)
    same = lambda part: all(bool(jnp.array_equal(a, b)) for a, b in zip(
        jax.tree.leaves(moved[part]), jax.tree.leaves(params[part])))
    assert same("predictor") == (frozen is not None)
    assert not same("backbone") and not same("projector")


def _recipe_params(name):
  """(the ImageNet recipe's config, its params tree at the runlocal model's size: same names
  and ranks, built shape-only)."""
  local = load_config(name, "runlocal")
  method = methods.get(local.method)
  shape = (2, local.input.image_size, local.input.image_size, 3)
  return load_config(name), jax.eval_shape(
      lambda: method.init(local, jax.random.key(0), shape))["params"]


def test_mae_imagenet_recipe_decays_cls_and_mask_tokens():
  """timm 0.3.2's add_weight_decay with no skip list: only 1-D params are left alone."""
  config, params = _recipe_params("mae_vitb")
  flat = _decay_by_name(config, params)
  for name in ("encoder/cls_token", "decoder/mask_token", "encoder/blocks_0/attn/qkv/kernel",
               "encoder/patch_embed/kernel", "decoder/decoder_pred/kernel"):
    assert flat[name], name
  for name in ("encoder/blocks_0/attn/qkv/bias", "encoder/blocks_0/norm1/scale",
               "encoder/norm/bias", "decoder/decoder_pred/bias"):
    assert not flat[name], name


# Whether the release decays (and, for LARS, trust-ratio scales) the 1-D params (biases, BN):
# MoCo v2 and SimSiam SGD, MoCo v3 AdamW and SwAV's LARC over model.parameters(); BYOL, SimCLR
# and MoCo v3's LARS filter biases and norms out.
DECAYS_1D = {"moco_v2_r50": True, "simsiam_r50": True, "moco_v3_vitb": True, "swav_r50": True,
             "byol_r50": False, "simclr_r50": False, "moco_v3_r50": False}


@pytest.mark.parametrize("name", sorted(DECAYS_1D))
def test_recipe_weight_decay_mask_matches_the_release(name):
  config, params = _recipe_params(name)
  flat = _decay_by_name(config, params)
  ranks = {optim.path_name(p): len(x.shape)
           for p, x in jax.tree_util.tree_leaves_with_path(params)}
  assert {k for k, decayed in flat.items() if not decayed} == (
      set() if DECAYS_1D[name] else {k for k, r in ranks.items() if r <= 1})
  assert flat["backbone/cls_token" if "vit" in name else "backbone/bn1/scale"] == DECAYS_1D[name]


def _schedule(name, arg=None):
  c = load_config(name, arg)
  s = durations.schedule(c, IMAGENET_TRAIN)
  lr = optim.schedule(c.optim, c.input.batch_size, s.total_steps, s.warmup_steps,
                      s.steps_per_epoch)
  return lambda step: float(lr(step)), s


def test_swav_warms_up_from_0_3_and_decays_to_final_lr():
  """swav_800ep_pretrain.sh / main_swav.py: linspace(0.3, 4.8) over 10 epochs, cosine to 0.0048."""
  lr, s = _schedule("swav_r50")
  assert s.warmup_steps == 10 * 312
  assert lr(0) == pytest.approx(0.3)
  assert lr(s.warmup_steps // 2) == pytest.approx((0.3 + 4.8) / 2, rel=1e-5)
  assert lr(s.warmup_steps) == pytest.approx(4.8, rel=1e-6)
  assert lr(s.total_steps) == pytest.approx(0.0048, rel=1e-4)


@pytest.mark.parametrize("name", ["simsiam_r50", "moco_v2_r50"])
def test_per_epoch_cosine_is_constant_within_an_epoch(name):
  """main_simsiam.py / main_moco.py: lr = peak * 0.5 * (1 + cos(pi * epoch / epochs)) once per
  epoch."""
  lr, s = _schedule(name)
  c = load_config(name)
  peak, spe, epochs = optim.peak_learning_rate(c.optim, c.input.batch_size), \
      s.steps_per_epoch, c.total_epochs
  for epoch in (0, 1, epochs // 2, epochs - 1):
    expected = peak * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
    for step in (epoch * spe, epoch * spe + 1, (epoch + 1) * spe - 1):
      assert lr(step) == pytest.approx(expected, rel=1e-4, abs=1e-5 * peak), (epoch, step)


def test_step_decay_multiplies_by_the_factor_at_each_epoch():
  optim_config = load_config("probe_imagenet", "recipe=moco_v2").optim
  lr = optim.schedule(optim_config, 256, 100 * 5004, 0, steps_per_epoch=5004)
  for step, expected in ((0, 30.0), (60 * 5004 - 1, 30.0), (60 * 5004, 3.0),
                         (80 * 5004 - 1, 3.0), (80 * 5004, 0.3), (100 * 5004 - 1, 0.3)):
    assert float(lr(step)) == pytest.approx(expected, rel=1e-6), step


# Releases' learning-rate tables: (epoch, lr from that epoch on), batch, crop scale. RotNet:
# FeatureLearningRotNet config/ImageNet_RotNet_AlexNet.py and CIFAR10_RotNet_NIN4blocks.py; the
# context encoder: train.lua's constant Adam lr for the L2-only loss.
RELEASE_LR = {
    "context_encoder_r50": (((0, 2e-4),), 64, (0.2, 1.0)),
    "rotation_r50": (((0, 0.01), (15, 1e-3), (30, 1e-4), (45, 1e-5)), 192, (0.08, 1.0)),
    "rotation_cifar10": (((0, 0.1), (60, 0.02), (120, 0.004), (160, 0.0008)), 128, (0.6, 1.0))}


@pytest.mark.parametrize("name", sorted(RELEASE_LR))
def test_configs_step_their_learning_rate_as_their_release(name):
  table, batch, crop_scale = RELEASE_LR[name]
  c, spe = load_config(name), 10
  assert (c.input.batch_size, tuple(c.aug.crop_scale)) == (batch, crop_scale)
  lr = optim.schedule(c.optim, batch, c.total_epochs * spe, 0, steps_per_epoch=spe)
  assert c.optim.weight_decay == (0.0 if name == "context_encoder_r50" else 5e-4)
  for (epoch, expected), (until, _) in zip(table, table[1:] + ((c.total_epochs, None),)):
    for step in (epoch * spe, until * spe - 1):
      assert float(lr(step)) == pytest.approx(expected, rel=1e-5), (epoch, step)


PRESETS = {  # (config, epochs): (optim.blr, optim.weight_decay, EMA momentum)
    ("byol_r50", 40): (0.45, 1e-6, 0.97), ("byol_r50", 100): (0.45, 1e-6, 0.99),
    ("byol_r50", 300): (0.3, 1e-6, 0.99), ("byol_r50", 1000): (0.2, 1.5e-6, 0.996),
    ("moco_v3_r50", 100): (0.6, 1e-6, 0.99), ("moco_v3_r50", 300): (0.3, 1e-6, 0.99),
    ("moco_v3_r50", 1000): (0.3, 1.5e-6, 0.996)}


@pytest.mark.parametrize("name,epochs", sorted(PRESETS))
def test_epoch_presets_of_the_release(name, epochs):
  c = load_config(name, f"epochs={epochs}")
  assert (c.optim.blr, c.optim.weight_decay, c[c.method].momentum) == PRESETS[name, epochs]
  assert c.total_epochs == epochs


@pytest.mark.parametrize("name", ["byol_r50", "moco_v3_r50"])
def test_epochs_without_a_preset_are_a_one_line_error(name):
  with pytest.raises(ConfigError, match=r"epochs=200 has no preset.*one of .*1000.*"
                     r"--config.optim.blr") as error:
    load_config(name, "epochs=200")
  assert "\n" not in str(error.value)


def _lars_reference(params, grads, lrs, weight_decay, momentum, mask):
  """The PyTorch LARS/LARC update (MAE util/lars.py, MoCo v3 moco/optimizer.py, apex LARC):
  where masked u = g + wd * w, u *= 0.001 |w| / |u| (else u = g); mu = m * mu + u;
  w -= lr * mu."""
  params, mu = dict(params), {k: np.zeros_like(v) for k, v in params.items()}
  for g, lr in zip(grads, lrs):
    for k, w in params.items():
      u = g[k]
      if mask[k]:
        u = u + weight_decay * w
        u = u * 0.001 * np.linalg.norm(w) / np.linalg.norm(u)
      mu[k] = momentum * mu[k] + u
      params[k] = w - lr * mu[k]
  return params


@pytest.mark.parametrize("after", [True, False])
def test_lars_applies_the_lr_after_momentum_like_the_pytorch_releases(after):
  c = load_config("moco_v3_r50")
  with c.unlocked():
    c.optim.lars_lr_after_momentum = after
    c.optim.weight_decay = 0.1
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(3, 4)).astype(np.float32),
            "b": rng.normal(size=(4,)).astype(np.float32)}
  grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
           for _ in range(2)]
  tx, lr = optim.make(c.optim, 256, total_steps=2, warmup_steps=0)
  lrs = [float(lr(0)), float(lr(1))]
  assert lrs[1] == pytest.approx(lrs[0] / 2)  # the lr changes between the two steps
  state, current = tx.init(params), dict(params)
  for g in grads:
    updates, state = tx.update(g, state, current)
    current = {k: current[k] + np.asarray(updates[k]) for k in current}
  expected = _lars_reference(params, grads, lrs, 0.1, 0.9, {"w": True, "b": False})
  matches = all(np.allclose(current[k], expected[k], rtol=1e-5, atol=1e-7) for k in params)
  assert matches == after


def test_nesterov_sgd_step():
  c = load_config("probe_imagenet", "recipe=byol")
  with c.unlocked():
    c.optim.lr = 0.5
  tx, _ = optim.make(c.optim, 256, total_steps=10, warmup_steps=0)
  params, grad = {"w": jnp.ones((2, 2))}, {"w": jnp.full((2, 2), 2.0)}
  updates, _ = tx.update(grad, tx.init(params), params)
  # first step: buf = g, update = -lr * (g + m * buf)
  np.testing.assert_allclose(updates["w"], -0.5 * (2.0 + 0.9 * 2.0), rtol=1e-6)


@pytest.mark.parametrize("field,value,message", [
    ("step_decay_epochs", (80, 60), "increasing epochs"),
    ("step_decay_factor", 0.0, r"factor in \(0, 1\]"),
    ("nesterov", True, "needs optim.name='sgd'"),
    ("warmup_init_lr", -1.0, "not a number >= 0")])
def test_bad_schedule_switches_are_config_errors(field, value, message):
  c = load_config("probe_imagenet", "recipe=simsiam")
  with c.unlocked():
    c.optim[field] = value
  with pytest.raises(ConfigError, match=f"optim.{field}=.*{message}"):
    validation.validate_probe(c)
