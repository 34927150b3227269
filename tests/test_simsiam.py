"""SimSiam: the loss, stop-gradient, augmentations, SyncBN statistics, ablation switches."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from ssljax.run import optim, pretrain, run_types
from ssljax.run.state import TrainState
from ssljax.runtime import metrics, sharding
from ssljax.data import augment
from ssljax import methods
from ssljax.methods import simsiam


def test_loss_is_minus_one_for_identical_inputs_and_bounded():
  z = jax.random.normal(jax.random.key(0), (16, 32))
  np.testing.assert_allclose(simsiam.symmetric_loss(z, z, z, z), -1.0, rtol=1e-6)
  np.testing.assert_allclose(simsiam.symmetric_loss(-z, -z, z, z), 1.0, rtol=1e-6)
  for seed in range(5):
    a, b, c, d = jax.random.normal(jax.random.key(seed), (4, 16, 32))
    assert -1.0 <= float(simsiam.symmetric_loss(a, b, c, d)) <= 1.0


def test_no_gradient_reaches_the_stop_gradient_branch():
  p1, p2, z1, z2 = jax.random.normal(jax.random.key(1), (4, 8, 16))
  grads = jax.grad(simsiam.symmetric_loss, argnums=(0, 1, 2, 3))(p1, p2, z1, z2, True)
  assert float(jnp.abs(grads[0]).sum()) > 0 and float(jnp.abs(grads[1]).sum()) > 0
  np.testing.assert_array_equal(grads[2], 0)
  np.testing.assert_array_equal(grads[3], 0)
  no_sg = jax.grad(simsiam.symmetric_loss, argnums=(2, 3))(p1, p2, z1, z2, False)
  assert all(float(jnp.abs(g).sum()) > 0 for g in no_sg)


def test_output_std_is_zero_when_collapsed_and_about_one_over_sqrt_d_when_spread():
  collapsed = jnp.ones((64, 128)) * jnp.arange(128)
  assert float(simsiam.output_std(collapsed)) < 1e-6
  spread = jax.random.normal(jax.random.key(2), (4096, 128))
  np.testing.assert_allclose(simsiam.output_std(spread), 1 / np.sqrt(128), rtol=0.05)


def test_views_are_deterministic_per_key_and_differ_across_examples():
  config = load_config("simsiam_cifar10")
  images = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), np.uint8), 8, 0)
  views = jax.jit(lambda k: augment.siamese_views(k, images, 32, config.aug))
  a1, a2 = views(jax.random.key(0))
  b1, _ = views(jax.random.key(0))
  c1, _ = views(jax.random.key(1))
  np.testing.assert_array_equal(a1, b1)
  assert not np.allclose(a1, c1)
  assert not np.allclose(a1, a2)  # the two views of one image differ
  flat = np.asarray(a1).reshape(8, -1)
  assert len({row.tobytes() for row in flat}) == 8  # same image, 8 different views


def test_color_ops_are_exact_where_they_should_be():
  x = jax.random.uniform(jax.random.key(3), (6, 6, 3))
  np.testing.assert_allclose(augment.hsv_to_rgb(augment.rgb_to_hsv(x)), x, atol=1e-5)
  np.testing.assert_allclose(augment.adjust_hue(x, 0.0), x, atol=1e-5)
  np.testing.assert_allclose(augment.adjust_saturation(x, 1.0), x, atol=1e-6)
  gray = augment.grayscale(x)
  np.testing.assert_allclose(gray[..., 0], gray[..., 2])
  np.testing.assert_allclose(augment.adjust_saturation(x, 0.0), gray, atol=1e-6)


def _stats_after_one_loss(config, devices):
  mesh = sharding.make_mesh(devices)
  variables = simsiam.init(config, jax.random.key(0), (1, 32, 32, 3))
  images = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), np.uint8)
  batch = {"image": sharding.from_full_host_copy(images, sharding.batch_sharding(mesh))}
  fn = jax.jit(lambda v, b: simsiam.loss(config, v["params"], {"batch_stats": v["batch_stats"]},
                                         b, jax.random.key(2)),
               out_shardings=sharding.replicated(mesh))
  value, (state, _) = fn(variables, batch)
  return float(value), state["batch_stats"]


def test_batchnorm_statistics_are_the_same_on_one_and_eight_devices():
  config = load_config("simsiam_cifar10", "runlocal")
  loss1, stats1 = _stats_after_one_loss(config, jax.devices()[:1])
  loss8, stats8 = _stats_after_one_loss(config, jax.devices())
  np.testing.assert_allclose(loss1, loss8, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(stats1), jax.tree.leaves(stats8)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  moved = [not np.allclose(a, b) for a, b in zip(
      jax.tree.leaves(stats1), jax.tree.leaves(simsiam.init(
          config, jax.random.key(0), (1, 32, 32, 3))["batch_stats"]))]
  assert all(moved)  # every running statistic was updated by the training-mode pass


# The default suite: test_optim's frozen/fixed-lr test on SimSiam's parameter tree.
@pytest.mark.slow
@pytest.mark.parametrize("frozen", [True, False])
def test_predictor_fixed_at_random_init_never_moves(frozen):
  config = load_config("simsiam_cifar10", "runlocal")
  with config.unlocked():
    config.optim.frozen_regex = "^predictor/" if frozen else None
  variables = simsiam.init(config, jax.random.key(0), (1, 32, 32, 3))
  params = variables.pop("params")
  tx, lr = optim.make(config.optim, 32, total_steps=10, warmup_steps=0)
  state = TrainState.create(params, tx.init(params), variables)
  step = jax.jit(pretrain.make_train_step(config, methods.get("simsiam"), tx, lr, total_steps=10))
  images = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), np.uint8)
  for _ in range(2):
    state, _ = step(state, {"image": images, "label": np.zeros(32, np.int32)})
  same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                               jax.tree.leaves(b)))
  assert same(state.params["predictor"], params["predictor"]) == frozen
  assert not same(state.params["backbone"], params["backbone"])


def test_predictor_keeps_the_peak_lr_while_the_rest_decays():
  config = load_config("simsiam_cifar10")
  params = {"predictor": {"w": jnp.ones((2, 2))}, "backbone": {"w": jnp.ones((2, 2))}}
  with config.unlocked():
    config.optim.weight_decay, config.optim.momentum = 0.0, 0.0
  tx, _ = optim.make(config.optim, 256, total_steps=4, warmup_steps=0)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  peak = 0.03
  for step in range(4):
    updates, state = tx.update(grads, state, params)
    np.testing.assert_allclose(updates["predictor"]["w"], -peak, rtol=1e-6)
    expected = peak * 0.5 * (1 + np.cos(np.pi * step / 4))
    np.testing.assert_allclose(updates["backbone"]["w"], -expected, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_simsiam_runs_on_a_vit_backbone():
  config = load_config("simsiam_cifar10", "runlocal")
  with config.unlocked():
    config.model.variant = "mu/4"
  variables = simsiam.init(config, jax.random.key(0), (1, 32, 32, 3))
  images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), np.uint8)
  value, (state, metrics) = simsiam.loss(config, variables["params"],
                                         {"batch_stats": variables["batch_stats"]},
                                         {"image": images}, jax.random.key(1))
  assert -1.0 <= float(value) <= 1.0 and "backbone" not in state["batch_stats"]
  assert simsiam.encode(config, variables, images)["backbone"].shape == (8, 32)


def _short_cifar_run(stop_gradient, workdir):
  """80 SGD steps of a width-8 ResNet-18 SimSiam on real CIFAR-10 at a high base lr (2.0),
  where the ablation collapses within the budget -> the logged records."""
  config = load_config("simsiam_cifar10", "cpu")
  with config.unlocked():
    config.total_steps, config.log_every_steps, config.checkpoint_every_steps = 80, 5, 80
    config.input.batch_size, config.optim.blr = 64, 2.0
    config.model.resnet_width, config.simsiam.dim, config.simsiam.predictor_hidden_dim = 8, 128, 32
    config.simsiam.stop_gradient = stop_gradient
    config.evals = {}
  run_types.run(config, str(workdir), devices=jax.devices()[:1])
  return [r for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "prediction_std" in r]


@pytest.mark.slow
@pytest.mark.parametrize("stop_gradient", [True, False])
def test_stop_gradient_prevents_collapse_on_real_cifar10(stop_gradient, cifar10_dir, tmp_path):
  del cifar10_dir  # the config reads $SSLJAX_CIFAR10_DIR
  records = _short_cifar_run(stop_gradient, tmp_path)
  healthy = 128 ** -0.5
  first = records[0]["prediction_std"]
  last = np.mean([r["prediction_std"] for r in records[-2:]])
  assert first > 0.7 * healthy
  if stop_gradient:
    assert last > 0.6 * healthy, records
  else:  # the predictor output heads for a constant vector and the loss for -1
    assert last < 0.35 * first, records
    assert records[-1]["loss"] < -0.7, records
