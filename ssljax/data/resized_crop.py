"""Random resized crops on device: boxes sampled as torchvision samples them, relative to the
whole image, and resampled as Pillow resamples them.

An image arrives as an array [H, W, C] with its extent (h, w): the image is its top-left
h x w pixels (the rest is canvas padding, `ssljax.data.decode`). `sample_box` is torchvision's
`RandomResizedCrop.get_params`: up to `attempts` draws of an area fraction uniform in `scale`
and a log-uniform aspect ratio in `ratio`, rounded to whole pixels; the first box that fits is
placed uniformly at random; if none fits, the centre crop clamped to `ratio`. `resize_box`
resizes a box with Pillow's filters (triangle for bilinear, Keys a=-0.5 for bicubic), the
support widened by the reduction factor (antialiasing), the weights renormalised inside the
box: no pixel outside the box, let alone padding, enters a view, as with `crop().resize()`.
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


def axis_weights(in_size, start, length, out_size, interpolation):
  """Resampling weights [out_size, in_size] along one axis.

  Output pixel i samples the input at `start + (i + 0.5) * length / out_size`; only input
  pixels in the window [start, start + length) carry weight.
  """
  if interpolation not in INTERPOLATIONS:
    raise ValueError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
  start = jnp.asarray(start, jnp.float32)
  length = jnp.asarray(length, jnp.float32)
  scale = length / out_size
  support_scale = jnp.maximum(scale, 1.0)
  centres = start + (jnp.arange(out_size, dtype=jnp.float32) + 0.5) * scale
  pixels = jnp.arange(in_size, dtype=jnp.float32)
  weights = _kernel((pixels[None, :] + 0.5 - centres[:, None]) / support_scale, interpolation)
  weights = jnp.where((pixels >= start) & (pixels < start + length), weights, 0.0)
  return weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


def resize_box(image, box, size, interpolation="bilinear"):
  """float [H, W, C], box (top, left, h, w) -> [size, size, C], the box resized."""
  top, left, height, width = box
  rows = axis_weights(image.shape[0], top, height, size, interpolation)
  cols = axis_weights(image.shape[1], left, width, size, interpolation)
  # HIGHEST: TPUs and GPUs would otherwise multiply in bf16 / tf32 (pixel values to 255).
  hi = jax.lax.Precision.HIGHEST
  out = jnp.tensordot(rows, image.astype(jnp.float32), axes=(1, 0), precision=hi)  # [p, W, C]
  out = jnp.tensordot(out, cols, axes=(1, 1), precision=hi)  # [p, C, q]
  return out.transpose(0, 2, 1)


def sample_box(rng, extent, scale, ratio=DEFAULT_RATIO, attempts=10):
  """torchvision's RandomResizedCrop box (top, left, h, w), int32 scalars, inside an image of
  `extent` (h, w) (int32 [2] or a pair)."""
  height = jnp.asarray(extent[0], jnp.int32)
  width = jnp.asarray(extent[1], jnp.int32)
  u = jax.random.uniform(rng, (4, attempts))  # area, log ratio, top, left of every try
  area = (height * width).astype(jnp.float32)
  target = area * (scale[0] + (scale[1] - scale[0]) * u[0])
  log_ratio = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[1]
  aspect = jnp.exp(log_ratio)
  ws = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)
  hs = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  fits = (ws > 0) & (ws <= width) & (hs > 0) & (hs <= height)
  first = jnp.argmax(fits)
  h, w = hs[first], ws[first]
  # A uniform integer in [0, free], torchvision's randint(0, free + 1).
  uniform_int = lambda u01, free: jnp.minimum(
      jnp.floor(u01 * (free + 1).astype(jnp.float32)).astype(jnp.int32), free)
  # No draw fits: the whole image, cut to the nearest allowed aspect ratio, centred.
  in_ratio = width.astype(jnp.float32) / height.astype(jnp.float32)
  fallback_w = jnp.where(in_ratio > ratio[1],
                         jnp.round(height * ratio[1]).astype(jnp.int32), width)
  fallback_h = jnp.where(in_ratio < ratio[0],
                         jnp.round(width / ratio[0]).astype(jnp.int32), height)
  found = fits.any()
  h = jnp.where(found, h, fallback_h)
  w = jnp.where(found, w, fallback_w)
  top = jnp.where(found, uniform_int(u[2, first], height - h), (height - fallback_h) // 2)
  left = jnp.where(found, uniform_int(u[3, first], width - w), (width - fallback_w) // 2)
  return top, left, h, w


def full_box(extent):
  """The box of the whole image of `extent` (h, w)."""
  return (jnp.int32(0), jnp.int32(0), jnp.asarray(extent[0], jnp.int32),
          jnp.asarray(extent[1], jnp.int32))
