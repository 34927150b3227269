"""Fixed 2-D sin-cos position embeddings (MAE, MoCo v3).

Half of the channels encode one grid coordinate and half the other, each as [sin, cos] of the
coordinate times geometric frequencies. The coordinate order follows the official MAE release
(its first half encodes the column index) so imported weights line up exactly.
"""
import numpy as np


def sincos_1d(dim, positions):
  """[N] positions -> [N, dim] embedding, dim even."""
  if dim % 2:
    raise ValueError(f"sin-cos embedding needs an even dimension, got {dim}")
  omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
  angles = positions.reshape(-1).astype(np.float64)[:, None] * omega[None, :]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim, grid_size):
  """[g*g, dim] float32 embedding for a g x g grid in row-major patch order; dim % 4 == 0."""
  if dim % 4:
    raise ValueError(f"2-D sin-cos embedding needs a width divisible by 4, got {dim}")
  cols, rows = np.meshgrid(np.arange(grid_size), np.arange(grid_size))
  emb = np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1)
  return emb.astype(np.float32)
