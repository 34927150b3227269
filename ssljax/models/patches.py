"""Patch layout shared by models, losses and figures.

A patch's pixels are flattened in (row, column, channel) order, the layout of the official MAE
release, so per-patch predictions are interchangeable with it.
"""
import jax.numpy as jnp


def patchify(images, patch_size):
  """[B, H, W, C] -> [B, L, p*p*C] with L = (H/p) * (W/p), patches in row-major order."""
  b, h, w, c = images.shape
  p = patch_size
  x = images.reshape(b, h // p, p, w // p, p, c)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches, patch_size, channels=3):
  """[B, L, p*p*C] -> [B, H, W, C] for a square grid of patches; inverse of `patchify`."""
  b, length, _ = patches.shape
  p = patch_size
  g = int(round(length ** 0.5))
  if g * g != length:
    raise ValueError(f"unpatchify needs a square patch grid, got {length} patches")
  x = patches.reshape(b, g, g, p, p, channels)
  x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))
  return x.reshape(b, g * p, g * p, channels)
