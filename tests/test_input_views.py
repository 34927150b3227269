"""Input views: crop boxes sampled as torchvision samples them (relative to the whole image),
resampling and evaluation views equal to Pillow's within rounding, canvases that keep the
whole image."""
import io
import math
import os
import random
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from conftest import REPO
from ssljax.data import augment, decode, resized_crop

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import torchvision_reference  # pylint: disable=g-import-not-at-top,wrong-import-position

PHOTO = load_sample_images().images[0]  # a real 427x640 photograph


def within_rounding(diff, typical):
  """Whether `diff` is Pillow's rounding: Pillow rounds (and clips bicubic overshoot) to uint8
  between its horizontal and vertical passes, so a few values at sharp edges differ by more
  than the typical rounding."""
  return diff.mean() < 0.25 and np.quantile(diff, 0.999) <= typical and diff.max() <= 8


def torchvision_box(rng, height, width, scale, ratio):
  return torchvision_reference.crop_params(height, width, rng.uniform,
                                           lambda lo, hi: rng.randint(lo, hi - 1), scale, ratio)


def _boxes(extent, scale, ratio=(3 / 4, 4 / 3), draws=4000):
  keys = jax.random.split(jax.random.key(0), draws)
  sample = jax.jit(jax.vmap(lambda k: resized_crop.sample_box(k, extent, scale, ratio)))
  return np.stack([np.asarray(x) for x in sample(keys)], axis=1)  # [draws, 4]


@pytest.mark.parametrize("extent,scale", [((375, 500), (0.2, 1.0)), ((333, 500), (0.08, 1.0)),
                                          ((100, 400), (0.2, 1.0))])
def test_crop_boxes_follow_torchvision_relative_to_the_whole_image(extent, scale):
  ours = _boxes(extent, scale)
  rng = random.Random(0)
  ref = np.asarray([torchvision_box(rng, *extent, scale, (3 / 4, 4 / 3)) for _ in range(4000)])
  for boxes in (ours, ref):
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= extent[0]).all() and (left + w <= extent[1]).all()
  stats = lambda b: (b[:, 2] * b[:, 3] / (extent[0] * extent[1]), np.log(b[:, 3] / b[:, 2]))
  (area, log_ratio), (ref_area, ref_log_ratio) = stats(ours), stats(ref)
  fitted = (area >= scale[0] - 0.01) & (np.abs(log_ratio) <= math.log(4 / 3) + 0.01)
  fitted_ref = (ref_area >= scale[0] - 0.01) & (np.abs(ref_log_ratio) <= math.log(4 / 3) + 0.01)
  assert abs(fitted.mean() - fitted_ref.mean()) < 0.02  # the same share of centre fallbacks
  quantiles = [0.05, 0.25, 0.5, 0.75, 0.95]
  np.testing.assert_allclose(np.quantile(area, quantiles), np.quantile(ref_area, quantiles),
                             atol=0.03)
  np.testing.assert_allclose(np.quantile(log_ratio, quantiles),
                             np.quantile(ref_log_ratio, quantiles), atol=0.03)
  # Positions are uniform over the free room: mean offset ~ half of it.
  free = extent[1] - ours[:, 3]
  assert abs(np.mean(ours[:, 1] / np.maximum(free, 1))[()] - 0.5) < 0.05


def test_boxes_reach_every_border_of_a_wide_image():
  top, left, h, w = _boxes((100, 400), (0.2, 1.0)).T
  assert (top == 0).any() and (top + h == 100).any()
  assert (left == 0).any() and (left + w == 400).any()  # a centre square never reaches these
  assert (left + w <= 150).any() and (left >= 250).any()


def test_no_box_fits_falls_back_to_the_centre_crop_at_the_nearest_ratio():
  # A 10:1 strip: no box of ratio <= 4/3 and area >= 0.9 fits, so every draw is the fallback.
  top, left, h, w = _boxes((20, 200), (0.9, 1.0), draws=50).T
  assert (h == 20).all() and (w == round(20 * 4 / 3)).all()
  assert (left == (200 - w) // 2).all() and (top == 0).all()


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("box", [(40, 100, 120, 160), (10, 30, 400, 560)])  # up- and down-sampling
def test_resized_box_equals_pillow_crop_resize(interpolation, box):
  top, left, h, w = box
  pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
  expected = np.asarray(Image.fromarray(PHOTO).crop((left, top, left + w, top + h)).resize(
      (224, 224), pil), np.float32)
  got = np.asarray(resized_crop.resize_box(jnp.asarray(PHOTO, jnp.float32), box, 224,
                                           interpolation))
  diff = np.abs(np.clip(np.round(got), 0, 255) - expected)
  assert within_rounding(diff, typical=1), (diff.mean(), diff.max())


def test_crops_never_see_the_canvas_padding():
  canvas = np.full((64, 64, 3), 255, np.float32)
  canvas[:30, :50] = 0.0  # the image is black; the padding is white
  keys = jax.random.split(jax.random.key(1), 200)
  crop = jax.jit(jax.vmap(lambda k: augment.crop_flip(
      k, jnp.asarray(canvas), 32, crop_scale=(0.08, 1.0), extent=(30, 50),
      interpolation="bicubic")))
  assert float(jnp.abs(crop(keys)).max()) < 1e-3


def keys_cubic(x, a=-0.5):
  x = abs(x)
  if x < 1:
    return ((a + 2) * x - (a + 3)) * x * x + 1
  return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0


def tf_bicubic_weights(length, out_size):
  """Weights [out_size, length] of TF's `tf.image.resize(..., "bicubic")` (antialias=False:
  `resize_bicubic` with half-pixel centres) on an axis of `length` pixels, from its
  description: output i samples x = (i + 0.5) * length / out_size - 0.5, the 4 taps floor(x) - 1
  .. floor(x) + 2 weighted by Keys' cubic (a = -0.5) at their distance to x, taps outside the
  axis dropped and the rest renormalised to sum 1 (float64; TF's 1024-entry table left out)."""
  weights = np.zeros((out_size, length))
  for i in range(out_size):
    x = (i + 0.5) * length / out_size - 0.5
    taps = [t for t in range(math.floor(x) - 1, math.floor(x) + 3) if 0 <= t < length]
    kernel = np.asarray([keys_cubic(x - t) for t in taps])
    weights[i, taps] = kernel / kernel.sum()
  return weights


def tf_bicubic_resize_box(image, box, size):
  """[H, W, C] -> the box (top, left, h, w) cut out, then TF's bicubic resize to [size, size]."""
  top, left, h, w = box
  crop = np.asarray(image, np.float64)[top:top + h, left:left + w]
  rows = np.tensordot(tf_bicubic_weights(h, size), crop, axes=(1, 0))  # [size, w, C]
  return np.einsum("pwc,qw->pqc", rows, tf_bicubic_weights(w, size))


# Reduction factors 2, 3, 1.5 x 2.5, 3.17 x 4.11 (not whole), and an enlargement.
TF_BOXES = [(0, 0, 200, 200), (50, 60, 300, 300), (10, 20, 150, 250), (3, 5, 317, 411),
            (100, 100, 60, 80)]


@pytest.mark.parametrize("box", TF_BOXES)
def test_resize_without_antialias_is_tf_bicubic(box):
  got = np.asarray(resized_crop.resize_box(jnp.asarray(PHOTO, jnp.float32), box, 100,
                                           "bicubic", antialias=False))
  # float32 sample positions (as TF's): within 0.01 of 255 levels.
  np.testing.assert_allclose(got, tf_bicubic_resize_box(PHOTO, box, 100), atol=0.01)


def test_resize_without_antialias_equals_tensorflow():
  tf = pytest.importorskip("tensorflow")  # the optional `tf` extra
  for box in TF_BOXES:
    top, left, h, w = box
    crop = tf.constant(PHOTO[top:top + h, left:left + w], tf.float32)
    expected = tf.image.resize(crop, [100, 100], method="bicubic").numpy()
    got = np.asarray(resized_crop.resize_box(jnp.asarray(PHOTO, jnp.float32), box, 100,
                                             "bicubic", antialias=False))
    # TF reads its weights from a table of 1024 fractional positions (each weight within 7e-4:
    # under one level of 255 after both passes).
    np.testing.assert_allclose(got, expected, atol=1.0)


@pytest.mark.parametrize("interpolation,taps", [("bilinear", 2), ("bicubic", 4)])
def test_antialias_widens_the_kernel_only_when_reducing(interpolation, taps):
  weights = lambda length, antialias: np.asarray(resized_crop.axis_weights(
      640, 10, length, 100, interpolation, antialias))
  reduced, widened = weights(300, False), weights(300, True)
  assert ((reduced != 0).sum(axis=1) <= taps).all()
  assert ((widened != 0).sum(axis=1) > taps).any()
  np.testing.assert_array_equal(weights(80, False), weights(80, True))  # enlarging: the same
  image = jnp.asarray(PHOTO, jnp.float32)
  box = (40, 100, 300, 400)
  np.testing.assert_array_equal(  # antialias=True is the default, Pillow's path above
      np.asarray(resized_crop.resize_box(image, box, 100, interpolation)),
      np.asarray(resized_crop.resize_box(image, box, 100, interpolation, antialias=True)))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape", [(427, 640), (500, 333)])
def test_eval_view_equals_pillow_resize_then_centre_crop(interpolation, shape):
  image = np.asarray(Image.fromarray(PHOTO).resize((shape[1], shape[0]), Image.BICUBIC))
  pil = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]
  h, w = shape
  short, long = (256, int(256 * max(h, w) / min(h, w)))
  size = (long, short) if w > h else (short, long)  # PIL sizes are (w, h)
  resized = Image.fromarray(image).resize(size, pil)
  left, top = int(round((size[0] - 224) / 2.0)), int(round((size[1] - 224) / 2.0))
  expected = np.asarray(resized.crop((left, top, left + 224, top + 224)), np.int32)
  got = decode.eval_image(image, 224, 224 / 256, interpolation).astype(np.int32)
  assert got.shape == (224, 224, 3)
  diff = np.abs(got - expected)
  assert within_rounding(diff, typical=1), (diff.mean(), diff.max())


def _jpeg(image, quality=90):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, "JPEG", quality=quality)
  return buffer.getvalue()


def canvas_view(data, canvas_size):
  """What the pipeline hands the device for one file: (canvas [C, C, 3], extent [2])."""
  canvases, extents = decode.canvas_batch([decode.fitted(data, canvas_size)], canvas_size)
  return canvases[0], extents[0]


def test_canvas_keeps_the_whole_image_and_reduces_large_ones():
  data = _jpeg(PHOTO)
  canvas, extent = canvas_view(data, 640)
  assert tuple(extent) == (427, 640) and canvas.shape == (640, 640, 3)
  pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int32)
  assert np.abs(canvas[:427].astype(np.int32) - pillow).max() <= 1  # the same libjpeg decode
  assert not canvas[427:].any()
  big = np.asarray(Image.fromarray(PHOTO).resize((1280, 854), Image.BICUBIC))
  data = _jpeg(big)
  canvas, extent = canvas_view(data, 512)  # reduced by 3/8 while decoding: no resize
  assert tuple(extent) == (321, 480) and not canvas[321:].any() and not canvas[:, 480:].any()
  # Rows are exactly 8/3 source rows apart: 854 rows fill 320.25 of them (the last is partial).
  full = Image.open(io.BytesIO(data)).convert("RGB")
  reference = np.asarray(full.resize((480, 320), Image.BICUBIC), np.float32)
  got = canvas[:320, :480].astype(np.float32)
  assert np.abs(got - reference).mean() < 4  # a DCT-domain low-pass instead of Pillow's


def test_non_jpeg_and_grayscale_files_decode_to_rgb():
  buffer = io.BytesIO()
  Image.fromarray(PHOTO[:50, :60]).save(buffer, "PNG")
  canvas, extent = canvas_view(buffer.getvalue(), 64)
  assert tuple(extent) == (50, 60) and np.array_equal(canvas[:50, :60], PHOTO[:50, :60])
  gray = _jpeg(PHOTO[:40, :40, 0])
  canvas, extent = canvas_view(gray, 64)
  assert tuple(extent) == (40, 40) and (canvas[:40, :40, 0] == canvas[:40, :40, 2]).all()


def _encoded(image, fmt):
  buffer = io.BytesIO()
  image.save(buffer, fmt)
  return buffer.getvalue()


@pytest.mark.parametrize("mode", ["I;16", "P", "CMYK", "LA", "RGBA"])
def test_every_image_mode_decodes_to_the_rgb_it_shows(mode):
  rgb = np.ascontiguousarray(PHOTO[250:298, 300:364])  # buildings: texture in every mode
  if mode == "I;16":  # a 16-bit gradient, which Pillow's own RGB conversion clips to white
    values = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    data = _encoded(Image.fromarray(values), "PNG")
    expected = np.repeat(np.round(values / 257.0).astype(np.uint8)[..., None], 3, axis=-1)
  elif mode == "CMYK":  # libjpeg-turbo converts it; Pillow's conversion is the reference
    data = _encoded(Image.fromarray(rgb).convert("CMYK"), "JPEG")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
  else:
    image = Image.fromarray(rgb).convert(mode)
    data = _encoded(image, "PNG")
    expected = np.asarray(image.convert("RGB"))
  canvas, extent = canvas_view(data, 64)
  assert tuple(extent) == (48, 64)
  tolerance = 1 if mode == "CMYK" else 0  # two CMYK -> RGB roundings
  assert np.abs(canvas[:48].astype(int) - expected).max() <= tolerance
  assert expected.std() > 10  # a real picture, not a constant
