"""Layer-wise learning-rate decay for fine-tuning a ViT (BEiT, MAE `lr_decay.py`).

With `depth` blocks there are depth + 2 layers: 0 is the embedding (`patch_embed`, `cls_token`,
`mask_token`, position embeddings), block i is layer i + 1, and everything after the blocks
(final norm, `fc_norm`, `head`) is layer depth + 1. Layer l trains at

    lr * decay ** (depth + 1 - l)

so the head gets the full rate, the last block `decay`, the embedding `decay ** (depth + 1)`.
The multiplier scales the whole AdamW update, weight decay included, exactly as MAE's
per-group `lr_scale` does.
"""
import re

import jax
import jax.numpy as jnp
import optax

from ssljax.run.optim import path_name

_EMBEDDING = re.compile(r"(^|/)(patch_embed|cls_token|mask_token|pos_embed)(/|$)")
_BLOCK = re.compile(r"(^|/)blocks_(\d+)(/|$)")


def layer_id(name, depth):
  """Layer of the parameter named `name` ("encoder/blocks_3/attn/qkv/kernel" -> 4)."""
  if _EMBEDDING.search(name):
    return 0
  block = _BLOCK.search(name)
  if block:
    return int(block.group(2)) + 1
  return depth + 1


def multipliers(params, depth, decay):
  """Pytree like `params` of float learning-rate multipliers."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: float(decay ** (depth + 1 - layer_id(path_name(path), depth))), params)


def scale_by_layer(depth, decay):
  """optax transform multiplying each parameter's update by its layer's multiplier."""
  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    del params
    scales = multipliers(updates, depth, decay)
    return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

  return optax.GradientTransformation(init_fn, update_fn)
