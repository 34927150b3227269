"""sRGB <-> CIE Lab (D65 white, 2-degree observer) as pure JAX functions, and the quantised ab
colour space of colorization (Zhang et al., ECCV 2016).

RGB values are in [0, 1] (gamma-encoded sRGB); L is in [0, 100], a and b roughly in
[-110, 110]. The formulas are the sRGB standard's (IEC 61966-2-1) and the CIE's:
linearise, XYZ = M @ rgb_linear, normalise by the D65 white, f(t) = t^(1/3) above
(6/29)^3, else t / (3 (6/29)^2) + 4/29; L = 116 f(Y) - 16, a = 500 (f(X) - f(Y)),
b = 200 (f(Y) - f(Z)).

`in_gamut_bins(grid)` [Q, 2] are the centres (multiples of `grid`) of the ab cells that some
sRGB colour falls in, found by converting a dense RGB lattice: the paper's Q = 313 cells are the
ones ImageNet's colours fill; every sRGB colour at grid 10 gives `IN_GAMUT_BINS_AT_10` of them.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                       [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]], np.float32)
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ.astype(np.float64)).astype(np.float32)
D65_WHITE = np.array([0.95047, 1.0, 1.08883], np.float32)
_DELTA = 6 / 29
IN_GAMUT_BINS_AT_10 = 261


def srgb_to_linear(rgb):
  return jnp.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear):
  linear = jnp.clip(linear, 0.0, 1.0)
  return jnp.where(linear <= 0.0031308, 12.92 * linear,
                   1.055 * jnp.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055)


def _f(t):
  return jnp.where(t > _DELTA ** 3, jnp.cbrt(jnp.maximum(t, _DELTA ** 3)),
                   t / (3 * _DELTA ** 2) + 4 / 29)


def _f_inverse(t):
  return jnp.where(t > _DELTA, t ** 3, 3 * _DELTA ** 2 * (t - 4 / 29))


def rgb_to_lab(rgb):
  """[..., 3] sRGB in [0, 1] -> [..., 3] (L, a, b)."""
  xyz = srgb_to_linear(rgb.astype(jnp.float32)) @ RGB_TO_XYZ.T / D65_WHITE
  fx, fy, fz = _f(xyz[..., 0]), _f(xyz[..., 1]), _f(xyz[..., 2])
  return jnp.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
  """[..., 3] (L, a, b) -> [..., 3] sRGB in [0, 1] (out-of-gamut colours clipped)."""
  fy = (lab[..., 0] + 16) / 116
  fx, fz = fy + lab[..., 1] / 500, fy - lab[..., 2] / 200
  xyz = jnp.stack([_f_inverse(fx), _f_inverse(fy), _f_inverse(fz)], axis=-1) * D65_WHITE
  return linear_to_srgb(xyz @ XYZ_TO_RGB.T)


@functools.lru_cache(maxsize=None)
def in_gamut_bins(grid=10, levels=64):
  """[Q, 2] float32 ab centres (multiples of `grid`) of the cells hit by a `levels`^3 sRGB
  lattice, sorted by (a, b)."""
  axis = np.linspace(0.0, 1.0, levels, dtype=np.float32)
  rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
  with jax.ensure_compile_time_eval():  # constants, also when first called under a trace
    ab = np.asarray(rgb_to_lab(jnp.asarray(rgb)))[:, 1:]
  cells = np.unique(np.round(ab / grid).astype(np.int32), axis=0)
  return (cells * grid).astype(np.float32)
