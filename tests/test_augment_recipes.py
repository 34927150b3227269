"""The official releases' augmentation choices: per-view blur and solarize (BYOL, MoCo v3), the
three crop-box samplers (torchvision, BYOL's clamped draw, TensorFlow's
sample_distorted_bounding_box for SimCLR) against independent re-derivations, and the ImageNet
recipes that turn them on, with TF's resize without antialiasing (tests/test_input_views.py)."""
import math
import os
import random
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import REPO
from ssljax.config import loading, sections, validation
from ssljax.data import augment, resized_crop
from ssljax.errors import ConfigError

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import torchvision_reference  # pylint: disable=g-import-not-at-top,wrong-import-position


def _config(name):
  return loading.load(os.path.join(REPO, "configs", name))


# ------------------------------------------------------------------ per-view blur, solarize

def test_solarize_inverts_what_pil_and_byol_invert():
  values = np.arange(256, dtype=np.uint8)
  pil = np.asarray(ImageOps.solarize(Image.fromarray(values[None].repeat(3, 0)[..., None]
                                                      .repeat(3, -1))))[0, :, 0]
  ours = np.asarray(augment.solarize(jnp.asarray(values, jnp.float32) / 255.0)) * 255.0
  np.testing.assert_allclose(ours, pil, atol=1e-3)  # v >= 128 -> 255 - v (PIL's threshold)
  x = np.random.default_rng(0).uniform(size=1000).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(augment.solarize(jnp.asarray(x))),
                                np.where(x < 0.5, x, 1.0 - x))  # BYOL's threshold 0.5


def test_blur_and_solarize_are_drawn_per_view_at_their_rates(monkeypatch):
  # Markers instead of the ops: channel 0 set by the blur, channel 1 by solarize. The rates
  # 1.0 and 0.0 are exact: view 1 of BYOL and MoCo v3 is always blurred, never solarized.
  monkeypatch.setattr(augment, "gaussian_blur", lambda _, x: x.at[..., 0].set(1.0))
  monkeypatch.setattr(augment, "solarize", lambda x: x.at[..., 1].set(1.0))
  aug = sections.base_config().aug
  aug.crop, aug.flip = False, False
  aug.blur_prob, aug.solarize_prob = (1.0, 0.1, 0.0, 0.3), (0.0, 0.2, 0.5, 0.0)
  n = 4096
  images = jnp.zeros((n, 4, 4, 3), jnp.uint8)
  views = jax.jit(lambda x: augment.augmented_views(jax.random.key(0), x, 4, aug, 2)
                  + augment.augmented_views(jax.random.key(1), x, 4, aug, 2, first_view=2))(
                      images)
  for view, x in enumerate(views):
    raw = np.asarray(x[:, 0, 0]) * np.asarray(augment.IMAGENET_STD) + augment.IMAGENET_MEAN
    blurred, solarized = raw[:, 0] > 0.5, raw[:, 1] > 0.5
    for applied, p in ((blurred, aug.blur_prob[view]), (solarized, aug.solarize_prob[view])):
      assert abs(applied.mean() - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-9, (view, p)
    # Independent draws: both ops together at the product of the rates.
    both = aug.blur_prob[view] * aug.solarize_prob[view]
    assert abs((blurred & solarized).mean() - both) <= 4 * math.sqrt(both * (1 - both) / n)


def test_views_get_the_real_blur_and_solarize():
  aug = sections.base_config().aug
  aug.crop, aug.flip = False, False
  aug.blur_prob, aug.solarize_prob = 1.0, (1.0, 0.0)
  images = jnp.full((8, 16, 16, 3), 200, jnp.uint8)  # a flat image: blurring keeps it
  one, two = jax.jit(lambda x: augment.augmented_views(jax.random.key(0), x, 16, aug, 2))(images)
  np.testing.assert_allclose(np.asarray(one), augment.normalize(jnp.full_like(images, 55)),
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(two), augment.normalize(images), atol=1e-5)


@pytest.mark.parametrize("field,value,config_name", [
    ("blur_prob", (1.0, 0.1, 0.5), "simsiam_cifar10.py"),
    ("solarize_prob", (0.0, 0.2), "swav_r50.py"),  # 8 crops
    ("solarize_prob", 1.5, "byol_cifar10.py"),
    ("blur_prob", (1.0, -0.1), "byol_cifar10.py")])
def test_bad_view_probabilities_name_the_field(field, value, config_name):
  config = _config(config_name)
  config.unlock()
  config.aug[field] = value
  with pytest.raises(ConfigError, match=rf"aug\.{field}=.* is invalid: use a probability"):
    validation.validate(config)


def test_swav_takes_one_probability_per_crop():
  config = _config("swav_r50.py")
  config.unlock()
  config.aug.blur_prob = (0.5,) * (2 + config.swav.num_small_crops)
  validation.validate(config)  # one per crop: accepted
  config.aug.blur_prob = (0.5, 0.5)  # one per large crop only: refused
  with pytest.raises(ConfigError, match=rf"tuple of {2 + config.swav.num_small_crops}"):
    validation.validate(config)


def test_asymmetric_view_recipes():
  for name in ("byol_r50.py", "moco_v3_r50.py", "moco_v3_vitb.py"):
    config = _config(name)
    assert tuple(config.aug.blur_prob) == (1.0, 0.1), name
    assert tuple(config.aug.solarize_prob) == (0.0, 0.2), name
    assert (config.aug.color_jitter_prob, config.aug.grayscale_prob) == (0.8, 0.2), name
  for name in ("simclr_r50.py", "swav_r50.py", "simsiam_r50.py", "moco_v2_r50.py"):
    config = _config(name)
    assert (config.aug.blur_prob, config.aug.solarize_prob) == (0.5, 0.0), name


def test_crop_scales_and_colour_jitter_of_the_recipes():
  # MoCo v3: --crop-min=.2 for the ResNet (CONFIG.md), the 0.08 default for the ViT.
  assert tuple(_config("moco_v3_r50.py").aug.crop_scale) == (0.2, 1.0)
  assert tuple(_config("moco_v3_vitb.py").aug.crop_scale) == (0.08, 1.0)
  # SwAV: get_color_distortion(s=1.0), p 0.8; grayscale 0.2; blur 0.5 (multicropdataset.py).
  swav = _config("swav_r50.py").aug
  assert tuple(swav.color_jitter) == (0.8, 0.8, 0.8, 0.2)
  assert (swav.color_jitter_prob, swav.grayscale_prob, swav.blur_prob) == (0.8, 0.2, 0.5)


def test_crop_samplers_of_the_recipes():
  sampler = lambda name: _config(name).input.crop_sampler
  assert sampler("byol_r50.py") == "clamped"
  assert sampler("simclr_r50.py") == "tf_sdbb"
  assert sampler("probe_imagenet.py:recipe=mae") == "clamped"
  # The BYOL and SimCLR probes crop as their pre-training (BYOL utils/dataset.py, SimCLR
  # data_util.py); their CIFAR probes keep torchvision's.
  assert sampler("probe_imagenet.py:recipe=byol") == "clamped"
  assert sampler("probe_imagenet.py:recipe=simclr") == "tf_sdbb"
  for name in ("probe_imagenet.py:recipe=simsiam", "mae_vitb.py", "moco_v3_r50.py",
               "swav_r50.py", "simsiam_r50.py", "probe_cifar10.py", "byol_cifar10.py",
               "probe_cifar10.py:recipe=byol", "probe_cifar10.py:recipe=simclr",
               "byol_r50.py:runlocal", "simclr_r50.py:runlocal"):
    assert sampler(name) == "torchvision", name


def test_resize_antialias_of_the_recipes():
  """tf.image.resize (no antialiasing) in the TF releases' ImageNet pre-training and probes;
  Pillow's antialiased filters everywhere else (the CIFAR, demo and runlocal rows as measured)."""
  antialias = lambda name: _config(name).input.resize_antialias
  for name in ("byol_r50.py", "simclr_r50.py", "byol_r50.py:epochs=1000",
               "probe_imagenet.py:recipe=byol", "probe_imagenet.py:recipe=simclr"):
    assert antialias(name) is False, name
  for name in ("byol_r50.py:runlocal", "simclr_r50.py:runlocal", "byol_cifar10.py",
               "simclr_cifar10.py", "probe_cifar10.py:recipe=byol",
               "probe_cifar10.py:recipe=simclr", "probe_imagenet.py:recipe=mae",
               "probe_imagenet.py:recipe=simsiam", "mae_vitb.py", "moco_v3_r50.py",
               "swav_r50.py", "simsiam_r50.py", "finetune_imagenet.py", "demo.py"):
    assert antialias(name) is True, name


def test_resize_antialias_is_validated():
  config = _config("byol_cifar10.py").input.to_dict()
  config["resize_antialias"] = "no"
  with pytest.raises(ConfigError, match=r"input\.resize_antialias='no' is invalid: use True"):
    validation.validate_input(ml_collections.ConfigDict(config))


def test_crop_sampler_names_agree_and_are_validated():
  assert tuple(resized_crop.SAMPLERS) == sections.CROP_SAMPLERS
  config = _config("byol_cifar10.py")
  config.unlock()
  config.input.crop_sampler = "tf"
  with pytest.raises(ConfigError, match=r"input\.crop_sampler='tf' is invalid: use torchvision"):
    validation.validate(config)


# ------------------------------------------------------------------ crop samplers

def clamped_reference(rng, n, height, width, scale, ratio):
  """BYOL's `_decode_and_random_crop` / MAE's util/crop.py, written out in numpy."""
  area = height * width * rng.uniform(scale[0], scale[1], n)
  aspect = np.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1]), n))
  w = np.minimum(np.rint(np.sqrt(area * aspect)), width).astype(int)
  h = np.minimum(np.rint(np.sqrt(area / aspect)), height).astype(int)
  return np.stack([rng.integers(0, height - h + 1), rng.integers(0, width - w + 1), h, w], 1)


def tf_reference_box(rng, height, width, scale, ratio, min_covered=0.1, attempts=100):
  """One box of TF's SampleDistortedBoundingBox kernel (GenerateRandomCrop and the overlap
  check with the whole image as the object), step by step in Python (`rng`: random.Random;
  float64 where TF has float32, which moves only draws at a rounding boundary)."""
  lrint = round  # to the nearest, ties to even, as C's lrintf
  min_area, max_area = scale[0] * width * height, scale[1] * width * height
  for _ in range(attempts):
    r = rng.uniform(*ratio)
    h, max_h = lrint(math.sqrt(min_area / r)), lrint(math.sqrt(max_area / r))
    if lrint(max_h * r) > width:
      max_h = int((width + 0.5 - 1e-7) / r)
      if lrint(max_h * r) > width:
        max_h -= 1
    max_h = min(max_h, height)
    h = min(h, max_h)
    if h < max_h:
      h += rng.randrange(max_h - h + 1)
    w = lrint(h * r)
    if w * h < min_area:
      h += 1
      w = lrint(h * r)
    if w * h > max_area:
      h -= 1
      w = lrint(h * r)
    a = w * h
    if (min_area <= a <= max_area and 0 < w <= width and 0 < h <= height and a >= 1
        and a / (width * height) >= min_covered):
      top = rng.randrange(height - h) if h < height else 0
      left = rng.randrange(width - w) if w < width else 0
      return top, left, h, w
  return 0, 0, height, width


def reference_boxes(sampler, n, extent, scale, ratio=(3 / 4, 4 / 3), seed=0):
  if sampler == "clamped":
    return clamped_reference(np.random.default_rng(seed), n, *extent, scale, ratio)
  r = random.Random(seed)
  if sampler == "tf_sdbb":
    return np.asarray([tf_reference_box(r, *extent, scale, ratio) for _ in range(n)])
  return np.asarray([torchvision_reference.crop_params(
      *extent, r.uniform, lambda lo, hi: r.randint(lo, hi - 1), scale, ratio)
      for _ in range(n)])


CASES = [((375, 500), (0.08, 1.0)), ((100, 400), (0.08, 1.0)), ((500, 333), (0.2, 1.0)),
         ((60, 400), (0.198, 1.0)),  # TF's rounding makes ~1 in 4 fall back
         # Only for `test_boxes_stay_inside_the_image`: tiny images, nothing fits.
         ((1, 1), (0.08, 1.0)), ((2, 3), (0.08, 1.0)), ((7, 5), (0.9, 1.0)),
         ((20, 200), (0.9, 1.0)), ((200, 20), (0.9, 1.0))]
DRAWS = 4000


NEW_SAMPLERS = ("clamped", "tf_sdbb")  # torchvision's: tests/test_input_views.py


@pytest.fixture(scope="module")
def sampled():
  """The new samplers' boxes [case, draw, 4] for CASES, one compilation per sampler."""
  extents = jnp.asarray([e for e, _ in CASES], jnp.int32)
  scales = jnp.asarray([s for _, s in CASES], jnp.float32)
  keys = jax.random.split(jax.random.key(0), (len(CASES), DRAWS))
  out = {}
  for name in NEW_SAMPLERS:
    fn = resized_crop.SAMPLERS[name]
    draw = lambda k, e, s, fn=fn: fn(k, e, s, (3 / 4, 4 / 3))  # scale s traced: one compile
    boxes = jax.jit(jax.vmap(jax.vmap(draw, (0, None, None)), (0, 0, 0)))(keys, extents, scales)
    out[name] = np.stack([np.asarray(x) for x in boxes], axis=-1)
  return out


def box_stats(boxes, extent):
  top, left, h, w = boxes.T
  quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
  return {"area": np.quantile(h * w / (extent[0] * extent[1]), quantiles),
          "log_ratio": np.quantile(np.log(w / h), quantiles),
          "whole_image": np.mean((h == extent[0]) & (w == extent[1])),
          "full_side": np.mean((h == extent[0]) | (w == extent[1])),  # the clamp's mark
          "at_bottom": np.mean((top + h == extent[0]) & (h < extent[0])),  # never in TF
          "left_offset": np.mean(left / np.maximum(extent[1] - w, 1))}


# Binomial frequencies at 4000 draws: sigma <= 0.008; quantiles: the same as the test of the
# torchvision sampler (tests/test_input_views.py).
TOLERANCE = {"area": 0.03, "log_ratio": 0.03, "whole_image": 0.035, "full_side": 0.035,
             "at_bottom": 0.01, "left_offset": 0.04}


def mismatches(boxes, reference, extent):
  ours, ref = box_stats(boxes, extent), box_stats(reference, extent)
  return {k: float(np.max(np.abs(ours[k] - ref[k]))) for k in ours
          if np.max(np.abs(ours[k] - ref[k])) > TOLERANCE[k]}


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("sampler", NEW_SAMPLERS)
def test_sampler_matches_its_reference(sampled, sampler, case):
  extent, scale = CASES[case]
  assert not mismatches(sampled[sampler][case], reference_boxes(sampler, DRAWS, extent, scale),
                        extent)


@pytest.mark.parametrize("case", range(3))
def test_the_statistics_tell_the_samplers_apart(case):
  """The tolerances above would catch a sampler drawing as another one does."""
  extent, scale = CASES[case]
  refs = {name: reference_boxes(name, DRAWS, extent, scale, seed=1)
          for name in sections.CROP_SAMPLERS}
  for name, boxes in refs.items():
    for other in sections.CROP_SAMPLERS:
      if other != name:
        assert mismatches(boxes, refs[other], extent), (name, other)


def test_tf_sampler_falls_back_to_the_whole_image(sampled):
  assert 0.15 < box_stats(sampled["tf_sdbb"][3], CASES[3][0])["whole_image"] < 0.35
  # torchvision's fallback is the centre crop at the nearest ratio, never the whole strip.
  assert box_stats(reference_boxes("torchvision", 500, *CASES[3]), CASES[3][0])[
      "whole_image"] == 0


def test_boxes_stay_inside_the_image(sampled):
  for boxes in sampled.values():
    top, left, h, w = np.moveaxis(boxes, -1, 0)
    height, width = np.asarray([e for e, _ in CASES]).T[:, :, None]
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()


def _trace_every_crop_path(images, aug, geometry):
  """Traces (no compute) the crops of pre-training (`siamese_views`, `crop_flip_views`) and of
  the linear probe (`crop_flip_batch`) with `geometry`."""
  key = jax.random.key(0)
  jax.eval_shape(lambda x: augment.siamese_views(key, x, 4, aug, **geometry), images)
  jax.eval_shape(lambda x: augment.crop_flip_views(key, x, 4, **geometry), images)
  jax.eval_shape(lambda x: augment.crop_flip_batch(key, x, 4, **geometry),
                 images.astype(jnp.float32))


def test_the_sampler_reaches_the_views(monkeypatch):
  """`input.crop_sampler` is what `augment.geometry` hands every view: the crops of
  pre-training (`siamese_views`, `crop_flip_views`) and of the linear probe (`crop_flip_batch`)."""
  used = []
  recorder = lambda name: lambda rng, extent, scale, ratio: (
      used.append(name) or resized_crop.full_box(extent))
  monkeypatch.setattr(resized_crop, "SAMPLERS", {n: recorder(n) for n in sections.CROP_SAMPLERS})
  images = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  aug = sections.base_config().aug
  for name in ("simclr_r50.py", "byol_r50.py", "probe_imagenet.py:recipe=mae"):
    config = _config(name)
    _trace_every_crop_path(images, aug, augment.geometry({"image": images}, config))
    assert set(used) == {config.input.crop_sampler}, name
    used.clear()


def test_resize_antialias_reaches_the_views(monkeypatch):
  """`input.resize_antialias` is what every crop's resize gets: pre-training views
  (`siamese_views`, `crop_flip_views`) and the linear probe's (`crop_flip_batch`)."""
  used, resize_box = [], resized_crop.resize_box
  monkeypatch.setattr(resized_crop, "resize_box", lambda image, box, size, interpolation,
                      antialias: used.append(antialias) or resize_box(
                          image, box, size, interpolation, antialias))
  images = jnp.zeros((2, 8, 8, 3), jnp.uint8)
  aug = sections.base_config().aug
  for name in ("byol_r50.py", "simclr_r50.py:runlocal", "probe_imagenet.py:recipe=simclr"):
    config = _config(name)
    _trace_every_crop_path(images, aug, augment.geometry({"image": images}, config))
    assert len(used) == 4 and set(used) == {config.input.resize_antialias}, name
    used.clear()
