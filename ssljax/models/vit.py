"""Vision Transformer encoder and MAE decoder (Flax Linen, pure-functional).

Parameter names follow the official MAE/timm layout (`patch_embed`, `cls_token`, `blocks_{i}`
with `norm1`/`attn.qkv`/`attn.proj`/`norm2`/`mlp.fc1`/`mlp.fc2`, `norm`, `decoder_embed`,
`mask_token`, `decoder_blocks_{i}`, `decoder_norm`, `decoder_pred`) so that PyTorch checkpoints
map one-to-one. Position embeddings are fixed 2-D sin-cos constants; fine-tuning can make the
encoder's a parameter `pos_embed` [1, 1+L, D] that starts from them (`learned_pos_embed`).
"""
import re
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.models import attention, posemb

# name: (width, depth, heads, mlp_dim); "mu" is the tiny size for tests and CPU smoke runs.
SIZES = {
    "mu": (32, 2, 2, 128),
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "M": (512, 12, 8, 2048),
    "B": (768, 12, 12, 3072),
    "L": (1024, 24, 16, 4096),
    "H": (1280, 32, 16, 5120),
}

_dense_init = nn.initializers.xavier_uniform()
_token_init = nn.initializers.normal(stddev=0.02)
# MAE initialises the patch projection like a linear layer on the flattened [p*p*C] patch.
_patch_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=(0, 1, 2),
                                               out_axis=-1)


def _symmetric_uniform(bound_of_shape):
  """Initializer U(-b, b) with b = bound_of_shape(shape)."""
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound_of_shape(shape), bound_of_shape(shape))


_zero_bias = lambda fan_in: nn.initializers.zeros
# The official releases' initialisations (`ViT.weight_init`, `model.vit_init`); Linear biases 0:
#   xavier  xavier_uniform Linear kernels (the fused qkv as one [D, 3D] matrix), the patch
#           projection xavier on the flattened patch with bias 0, tokens N(0, 0.02)
#   xavier_torch_bias  (MAE) xavier, but the patch projection's bias keeps PyTorch's Conv2d
#           default U(+-1/sqrt(fan_in)), fan_in = C*p*p (MAE's _init_weights covers Linear and
#           LayerNorm only)
#   mocov3  xavier, but q, k and v each xavier_uniform on its own [D, D] (bound sqrt(6 / 2D),
#           not sqrt(6 / 4D)) and the cls token N(0, 1e-6) (moco-v3 vits.py)
# qkv, cls: initializers; patch_bias: fan_in -> initializer.
INITS = {
    "xavier": dict(qkv=_dense_init, cls=_token_init, patch_bias=_zero_bias),
    "xavier_torch_bias": dict(
        qkv=_dense_init, cls=_token_init,
        patch_bias=lambda fan_in: _symmetric_uniform(lambda shape: fan_in ** -0.5)),
    "mocov3": dict(qkv=_symmetric_uniform(lambda shape: (6 / (shape[0] + shape[1] // 3)) ** 0.5),
                   cls=nn.initializers.normal(1e-6), patch_bias=_zero_bias),
}


def spec_from_config(model_config):
  """`parse_variant(model.variant)` with any of model.width/depth/num_heads/mlp_dim that are
  set overriding the table (e.g. a shallower encoder for an ablation or a CPU demo)."""
  spec = parse_variant(model_config.variant)
  for name in ("width", "depth", "num_heads", "mlp_dim"):
    if model_config.get(name) is not None:
      spec[name] = model_config[name]
  return spec


def parse_variant(variant):
  """"B/16" -> dict(width=768, depth=12, num_heads=12, mlp_dim=3072, patch_size=16)."""
  match = re.fullmatch(r"(\w+)/(\d+)", variant or "")
  if not match or match.group(1) not in SIZES:
    raise ValueError(f"unknown ViT variant {variant!r}: use SIZE/PATCH with SIZE one of "
                     f"{', '.join(SIZES)} (e.g. 'B/16')")
  width, depth, heads, mlp_dim = SIZES[match.group(1)]
  return dict(width=width, depth=depth, num_heads=heads, mlp_dim=mlp_dim,
              patch_size=int(match.group(2)))


class Linear(nn.Module):
  """Dense layer over the last axis: [..., D] -> [..., features], params `kernel`, `bias`.

  Computed on a [N, D] view of the input: XLA:CPU runs that as one plain matmul, about twice
  as fast as the batched [B, L, D] contraction (and its gradient); elsewhere it is free.
  """
  features: int
  dtype: Any = jnp.float32
  kernel_init: Any = _dense_init

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    y = x.reshape(-1, x.shape[-1]).astype(self.dtype) @ kernel.astype(self.dtype)
    return (y + bias.astype(self.dtype)).reshape(x.shape[:-1] + (self.features,))


class Mlp(nn.Module):
  """[B, N, D] -> [B, N, D]: fc1, exact GELU, fc2."""
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    width = x.shape[-1]
    x = Linear(self.mlp_dim, self.dtype, name="fc1")(x)
    x = nn.gelu(x, approximate=False)
    return Linear(width, self.dtype, name="fc2")(x)


class Attention(nn.Module):
  """[B, N, D] -> [B, N, D] multi-head self-attention with one fused qkv projection.

  The qkv output is laid out as [3, heads, head_dim] (q, then k, then v), as in timm.
  """
  num_heads: int
  dtype: Any = jnp.float32
  qkv_init: Any = _dense_init
  attention_impl: str = "auto"  # attention.IMPLS

  @nn.compact
  def __call__(self, x):
    b, n, width = x.shape
    if width % self.num_heads:
      raise ValueError(f"width {width} is not divisible by num_heads {self.num_heads}")
    head_dim = width // self.num_heads
    qkv = Linear(3 * width, self.dtype, self.qkv_init, name="qkv")(x)
    q, k, v = jnp.moveaxis(qkv.reshape(b, n, 3, self.num_heads, head_dim), 2, 0)
    out = attention.dot_product_attention(q, k, v, self.attention_impl).reshape(b, n, width)
    return Linear(width, self.dtype, name="proj")(out)


class Block(nn.Module):
  """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

  With `drop_path` > 0 and `deterministic=False` each residual branch is dropped per example
  with that probability and kept ones are scaled by 1 / (1 - drop_path) (stochastic depth);
  the "dropout" rng drives it.
  """
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  drop_path: float = 0.0
  qkv_init: Any = _dense_init
  attention_impl: str = "auto"

  @nn.compact
  def __call__(self, x, deterministic=True):
    norm = lambda name: nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name=name)
    # Dropout broadcast over tokens and channels drops a whole example's branch.
    drop = nn.Dropout(self.drop_path, broadcast_dims=(1, 2), deterministic=deterministic)
    attn = Attention(self.num_heads, self.dtype, self.qkv_init, self.attention_impl, name="attn")
    x = x + drop(attn(norm("norm1")(x)))
    return x + drop(Mlp(self.mlp_dim, self.dtype, name="mlp")(norm("norm2")(x)))


# Rematerialisation of each block in the backward pass: which activations the forward keeps
# (the rest are recomputed from the block's input). `vit.Linear` multiplies on a 2-D view, so
# its matmuls have no batch dims; attention's q k^T and its product with v do.
#   none  keep every activation (fastest; the most memory)
#   full  keep only each block's input; recompute the whole block (about one more forward)
#   dots  keep the Linear outputs (qkv, proj, fc1, fc2); recompute LayerNorms, GELU, softmax
#         and attention's batched matmuls, i.e. never keep the [B, heads, N, N] scores
REMAT_POLICIES = {"none": None, "full": None,
                  "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable}


def remat_policy_name(remat):
  """`model.remat` -> a REMAT_POLICIES name; the old booleans: True = "full", False = "none"."""
  if isinstance(remat, bool):
    return "full" if remat else "none"
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat {remat!r} is unknown: use one of {', '.join(REMAT_POLICIES)}")
  return remat


def _block_stack(x, *, prefix, depth, num_heads, mlp_dim, dtype, remat, drop_path=0.0,
                 deterministic=True, qkv_init=_dense_init, attention_impl="auto"):
  """`depth` blocks; block i's drop-path rate rises linearly from 0 to `drop_path` (timm)."""
  policy = remat_policy_name(remat)
  block_cls = Block if policy == "none" else nn.remat(
      Block, static_argnums=(2,), policy=REMAT_POLICIES[policy])
  for i in range(depth):
    rate = drop_path * i / max(depth - 1, 1)
    x = block_cls(num_heads, mlp_dim, dtype, rate, qkv_init, attention_impl,
                  name=f"{prefix}_{i}")(x, deterministic)
  return x


class ViT(nn.Module):
  """ViT encoder with a cls token.

  `__call__(images [B, H, W, C], keep_indices [B, K] | None, token_mask [B, L] | None)`
  returns `(tokens [B, 1+K, D], intermediates)`; tokens[:, 0] is the cls token. With
  `keep_indices` only those patches are encoded (MAE); with `token_mask` (1 = masked) the masked
  patches are replaced by a learned `mask_token` and all are encoded (the BERT-style variant).
  Fine-tuning sets `drop_path` (stochastic depth, active when `deterministic=False`), for
  average pooling `final_norm=False` (MAE normalises the pooled token instead), and
  `learned_pos_embed`: the position embedding becomes a parameter `pos_embed` [1, 1+L, D]
  initialised to the sin-cos table with a zero row for the cls token, as timm's
  VisionTransformer trains the one it loads from an MAE checkpoint.
  """
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  patch_size: int
  dtype: Any = jnp.float32
  remat: Any = "none"  # a REMAT_POLICIES name (or the old bool)
  drop_path: float = 0.0
  final_norm: bool = True
  learned_pos_embed: bool = False
  weight_init: str = "xavier"  # a name in INITS
  attention_impl: str = "auto"  # attention.IMPLS

  @nn.compact
  def __call__(self, images, keep_indices=None, token_mask=None, deterministic=True):
    b, h, w, c = images.shape
    p = self.patch_size
    if h % p or w % p or h != w:
      raise ValueError(f"image size {h}x{w} is not a square multiple of patch_size {p}")
    if self.weight_init not in INITS:
      raise ValueError(f"ViT weight_init {self.weight_init!r} is unknown: use one of "
                       f"{', '.join(INITS)}")
    inits = INITS[self.weight_init]
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding="VALID", dtype=self.dtype,
                kernel_init=_patch_init, bias_init=inits["patch_bias"](c * p * p),
                name="patch_embed")(images.astype(self.dtype))
    x = x.reshape(b, -1, self.width)
    if token_mask is not None:
      mask_token = self.param("mask_token", _token_init, (1, 1, self.width))
      m = token_mask[..., None].astype(x.dtype)
      x = x * (1 - m) + mask_token.astype(x.dtype) * m
    table = posemb.sincos_2d(self.width, h // p)  # [L, D]
    if self.learned_pos_embed:
      with_cls = np.concatenate([np.zeros((1, self.width), np.float32), table])[None]
      pos_embed = self.param("pos_embed", lambda key, shape: jnp.asarray(with_cls),
                             with_cls.shape)  # [1, 1+L, D]
      table = pos_embed[:, 1:]
    x = x + jnp.asarray(table, x.dtype)
    if keep_indices is not None:
      x = jnp.take_along_axis(x, keep_indices[..., None], axis=1)
    cls = self.param("cls_token", inits["cls"], (1, 1, self.width)).astype(x.dtype)
    if self.learned_pos_embed:  # the fixed embedding's cls row is 0
      cls = cls + pos_embed[:, :1].astype(x.dtype)
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.width)), x], axis=1)
    x = _block_stack(x, prefix="blocks", depth=self.depth, num_heads=self.num_heads,
                     mlp_dim=self.mlp_dim, dtype=self.dtype, remat=self.remat,
                     drop_path=self.drop_path, deterministic=deterministic,
                     qkv_init=inits["qkv"], attention_impl=self.attention_impl)
    if self.final_norm:
      x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(x)
    return x, {"cls": x[:, 0], "patch_mean": x[:, 1:].mean(axis=1)}


class MAEDecoder(nn.Module):
  """MAE decoder: encoder tokens of visible patches -> per-patch pixel predictions.

  `__call__(tokens [B, 1+K, D_enc], restore_indices [B, L])` projects to the decoder width,
  appends L-K learned mask tokens, un-shuffles them to patch order with `restore_indices`, adds
  fixed position embeddings, runs its own blocks and returns `(pred [B, L, out_dim], {})`
  (default out_dim p*p*C: pixels; MAE's other targets predict PCA coefficients or logits).
  """
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  patch_size: int
  channels: int = 3
  out_dim: Optional[int] = None
  dtype: Any = jnp.float32
  remat: Any = "none"
  attention_impl: str = "auto"

  @nn.compact
  def __call__(self, tokens, restore_indices):
    b, length = restore_indices.shape
    x = Linear(self.width, self.dtype, name="decoder_embed")(tokens)
    mask_token = self.param("mask_token", _token_init, (1, 1, self.width)).astype(x.dtype)
    num_masked = length + 1 - x.shape[1]
    patches = jnp.concatenate(
        [x[:, 1:], jnp.broadcast_to(mask_token, (b, num_masked, self.width))], axis=1)
    patches = jnp.take_along_axis(patches, restore_indices[..., None], axis=1)
    grid = int(round(length ** 0.5))
    patches = patches + jnp.asarray(posemb.sincos_2d(self.width, grid), x.dtype)
    x = jnp.concatenate([x[:, :1], patches], axis=1)  # the cls token's position embedding is 0
    x = _block_stack(x, prefix="decoder_blocks", depth=self.depth, num_heads=self.num_heads,
                     mlp_dim=self.mlp_dim, dtype=self.dtype, remat=self.remat,
                     attention_impl=self.attention_impl)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="decoder_norm")(x)
    out_dim = self.out_dim or self.patch_size ** 2 * self.channels
    pred = Linear(out_dim, self.dtype, name="decoder_pred")(x)
    return pred[:, 1:], {}
