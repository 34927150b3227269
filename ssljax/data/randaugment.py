"""RandAugment (Cubuk et al. 2020) as pure JAX functions, in timm's `rand-m9-mstd0.5-inc1` form
(the MAE fine-tuning recipe).

Each image gets `num_ops` operations drawn uniformly from `OPS`, each applied with probability
1/2, at a magnitude drawn per operation from N(magnitude, magnitude_std) clipped to [0, 10];
level = magnitude / 10. The "increasing" variants grow stronger with the level:
  Rotate ±30·level degrees, ShearX/Y ±0.3·level, TranslateX/Y ±0.45·level of the size,
  Posterize to 4 - floor(4·level) bits (0: black), Solarize above 1 - level, SolarizeAdd
  +0.43·level below 1/2, Color/Contrast/Brightness/Sharpness factor 1 ± 0.9·level;
  AutoContrast, Equalize, Invert take no magnitude. Geometric ops resample as PIL's bicubic
  transform (timm passes the recipe's bicubic interpolation to them) and fill with the
  dataset-mean grey, as timm does; shears are about the top-left corner (PIL's affine),
  rotations about the centre.
Images are float32 [H, W, C] in [0, 1]. Vmapped, `lax.switch` evaluates every op and selects,
which costs a few elementwise passes per image: small next to the encoder.
"""
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.data import augment

FILL = (124 / 255, 116 / 255, 104 / 255)


def _blend(image, degenerate, factor):
  """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped to [0, 1]."""
  return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def _signed(key, value):
  return jnp.where(jax.random.bernoulli(key), value, -value)


def _cubic(x):
  """PIL's transform filter (Geometry.c, not the resize filter): Keys' cubic with a = -1."""
  x = jnp.abs(x)
  return jnp.where(x < 1.0, (x - 2.0) * x * x + 1.0,
                   jnp.where(x < 2.0, ((-x + 5.0) * x - 8.0) * x + 4.0, 0.0))


def _bicubic(image, ys, xs):
  """image [H, W, C] sampled at float pixel-centre coordinates ys, xs [H', W'] -> [H', W', C],
  as PIL's BICUBIC transform: neighbours beyond the border repeat the edge pixel, points
  outside the image's extent [-1/2, size - 1/2) take the grey `FILL`, values clip to [0, 1]."""
  h, w, _ = image.shape
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  row_weights = [_cubic(ys - (y0 + d)) for d in (-1, 0, 1, 2)]
  col_weights = [_cubic(xs - (x0 + d)) for d in (-1, 0, 1, 2)]
  rows = [jnp.clip(y0 + d, 0, h - 1).astype(jnp.int32) for d in (-1, 0, 1, 2)]
  cols = [jnp.clip(x0 + d, 0, w - 1).astype(jnp.int32) for d in (-1, 0, 1, 2)]
  out = 0.0
  for row, row_weight in zip(rows, row_weights):
    for col, col_weight in zip(cols, col_weights):
      out = out + (row_weight * col_weight)[..., None] * image[row, col]
  inside = (ys >= -0.5) & (ys < h - 0.5) & (xs >= -0.5) & (xs < w - 0.5)
  fill = jnp.asarray(FILL, image.dtype)[:image.shape[-1]]
  return jnp.where(inside[..., None], jnp.clip(out, 0.0, 1.0), fill)


def affine(image, matrix):
  """Output pixel (y, x) samples the input at `matrix @ (y, x, 1)` (PIL's bicubic, grey fill).

  `matrix` [2, 3] maps output coordinates to input coordinates, both centred on the image
  (pixel-centre coordinates, the image's centre at ((H - 1) / 2, (W - 1) / 2)).
  """
  h, w, _ = image.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - cy,
                        jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij")
  source_y = matrix[0, 0] * ys + matrix[0, 1] * xs + matrix[0, 2] + cy
  source_x = matrix[1, 0] * ys + matrix[1, 1] * xs + matrix[1, 2] + cx
  return _bicubic(image, source_y, source_x)


def rotation_matrix(degrees):
  """Counter-clockwise rotation about the centre (output -> input: turn the point back)."""
  t = jnp.deg2rad(degrees)
  return jnp.array([[jnp.cos(t), jnp.sin(t), 0.0], [-jnp.sin(t), jnp.cos(t), 0.0]])


# timm shears with PIL's affine (1, f, 0, 0, 1, 0): about the top-left corner of the image,
# whose pixel centres sit at 0.5, so row y moves by f * (y + 0.5).
def shear_x_matrix(factor, shape):
  return jnp.array([[1.0, 0.0, 0.0], [factor, 1.0, factor * ((shape[0] - 1) / 2 + 0.5)]])


def shear_y_matrix(factor, shape):
  return jnp.array([[1.0, factor, factor * ((shape[1] - 1) / 2 + 0.5)], [0.0, 1.0, 0.0]])


def translate_matrix(dy, dx):
  """Shift the content by (dy, dx) pixels."""
  return jnp.array([[1.0, 0.0, -dy], [0.0, 1.0, -dx]])


def rotate(image, degrees):
  return affine(image, rotation_matrix(degrees))


def shear_x(image, factor):
  return affine(image, shear_x_matrix(factor, image.shape))


def shear_y(image, factor):
  return affine(image, shear_y_matrix(factor, image.shape))


def translate(image, dy, dx):
  return affine(image, translate_matrix(dy, dx))


def autocontrast(image):
  """Stretch each channel to [0, 1] (channels that are constant stay as they are)."""
  low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
  span = high - low
  return jnp.where(span > 0, (image - low) / jnp.where(span > 0, span, 1.0), image)


def equalize(image):
  """Histogram equalisation per channel over 256 levels (PIL's ImageOps.equalize)."""
  levels = jnp.round(image * 255).astype(jnp.int32)

  def one_channel(channel):
    histogram = jnp.bincount(channel.ravel(), length=256)
    # PIL: step = (pixels - count of the last non-empty level) // 255
    last = histogram[jnp.max(jnp.where(histogram > 0, jnp.arange(256), 0))]
    step = (channel.size - last) // 255
    lut = (jnp.cumsum(histogram) - histogram + step // 2) // jnp.maximum(step, 1)
    equalized = jnp.clip(lut, 0, 255)[channel]
    return jnp.where(step > 0, equalized, channel)

  out = jax.vmap(one_channel, in_axes=-1, out_axes=-1)(levels)
  return out.astype(jnp.float32) / 255


def posterize(image, bits):
  """Keep the top `bits` (0 to 8) bits of each 8-bit value: 0 bits give black, as in PIL."""
  shift = (8 - jnp.clip(jnp.round(bits), 0, 8)).astype(jnp.int32)
  levels = jnp.round(image * 255).astype(jnp.int32)
  return ((levels >> shift) << shift).astype(jnp.float32) / 255


def solarize(image, threshold):
  return jnp.where(image >= threshold, 1.0 - image, image)


def solarize_add(image, addition, threshold=0.5):
  return jnp.where(image < threshold, jnp.clip(image + addition, 0.0, 1.0), image)


def sharpness(image, factor):
  """PIL's SHARPEN-kernel blend; the border pixels keep their values, as in PIL."""
  kernel = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13
  smooth = jax.vmap(lambda ch: jax.scipy.signal.convolve2d(ch, kernel, mode="same"),
                    in_axes=-1, out_axes=-1)(image)
  border = jnp.zeros(image.shape[:2], bool).at[1:-1, 1:-1].set(True)[..., None]
  return _blend(image, jnp.where(border, smooth, image), factor)


def _enhance(key, level):
  return 1.0 + _signed(key, 0.9 * level)


# Geometric ops as matrices: name -> (key, level, image shape) -> [2, 3]
GEOMETRIC = {
    "Rotate": lambda k, level, shape: rotation_matrix(_signed(k, 30.0 * level)),
    "ShearX": lambda k, level, shape: shear_x_matrix(_signed(k, 0.3 * level), shape),
    "ShearY": lambda k, level, shape: shear_y_matrix(_signed(k, 0.3 * level), shape),
    "TranslateXRel": lambda k, level, shape: translate_matrix(
        0.0, _signed(k, 0.45 * level * shape[1])),
    "TranslateYRel": lambda k, level, shape: translate_matrix(
        _signed(k, 0.45 * level * shape[0]), 0.0),
}
# Pixel ops: name -> (key, image [H, W, C] in [0, 1], level in [0, 1]) -> image
PIXEL = {
    "AutoContrast": lambda k, x, level: autocontrast(x),
    "Equalize": lambda k, x, level: equalize(x),
    "Invert": lambda k, x, level: 1.0 - x,
    "PosterizeIncreasing": lambda k, x, level: posterize(x, 4 - jnp.floor(4 * level)),
    "SolarizeIncreasing": lambda k, x, level: solarize(x, 1.0 - level),
    "SolarizeAdd": lambda k, x, level: solarize_add(x, 110 / 255 * level),
    "ColorIncreasing": lambda k, x, level: augment.adjust_saturation(x, _enhance(k, level)),
    "ContrastIncreasing": lambda k, x, level: augment.adjust_contrast(x, _enhance(k, level)),
    "BrightnessIncreasing": lambda k, x, level: augment.adjust_brightness(
        x, _enhance(k, level)),
    "SharpnessIncreasing": lambda k, x, level: sharpness(x, _enhance(k, level)),
}
# Every op as (key, image, level) -> image.
OPS = {**PIXEL, **{name: (lambda m: lambda k, x, level: affine(x, m(k, level, x.shape)))(m)
                   for name, m in GEOMETRIC.items()}}
_NAMES = tuple(OPS)
_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)  # no device at import


def _apply_op(index, key, image, level):
  """OPS[_NAMES[index]] with one warp for all geometric ops (vmapped, a switch runs every
  branch: five separate warps would cost five times as much)."""
  matrices = jnp.stack([GEOMETRIC[n](key, level, image.shape) if n in GEOMETRIC else _IDENTITY
                        for n in _NAMES])
  warped = affine(image, matrices[index])  # the identity warp returns the image exactly
  pixel_ops = [PIXEL.get(n, lambda k, x, level: x) for n in _NAMES]
  return jax.lax.switch(index, pixel_ops, key, warped, level)


def rand_augment(key, image, num_ops=2, magnitude=9.0, magnitude_std=0.5, prob=0.5):
  """[H, W, C] in [0, 1] -> [H, W, C] in [0, 1], `num_ops` random ops (see module doc)."""
  for op_key in jax.random.split(key, num_ops):
    choice_key, apply_key, level_key, sign_key = jax.random.split(op_key, 4)
    index = jax.random.randint(choice_key, (), 0, len(_NAMES))
    level = jnp.clip(magnitude + magnitude_std * jax.random.normal(level_key), 0.0, 10.0) / 10
    changed = _apply_op(index, sign_key, image, level)
    image = jnp.where(jax.random.bernoulli(apply_key, prob), changed, image)
  return image
