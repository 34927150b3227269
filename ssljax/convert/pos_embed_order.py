"""Which grid coordinate the first half of a ViT's sin-cos position embedding encodes.

ssljax's table (`models.posemb`, the MAE release's) puts the column in the first D/2 channels
and the row in the second; MoCo v3's `vits.py` (`torch.meshgrid` with 'ij' indexing) puts the
row first. Both halves use the same frequencies, so one table is the other with its halves
swapped. A ViT trained with the row-first table computes, with ssljax's, exactly what it
computed (its residual stream's halves swapped) once every residual-stream axis of its
parameters is rolled by D/2 (`row_first_to_column_first`).
"""
import numpy as np

# Flax ViT modules by how they touch the residual stream [.., D]: the axis of D in their arrays.
_READ_KERNEL_AXIS = {"qkv": 0, "fc1": 0}  # Dense [D, out]; their bias is not in the stream
_WRITE_AXIS = {"proj": -1, "fc2": -1, "patch_embed": -1}  # kernel [..., D] and bias [D]
_TOKENS = ("cls_token", "mask_token", "pos_embed")  # [1, n, D]


def halves_swapped(table):
  """[..., D] -> the same table with its two halves of channels exchanged."""
  half = table.shape[-1] // 2
  return np.concatenate([table[..., half:], table[..., :half]], axis=-1)


def _residual_axis(path, shape):
  """The axis of the residual stream in the ViT parameter at `path`, or None."""
  *modules, leaf = path
  if not modules:
    if leaf in _TOKENS:
      return -1
  elif modules[-1] in _READ_KERNEL_AXIS:
    return _READ_KERNEL_AXIS[modules[-1]] if leaf == "kernel" else None
  elif modules[-1] in _WRITE_AXIS or modules[-1].startswith("norm"):
    return -1
  raise ValueError(f"ViT parameter {'/'.join(path)} {shape}: no known residual-stream axis")


def row_first_to_column_first(params):
  """ViT params {name: ...} trained with the row-first table -> the same network for ssljax's
  column-first one: every residual-stream axis rolled by D/2."""
  def convert(tree, path):
    if isinstance(tree, dict):
      return {k: convert(v, path + (k,)) for k, v in tree.items()}
    axis = _residual_axis(path, tree.shape)
    if axis is None:
      return tree
    return np.moveaxis(halves_swapped(np.moveaxis(np.asarray(tree), axis, -1)), -1, axis)
  return convert(params, ())
