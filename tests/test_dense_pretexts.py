"""The dense-prediction pretexts (denoising, context encoder, colorization): RGB<->Lab against
the reference formula, the corruption and mask statistics the configs ask for, the losses'
targets and regions, the colorization bins, soft targets and rebalancing weights, and a
runlocal pre-training whose loss falls and whose checkpoint the kNN probe reads."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax.data import augment, lab
from ssljax.errors import ConfigError
from ssljax.methods import colorization, context_encoder, dense_prediction, denoising
from ssljax.run import pretrain, run_types
from ssljax.runtime import metrics


def test_lab_matches_the_reference_values_and_round_trips():
  rgb = jnp.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0],
                   [0.0, 0.0, 0.0]])
  # CIE Lab (D65) of sRGB white, red, green, blue, black from the standard formulas
  expected = [[100.0, 0.0, 0.0], [53.24, 80.09, 67.20], [87.73, -86.18, 83.18],
              [32.30, 79.19, -107.86], [0.0, 0.0, 0.0]]
  np.testing.assert_allclose(lab.rgb_to_lab(rgb), expected, atol=0.01)
  colours = np.random.default_rng(0).uniform(size=(500, 3)).astype(np.float32)
  np.testing.assert_allclose(lab.lab_to_rgb(lab.rgb_to_lab(colours)), colours, atol=1e-3)
  centres = lab.in_gamut_bins(10)
  assert len(centres) == lab.IN_GAMUT_BINS_AT_10 and np.all(centres % 10 == 0)
  # every colour falls within half a cell of some bin
  ab = np.asarray(lab.rgb_to_lab(colours))[:, 1:]
  assert np.max(np.min(np.abs(ab[:, None] - centres).max(-1), axis=1)) <= 5.0 + 1e-4


def test_hard_and_soft_encodings_pick_the_bin_of_a_known_ab_value():
  centres = jnp.asarray(lab.in_gamut_bins(10))
  index = int(np.flatnonzero((np.asarray(centres) == [20.0, -30.0]).all(-1))[0])
  ab = jnp.array([[21.0, -31.0], [20.0, -30.0]])
  assert colorization.hard_encode(ab, centres).tolist() == [index, index]
  soft = np.asarray(colorization.soft_encode(ab, centres, neighbours=5, sigma=5.0))
  np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-6)
  assert (soft > 0).sum(-1).tolist() == [5, 5] and soft.argmax(-1).tolist() == [index, index]
  # on a centre: its 4 grid neighbours (10 away) get exp(-100 / 50) of its weight
  neighbours = np.sort(soft[1])[-5:-1]
  np.testing.assert_allclose(neighbours / soft[1, index], np.exp(-2.0), rtol=1e-5)
  one_hot = colorization.soft_encode(ab, centres, neighbours=1)
  np.testing.assert_array_equal(one_hot, jax.nn.one_hot([index, index], len(centres)))


def test_rebalancing_weights_have_expectation_one_under_the_empirical_distribution():
  centres = lab.in_gamut_bins(10)
  p = np.random.default_rng(1).dirichlet(np.full(len(centres), 0.1))
  smoothed = colorization.smooth_distribution(p, centres, sigma=5.0)
  np.testing.assert_allclose(smoothed.sum(), 1.0)
  weights = colorization.rebalancing_weights(smoothed, mix=0.5)
  np.testing.assert_allclose(np.sum(smoothed * weights), 1.0, rtol=1e-9)
  assert weights[np.argmin(smoothed)] > 1 > weights[np.argmax(smoothed)]  # rare bins count more
  np.testing.assert_allclose(colorization.rebalancing_weights(smoothed, mix=1.0), 1.0)


def test_fit_state_measures_the_ab_distribution_of_the_training_images():
  config = load_config("colorization_cifar10", "runlocal")
  red = np.zeros((8, 8, 3), np.uint8)
  red[..., 0] = 255
  source = [{"image": red, "label": 0}] * 3
  p = colorization.empirical_distribution(config, source)
  centres = lab.in_gamut_bins(10)
  red_bin = colorization.hard_encode(jnp.array([80.09, 67.20]), jnp.asarray(centres))
  assert p[int(red_bin)] == 1.0
  state = colorization.fit_state(config, source)["ab_prior"]
  assert int(np.argmax(state["distribution"])) == int(red_bin)
  np.testing.assert_allclose(np.sum(state["distribution"] * state["weights"]), 1.0, rtol=1e-5)


def test_a_perfect_prediction_of_the_bins_gives_the_minimal_loss():
  centres = jnp.asarray(lab.in_gamut_bins(10))
  ab = jax.random.uniform(jax.random.key(0), (2, 4, 4, 2), minval=-40, maxval=40)
  pixel_weights = jax.random.uniform(jax.random.key(1), (2, 4, 4), minval=0.5, maxval=2.0)
  for neighbours in (5, 1):
    target = colorization.soft_encode(ab, centres, neighbours)
    perfect = jnp.log(jnp.maximum(target, 1e-30))
    best = float(colorization.weighted_cross_entropy(perfect, target, pixel_weights))
    entropy = -jnp.sum(target * jnp.log(jnp.maximum(target, 1e-30)), -1)
    np.testing.assert_allclose(best, jnp.mean(pixel_weights * entropy), rtol=1e-5, atol=1e-6)
    if neighbours == 1:
      assert best == pytest.approx(0.0, abs=1e-6)
    for seed in range(3):
      other = jnp.log(jnp.maximum(target, 1e-3)) + jax.random.normal(jax.random.key(seed),
                                                                     perfect.shape)
      assert float(colorization.weighted_cross_entropy(other, target, pixel_weights)) > best


def test_grayscale_images_weigh_nothing_in_the_colorization_loss():
  config = load_config("colorization_cifar10", "runlocal")
  q = len(colorization.bins(config))
  colour = jax.random.uniform(jax.random.key(0), (8, 8, 2), minval=-40, maxval=40)
  gray = jnp.zeros((8, 8, 2)).at[1, 1].set(30.0)  # off the every-4th-pixel grid: still gray
  ab = jnp.stack([colour, gray])
  np.testing.assert_array_equal(colorization.colourful(ab, 5.0), [1.0, 0.0])
  state = {"ab_prior": {"weights": jnp.ones(q)}}
  out = jax.random.normal(jax.random.key(1), (2, 8, 8, q))
  grads = {}
  for threshold in (5.0, None):
    with config.unlocked():
      config.colorization.gray_threshold = threshold
    loss = lambda o: colorization.colorization_loss(config, o, ab, state)[0]
    grads[threshold] = jax.grad(loss)(out)
    assert float(jnp.abs(grads[threshold][0]).sum()) > 0
  assert not np.asarray(grads[5.0][1]).any() and np.asarray(grads[None][1]).any()
  np.testing.assert_allclose(grads[5.0][0], grads[None][0], rtol=1e-5)


def test_corruption_zeroes_the_configured_fraction_and_adds_noise_of_the_configured_std():
  clean = jax.random.uniform(jax.random.key(0), (4, 32, 32, 3), minval=0.2, maxval=1.0)
  corrupted, mask = denoising.corrupt(jax.random.key(1), clean, 0.0, 0.3)
  assert np.asarray(mask.sum((1, 2))).tolist() == [round(0.3 * 1024)] * 4
  np.testing.assert_array_equal(corrupted[mask == 1], 0.0)
  np.testing.assert_array_equal(corrupted[mask == 0], clean[mask == 0])
  assert not np.array_equal(mask[0], mask[1])  # each image its own pixels
  noisy, none = denoising.corrupt(jax.random.key(2), clean, 0.1, 0.0)
  assert float(none.sum()) == 0
  residual = np.asarray(noisy - clean)
  assert np.std(residual) == pytest.approx(0.1, rel=0.03) and abs(np.mean(residual)) < 0.005


def test_the_denoising_target_is_the_clean_image_whatever_the_noise(monkeypatch):
  """A network that outputs the clean view scores zero; its input was the corrupted view."""
  config = load_config("denoising_cifar10", "runlocal")
  clean = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3))
  seen = {}
  def clean_network(model, params, state, inputs, train=True):
    seen["input"] = inputs
    return augment.standardize(clean), state, None
  monkeypatch.setattr(dense_prediction, "training_pixels", lambda c, rng, batch: clean)
  monkeypatch.setattr(dense_prediction, "predict", clean_network)
  for std, fraction, loss_on in ((0.3, 0.0, "all"), (0.2, 0.25, "corrupted")):
    with config.unlocked():
      config.denoising.gaussian_std, config.denoising.mask_fraction = std, fraction
      config.denoising.loss_on = loss_on
    value, (_, step_metrics) = denoising.loss(config, {}, {}, {"image": None}, jax.random.key(3))
    assert float(value) == 0.0
    assert float(step_metrics["input_mse"]) > 0.01  # the input was not the target
    assert not np.allclose(seen["input"], augment.standardize(clean))


def test_context_encoder_masks_have_the_configured_area_and_the_loss_only_sees_the_region():
  c = load_config("context_encoder_cifar10").context_encoder  # centre, half the side, overlap 2
  masks = lambda key, c: jax.jit(lambda k: context_encoder.batch_masks(k, 8, 32, c))(key)
  region, hole = masks(jax.random.key(0), c)
  assert np.asarray(region.sum((1, 2))).tolist() == [256.0] * 8  # 1/4 of 32 x 32
  assert np.asarray(hole.sum((1, 2))).tolist() == [144.0] * 8  # shrunk by 2 px each side
  np.testing.assert_array_equal(region[0, 8:24, 8:24], 1.0)
  np.testing.assert_array_equal(hole[0, 10:22, 10:22], 1.0)
  with c.unlocked():
    c.region, c.num_blocks, c.block_fraction = "random_blocks", 1, 0.25
  single = masks(jax.random.key(1), c)[0]
  assert np.asarray(single.sum((1, 2))).tolist() == [64.0] * 8
  with c.unlocked():
    c.num_blocks = 4
  blocks, block_holes = masks(jax.random.key(1), c)
  areas = np.asarray(blocks.sum((1, 2)))
  assert np.all((areas >= 64) & (areas <= 256)) and len(set(areas.tolist())) > 1
  assert np.all(np.asarray(block_holes) <= np.asarray(blocks))
  # the loss: zero gradient outside the region, the overlap border weighted 10x the hole
  images = jax.random.normal(jax.random.key(2), (8, 32, 32, 3))
  pred = jax.random.normal(jax.random.key(3), (8, 32, 32, 3))
  grad = jax.grad(lambda p: context_encoder.region_loss(p, images, region, hole, 10.0))(pred)
  grad = np.abs(np.asarray(grad)).sum(-1)
  assert np.all(grad[np.asarray(region) == 0] == 0) and np.all(grad[np.asarray(region) == 1] > 0)
  # the hidden input does not depend on the pixels in the hole
  hidden_grad = jax.grad(lambda x: jnp.sum(context_encoder.hide(x, hole) ** 2))(images)
  np.testing.assert_array_equal(np.abs(hidden_grad).sum(-1)[np.asarray(hole) == 1], 0.0)


def test_the_encoder_decoder_returns_the_input_resolution_for_resnets_and_vits():
  for variant, stages in (("resnet18", 3), ("mu/4", 2)):  # 32 px to 4 x 4, and to 8 x 8
    config = load_config_with("denoising_cifar10", "runlocal", model__variant=variant)
    assert dense_prediction.decoder_stages(config) == stages
    model = denoising.build_model(config)
    images = jnp.zeros((2, 32, 32, 3))
    variables = jax.eval_shape(model.init, jax.random.key(0), images)
    out, extra = jax.eval_shape(lambda v: model.apply(v, images), variables)
    assert out.shape == (2, 32, 32, 3) and set(variables["params"]) == {"backbone", "decoder"}
    assert extra["pooled"].shape[0] == 2
  with pytest.raises(ConfigError, match="input.image_size=36"):
    pretrain.validate(load_config_with("denoising_cifar10", "runlocal", input__image_size=36))


def _losses(workdir):
  return [r["loss"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r]


# Slow (about 100 s of CPU each): the pieces above are the default suite's checks.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["denoising_cifar10", "context_encoder_cifar10",
                                  "colorization_cifar10"])
def test_runlocal_pretraining_lowers_the_loss_and_its_checkpoint_is_knn_probed(name, tmp_path):
  config = load_config(name, "runlocal")
  with config.unlocked():
    config.total_steps, config.optim.lr = 6, 3e-3
    config.evals = {}
  summary = run_types.run(config, str(tmp_path / "pretrain"))
  losses = _losses(tmp_path / "pretrain")
  assert summary["step"] == 6 and len(losses) == 6 and np.all(np.isfinite(losses))
  # by 3% (colorization of the grey digits, whose ab sit in one bin) to over 10% in 6 steps
  assert losses[-1] < 0.98 * losses[0], losses
  probe = load_config_with("probe_demo", "runlocal,protocol=knn,recipe=simsiam",
                           init_from=str(tmp_path / "pretrain"))
  record = run_types.run(probe, str(tmp_path / "knn"))["record"]
  assert record["encoder"].startswith(f"{config.method} encoder") and record["value"] > 0.2
