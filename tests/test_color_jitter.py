"""Colour jitter with the semantics of torchvision and of the two TensorFlow releases, BYOL's
(deepmind-research byol/utils/augmentations.py) and SimCLR's (google-research/simclr
tf2/data_util.py, impl "simclrv2"): each op against its formula, the draws, the per-example random
order, clipping, and the recipes that select them."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO
from ssljax.config import loading, sections, validation
from ssljax.data import augment
from ssljax.errors import ConfigError

IMPLS = sections.COLOR_JITTER_IMPLS
# Brightness, contrast and saturation of each semantics, named here so the table is pinned too.
OPS = {
    "torchvision": (augment.adjust_brightness, augment.adjust_contrast, augment.adjust_saturation),
    "tf_additive": (augment.adjust_brightness_additive, augment.adjust_contrast_per_channel,
             augment.adjust_saturation_hsv),
    "tf_scaled": (augment.adjust_brightness, augment.adjust_contrast_per_channel,
               augment.adjust_saturation_hsv),
}
# The example of TensorFlow's adjust_contrast and adjust_saturation documentation, [2, 2, 3].
TF_EXAMPLE = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], np.float32)


def _config(name):
  return loading.load(os.path.join(REPO, "configs", name))


# One shape for every batch and one for every image (TF_EXAMPLE's), so that the eager ops
# compile once for the whole file.
BATCH = 256


def _images(low=0.0, high=1.0):
  """[BATCH, 2, 2, 3] uniform in [low, high)."""
  return jnp.asarray(np.random.default_rng(0).uniform(low, high, (BATCH, 2, 2, 3)), jnp.float32)


def _jitter_keys():
  return jax.random.split(jax.random.key(0), BATCH)


def _jitter_batch(images, strength, impl):
  jitter = lambda k, x: augment.color_jitter(k, x, strength, impl)
  return np.asarray(jax.vmap(jitter)(_jitter_keys(), images))


# ------------------------------------------------------------------ the ops against formulas

def test_brightness_is_a_shift_in_byol_and_a_scale_otherwise():
  x = np.array([0.0, 0.2, 0.9], np.float32)
  np.testing.assert_allclose(augment.adjust_brightness_additive(jnp.asarray(x), 0.3),
                             [0.3, 0.5, 1.0], atol=1e-7)  # x + delta, clipped
  np.testing.assert_allclose(augment.adjust_brightness(jnp.asarray(x), 1.5), [0.0, 0.3, 1.0],
                             atol=1e-7)  # x * f, clipped: black stays black


def test_contrast_per_channel_mean_as_tensorflow_documents_it():
  # tf.image.adjust_contrast(TF_EXAMPLE, 2.) is [[-3.5, -2.5, -1.5], [2.5, 3.5, 4.5]],
  # [[8.5, 9.5, 10.5], [14.5, 15.5, 16.5]]: each channel around its own mean (5.5, 6.5, 7.5).
  documented = np.array([[[-3.5, -2.5, -1.5], [2.5, 3.5, 4.5]],
                         [[8.5, 9.5, 10.5], [14.5, 15.5, 16.5]]], np.float32)
  ours = augment.adjust_contrast_per_channel(jnp.asarray(TF_EXAMPLE / 20), 2.0)
  np.testing.assert_allclose(ours, np.clip(documented / 20, 0, 1), atol=1e-6)
  # torchvision's one luma mean for all channels gives another image.
  luma = augment.adjust_contrast(jnp.asarray(TF_EXAMPLE / 20), 2.0)
  assert np.abs(np.asarray(luma) - np.clip(documented / 20, 0, 1)).max() > 0.05
  x = np.asarray(_images()[0])
  for factor in (0.4, 1.6):
    mean = x.mean(axis=(0, 1))
    np.testing.assert_allclose(augment.adjust_contrast_per_channel(jnp.asarray(x), factor),
                               np.clip((x - mean) * factor + mean, 0, 1), atol=1e-6)
    gray = (x @ np.array([0.299, 0.587, 0.114], np.float32)).mean()
    np.testing.assert_allclose(augment.adjust_contrast(jnp.asarray(x), factor),
                               np.clip((x - gray) * factor + gray, 0, 1), atol=1e-6)


def test_saturation_scales_hsv_as_tensorflow_documents_it():
  # tf.image.adjust_saturation(TF_EXAMPLE, 0.5) is [[2, 2.5, 3], [5, 5.5, 6]],
  # [[8, 8.5, 9], [11, 11.5, 12]]: max (V) and hue kept, max - min halved.
  documented = np.array([[[2, 2.5, 3], [5, 5.5, 6]], [[8, 8.5, 9], [11, 11.5, 12]]], np.float32)
  ours = augment.adjust_saturation_hsv(jnp.asarray(TF_EXAMPLE / 12), 0.5)
  np.testing.assert_allclose(ours, documented / 12, atol=1e-6)
  # torchvision's blend with the grayscale image gives another image.
  blend = augment.adjust_saturation(jnp.asarray(TF_EXAMPLE / 12), 0.5)
  assert np.abs(np.asarray(blend) - documented / 12).max() > 0.03
  # In HSV each channel is v - v * s * k(hue): scaling s by f scales v - x by min(f, 1 / s)
  # (s clipped to 1), while the blend is gray + (x - gray) * f, clipped.
  x = np.asarray(_images()[0])
  v, low = x.max(-1, keepdims=True), x.min(-1, keepdims=True)
  s = (v - low) / v
  gray = (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
  for factor in (0.3, 1.7, 6.0):
    np.testing.assert_allclose(augment.adjust_saturation_hsv(jnp.asarray(x), factor),
                               v - (v - x) * np.minimum(factor, 1 / s), atol=1e-5)
    np.testing.assert_allclose(augment.adjust_saturation(jnp.asarray(x), factor),
                               np.clip(gray + (x - gray) * factor, 0, 1), atol=1e-6)


# ------------------------------------------------------------------ draws, order, clipping

@pytest.mark.parametrize("impl", IMPLS)
def test_jitter_is_the_ops_in_the_drawn_order_with_the_drawn_factors(impl):
  # The draws: split(key, 5), factors U(1-s, 1+s) (BYOL's brightness shift U(-b, b), hue
  # U(-h, h)), the order permutation(keys[4], 4); each op clips. For "torchvision", the
  # default, these are the draws and ops of the jitter before the TF semantics existed.
  b, c, s, h = strength = (0.8, 0.8, 0.8, 0.2)
  images, key = _images(), _jitter_keys()[0]
  x = images[0]
  keys = jax.random.split(key, 5)
  draw = lambda k, low, high: jax.random.uniform(k, (), minval=low, maxval=high)
  brightness, contrast, saturation = OPS[impl]
  b_range = (-b, b) if impl == "tf_additive" else (1 - b, 1 + b)
  ops = [lambda y: brightness(y, draw(keys[0], *b_range)),
         lambda y: contrast(y, draw(keys[1], 1 - c, 1 + c)),
         lambda y: saturation(y, draw(keys[2], 1 - s, 1 + s)),
         lambda y: augment.adjust_hue(y, draw(keys[3], -h, h))]
  expected = x
  for index in np.asarray(jax.random.permutation(keys[4], 4)):
    expected = ops[index](expected)
  np.testing.assert_allclose(_jitter_batch(images, strength, impl)[0], expected, atol=1e-6)
  if impl == "torchvision":
    default = jax.vmap(lambda k, y: augment.color_jitter(k, y, strength))(_jitter_keys(), images)
    np.testing.assert_array_equal(default, _jitter_batch(images, strength, impl))


@pytest.mark.parametrize("impl", IMPLS)
def test_brightness_draws_of_each_semantics(impl):
  # Only brightness on (the other ops at identity): BYOL's views are x + delta per example,
  # delta in [-0.2, 0.2] of both signs; the others' x * f, f in [0.8, 1.2]. No clipping here.
  x = _images(0.3, 0.6)
  out = _jitter_batch(x, (0.2, 0.0, 0.0, 0.0), impl)
  x = np.asarray(x)
  change = out - x if impl == "tf_additive" else out / x
  per_example = change.reshape(BATCH, -1)
  np.testing.assert_allclose(per_example, per_example[:, :1].repeat(per_example.shape[1], 1),
                             atol=2e-5)
  centre = 0.0 if impl == "tf_additive" else 1.0
  drawn = per_example[:, 0] - centre
  assert np.abs(drawn).max() <= 0.2 + 1e-5 and drawn.min() < -0.1 and drawn.max() > 0.1


@pytest.mark.parametrize("impl", IMPLS)
def test_order_is_random_per_example(impl, monkeypatch):
  # Markers append the op's digit (1 brightness, 2 contrast, 3 saturation, 4 hue), so each
  # example's result spells the order it got: every example a permutation, all 24 occur.
  marker = lambda digit: lambda x, _: x * 10 + digit
  monkeypatch.setitem(augment.COLOR_JITTER_OPS, impl, (marker(1), marker(2), marker(3)))
  monkeypatch.setattr(augment, "adjust_hue", marker(4))
  orders = _jitter_batch(jnp.zeros((BATCH, 2, 2, 3)), (0.4, 0.4, 0.4, 0.1), impl)
  orders = [str(int(round(v))) for v in orders[:, 0, 0, 0]]
  assert all(sorted(order) == list("1234") for order in orders)
  assert len(set(orders)) == 24
  firsts = np.array([order[0] for order in orders])
  for op in "1234":  # each op first in a quarter of the examples (4 sigma)
    assert abs((firsts == op).mean() - 0.25) < 4 * np.sqrt(0.25 * 0.75 / len(orders))


@pytest.mark.parametrize("impl", IMPLS)
def test_strong_jitter_stays_in_the_unit_range(impl):
  out = _jitter_batch(_images(), (0.8, 0.8, 0.8, 0.2), impl)
  assert out.min() >= 0.0 and out.max() <= 1.0
  assert (out == 0.0).any() and (out == 1.0).any()  # the strong draws were clipped


def test_views_use_the_configured_semantics(monkeypatch):
  monkeypatch.setattr(augment, "color_jitter",
                      lambda key, x, strength, impl: jnp.full_like(x, IMPLS.index(impl) / 4))
  aug = sections.base_config().aug
  aug.crop, aug.flip, aug.color_jitter_prob = False, False, 1.0
  images = jnp.zeros((BATCH, 2, 2, 3), jnp.uint8)
  for impl in IMPLS:
    aug.color_jitter_impl = impl
    view, _ = augment.siamese_views(jax.random.key(0), images, 2, aug)
    raw = np.asarray(view) * np.asarray(augment.IMAGENET_STD) + augment.IMAGENET_MEAN
    np.testing.assert_allclose(raw, IMPLS.index(impl) / 4, atol=1e-6)


# ------------------------------------------------------------------ recipes and validation

def test_the_tf_releases_recipes_use_their_jitter():
  impl = lambda name: _config(name).aug.color_jitter_impl
  assert impl("byol_r50.py") == "tf_additive"
  assert impl("simclr_r50.py") == "tf_scaled"
  # SwAV, MoCo and SimSiam use torchvision's ColorJitter; CIFAR-10 and runlocal keep theirs.
  for name in ("swav_r50.py", "moco_v2_r50.py", "moco_v3_r50.py", "simsiam_r50.py",
               "byol_r50.py:runlocal", "simclr_r50.py:runlocal", "byol_cifar10.py",
               "simclr_cifar10.py"):
    assert impl(name) == "torchvision", name


def test_jitter_names_agree_and_are_validated():
  assert tuple(augment.COLOR_JITTER_OPS) == IMPLS
  config = _config("byol_cifar10.py")
  config.unlock()
  config.aug.color_jitter_impl = "tf"
  with pytest.raises(ConfigError) as error:
    validation.validate(config)
  assert str(error.value) == ("aug.color_jitter_impl='tf' is invalid: use torchvision or "
                              "tf_additive or tf_scaled")
