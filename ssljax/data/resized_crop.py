"""Random resized crops on device: boxes sampled as the official releases sample them, relative
to the whole image, and resampled as Pillow resamples them.

An image arrives as an array [H, W, C] with its extent (h, w): the image is its top-left
h x w pixels (the rest is canvas padding, `ssljax.data.decode`). Three box samplers
(`SAMPLERS`, chosen by `input.crop_sampler`), each `(rng, extent, scale, ratio) -> (top, left,
h, w)`:
- `sample_box`, torchvision's `RandomResizedCrop.get_params`: up to 10 draws of an area
  fraction uniform in `scale` and a log-uniform aspect ratio in `ratio`, rounded to whole
  pixels; the first box that fits is placed uniformly at random; if none fits, the centre crop
  clamped to `ratio`.
- `sample_box_clamped`, BYOL's crop (also MAE's linear probe, `util/crop.py`): one such draw,
  its sides clamped to the image; no retries, no fallback.
- `sample_box_tf`, TensorFlow's `sample_distorted_bounding_box` as SimCLR calls it: up to 100
  draws of an aspect ratio uniform in `ratio` and then a height uniform over the whole pixels
  whose area is in `scale`; a box must cover at least 0.1 of the image; else the whole image.
`resize_box` resizes a box with Pillow's filters (triangle for bilinear, Keys a=-0.5 for
bicubic), the support widened by the reduction factor (antialiasing), the weights renormalised
inside the box: no pixel outside the box, let alone padding, enters a view, as with
`crop().resize()`. With `antialias=False` (`input.resize_antialias`) the support stays the
kernel's own when reducing, as TensorFlow's `tf.image.resize` by default (bicubic:
`resize_bicubic` with half-pixel centres, 4 taps, Keys a=-0.5, taps outside the box dropped and
the rest renormalised; TF reads the weights from a table of 1024 fractional positions, which
moves a weight by at most 7e-4).
"""
import math

import jax
import jax.numpy as jnp

_SUPPORT = {"bilinear": 1.0, "bicubic": 2.0}
INTERPOLATIONS = tuple(_SUPPORT)
DEFAULT_RATIO = (3 / 4, 4 / 3)


def _kernel(x, interpolation):
  x = jnp.abs(x)
  if interpolation == "bilinear":
    return jnp.maximum(1.0 - x, 0.0)
  a = -0.5
  return jnp.where(x < 1.0, ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
                   jnp.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0))


def axis_weights(in_size, start, length, out_size, interpolation, antialias=True):
  """Resampling weights [out_size, in_size] along one axis.

  Output pixel i samples the input at `start + (i + 0.5) * length / out_size`; only input
  pixels in the window [start, start + length) carry weight. With `antialias` the kernel is
  stretched by the reduction factor when reducing; without, it keeps its support (1 bilinear,
  2 bicubic input pixels either side).
  """
  if interpolation not in INTERPOLATIONS:
    raise ValueError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
  start = jnp.asarray(start, jnp.float32)
  length = jnp.asarray(length, jnp.float32)
  scale = length / out_size
  support_scale = jnp.maximum(scale, 1.0) if antialias else 1.0
  centres = start + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * scale
  pixels = jnp.arange(in_size, dtype=jnp.float32)
  weights = _kernel((pixels[None, :] + 0.5 - centres[:, None]) / support_scale, interpolation)
  weights = jnp.where((pixels >= start) & (pixels < start + length), weights, 0.0)
  return weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


def resize_box(image, box, size, interpolation="bilinear", antialias=True):
  """float [H, W, C], box (top, left, h, w) -> [size, size, C], the box resized
  (`antialias`: see `axis_weights`)."""
  top, left, height, width = box
  rows = axis_weights(image.shape[0], top, height, size, interpolation, antialias)
  cols = axis_weights(image.shape[1], left, width, size, interpolation, antialias)
  # HIGHEST: TPUs and GPUs would otherwise multiply in bf16 / tf32 (pixel values to 255).
  hi = jax.lax.Precision.HIGHEST
  out = jnp.tensordot(rows, image.astype(jnp.float32), axes=(1, 0), precision=hi)  # [p, W, C]
  out = jnp.tensordot(out, cols, axes=(1, 1), precision=hi)  # [p, C, q]
  return out.transpose(0, 2, 1)


def _uniform_int(u01, count):
  """An integer uniform in [0, count) from u01 uniform in [0, 1); 0 when count is 0."""
  return jnp.maximum(jnp.minimum(
      jnp.floor(u01 * count.astype(jnp.float32)).astype(jnp.int32), count - 1), 0)


def _extent(extent):
  return jnp.asarray(extent[0], jnp.int32), jnp.asarray(extent[1], jnp.int32)


def _log_uniform_draws(u_area, u_ratio, height, width, scale, ratio):
  """torchvision's draw: sizes (w, h) [n] of an area uniform in `scale` of the image and a
  log-uniform aspect ratio (w / h) in `ratio`, rounded to whole pixels."""
  area = (height * width).astype(jnp.float32)
  target = area * (scale[0] + (scale[1] - scale[0]) * u_area)
  log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u_ratio
  aspect = jnp.exp(log_ratio)
  ws = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)
  hs = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  return ws, hs


def sample_box(rng, extent, scale, ratio=DEFAULT_RATIO, attempts=10):
  """torchvision's RandomResizedCrop box (top, left, h, w), int32 scalars, inside an image of
  `extent` (h, w) (int32 [2] or a pair)."""
  height, width = _extent(extent)
  u = jax.random.uniform(rng, (4, attempts))  # area, log ratio, top, left of every try
  ws, hs = _log_uniform_draws(u[0], u[1], height, width, scale, ratio)
  fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
  first = jnp.argmax(fits)
  h, w = hs[first], ws[first]
  # No draw fits: the whole image, cut to the nearest allowed aspect ratio, centred.
  in_ratio = width.astype(jnp.float32) / height.astype(jnp.float32)
  fallback_w = jnp.where(in_ratio > ratio[1],
                         jnp.round(height * ratio[1]).astype(jnp.int32), width)
  fallback_h = jnp.where(in_ratio < ratio[0],
                         jnp.round(width / ratio[0]).astype(jnp.int32), height)
  found = fits.any()
  h = jnp.where(found, h, fallback_h)
  w = jnp.where(found, w, fallback_w)
  # torchvision's randint(0, free + 1): uniform in [0, free].
  top = jnp.where(found, _uniform_int(u[2, first], height - h + 1), (height - fallback_h) // 2)
  left = jnp.where(found, _uniform_int(u[3, first], width - w + 1), (width - fallback_w) // 2)
  return top, left, h, w


def sample_box_clamped(rng, extent, scale, ratio=DEFAULT_RATIO):
  """BYOL's crop box (`byol/utils/dataset.py` `_decode_and_random_crop`; MAE's linear probe,
  `util/crop.py`): torchvision's draw once, w = min(w, W), h = min(h, H), placed uniformly."""
  height, width = _extent(extent)
  u = jax.random.uniform(rng, (4,))
  w, h = _log_uniform_draws(u[0], u[1], height, width, scale, ratio)
  # At least one pixel: only images of a few pixels could round a side to 0.
  w = jnp.clip(w, 1, width)
  h = jnp.clip(h, 1, height)
  return _uniform_int(u[2], height - h + 1), _uniform_int(u[3], width - w + 1), h, w


def sample_box_tf(rng, extent, scale, ratio=DEFAULT_RATIO, min_covered=0.1, attempts=100):
  """TensorFlow's `sample_distorted_bounding_box` box (top, left, h, w) for the whole image as
  its one bounding box, SimCLR's call (`min_object_covered=0.1`, `area_range=scale`,
  `aspect_ratio_range=ratio`, `max_attempts=100`), after TF's kernel
  (`sample_distorted_bounding_box_op.cc`, `GenerateRandomCrop`): each try draws an aspect
  ratio r uniform in `ratio`, then a height uniform over the whole pixels from round(sqrt(min
  area / r)) to round(sqrt(max area / r)) (capped so that round(h r) <= W and h <= H), and
  w = round(h r); one pixel up or down when rounding left the area outside `scale`; a box is
  kept if its area is in `scale` and at least `min_covered` of the image; offsets uniform in
  [0, H - h) (0 when h = H), likewise for the left; no box in `attempts` tries: the whole
  image. Rounding is to the nearest, ties to even (C's lrintf)."""
  height, width = _extent(extent)
  u = jax.random.uniform(rng, (4, attempts))  # ratio, height, top, left of every try
  r = ratio[0] + (ratio[1] - ratio[0]) * u[0]
  area = (height * width).astype(jnp.float32)
  min_area, max_area = scale[0] * area, scale[1] * area
  side = lambda h: jnp.round(h.astype(jnp.float32) * r).astype(jnp.int32)  # w for height h
  min_h = jnp.round(jnp.sqrt(min_area / r)).astype(jnp.int32)
  max_h = jnp.round(jnp.sqrt(max_area / r)).astype(jnp.int32)
  # The largest height whose width still rounds to at most W.
  capped = jnp.floor((width.astype(jnp.float32) + 0.5 - 1e-7) / r).astype(jnp.int32)
  capped = jnp.where(side(capped) > width, capped - 1, capped)
  max_h = jnp.minimum(jnp.where(side(max_h) > width, capped, max_h), height)
  min_h = jnp.minimum(min_h, max_h)
  h = min_h + _uniform_int(u[1], max_h - min_h + 1)
  box_area = lambda h: (side(h) * h).astype(jnp.float32)
  h = jnp.where(box_area(h) < min_area, h + 1, h)
  h = jnp.where(box_area(h) > max_area, h - 1, h)
  w, a = side(h), box_area(h)
  ok = ((a >= min_area) & (a <= max_area) & (w <= width) & (h <= height) & (w > 0) & (h > 0)
        & (a >= 1.0) & (a / area >= min_covered))
  first = jnp.argmax(ok)
  found = ok.any()
  h, w = jnp.where(found, h[first], height), jnp.where(found, w[first], width)
  top = jnp.where(found, _uniform_int(u[2, first], height - h), 0)
  left = jnp.where(found, _uniform_int(u[3, first], width - w), 0)
  return top, left, h, w


SAMPLERS = {"torchvision": sample_box, "clamped": sample_box_clamped, "tf_sdbb": sample_box_tf}


def full_box(extent):
  """The box of the whole image of `extent` (h, w)."""
  return (jnp.int32(0), jnp.int32(0), jnp.asarray(extent[0], jnp.int32),
          jnp.asarray(extent[1], jnp.int32))
