"""What the pictures of an encoder show (`draw_pictures` draws them): a t-SNE of test-split
features, nearest-neighbour retrieval by cosine similarity, and a ViT's cls-token attention.

The attention is read from the model as it runs, without changing it (`with_cls_attention`):
`nn.intercept_methods` records the output of the last `attn.qkv` projection an encoder
computes, and `cls_attention` turns it into the cls query's attention weights,
softmax(q_cls k^T / sqrt(head_dim)). Whatever kernel the model's attention ran (XLA, cuDNN),
these are computed in float32 from its q and k.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.models import vit


def sample_indices(num_examples, num_points, seed=0):
  """Sorted indices of `num_points` examples drawn without replacement (all if fewer)."""
  if num_points >= num_examples:
    return np.arange(num_examples)
  return np.sort(np.random.default_rng(seed).permutation(num_examples)[:num_points])


def tsne_points(features, labels, num_points, seed=0, max_iter=1000):
  """(xy [n, 2], labels [n], indices [n]): a 2-D t-SNE (scikit-learn, PCA init, `max_iter`
  iterations) of the features [N, D] of `num_points` sampled examples (`sample_indices`), with
  their labels."""
  from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
  indices = sample_indices(len(features), num_points, seed)
  chosen = np.asarray(features, np.float32)[indices]
  perplexity = min(30.0, (len(chosen) - 1) / 3)  # scikit-learn requires perplexity < n
  xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed,
              max_iter=max_iter).fit_transform(chosen)
  return xy, np.asarray(labels)[indices], indices


def nearest_neighbours(query_features, key_features, k):
  """Indices [Q, k] of the `k` keys [N, D] most cosine-similar to each query [Q, D], the most
  similar first (ties: the lower index first)."""
  q = query_features / np.maximum(np.linalg.norm(query_features, axis=1, keepdims=True), 1e-12)
  keys = key_features / np.maximum(np.linalg.norm(key_features, axis=1, keepdims=True), 1e-12)
  similarity = q.astype(np.float32) @ keys.astype(np.float32).T  # [Q, N]
  return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def cls_attention(qkv, num_heads):
  """The cls query's attention weights [B, heads, 1+L] over all tokens (cls first), from a
  block's fused qkv projection [B, 1+L, 3*D] laid out as `vit.Attention`'s (q, k, v, each
  [heads, head_dim]); each row sums to 1."""
  b, n, three_width = qkv.shape
  head_dim = three_width // 3 // num_heads
  q, k, _ = jnp.moveaxis(qkv.astype(jnp.float32).reshape(b, n, 3, num_heads, head_dim), 2, 0)
  logits = jnp.einsum("bhd,bnhd->bhn", q[:, 0], k) / jnp.sqrt(head_dim)
  return jax.nn.softmax(logits, axis=-1)


def with_cls_attention(fn, *args):
  """(`fn(*args)`, the cls attention [B, heads, 1+L] (`cls_attention`) of the last
  `vit.Attention` it ran); (output, None) where it ran no ViT attention."""
  seen = {}

  def record(next_fun, call_args, kwargs, context):
    out = next_fun(*call_args, **kwargs)
    parent = context.module.parent
    if (context.method_name == "__call__" and context.module.name == "qkv"
        and isinstance(parent, vit.Attention)):
      seen.update(qkv=out, num_heads=parent.num_heads)
    return out

  with nn.intercept_methods(record):
    out = fn(*args)
  return out, (cls_attention(seen["qkv"], seen["num_heads"]) if seen else None)


def attention_maps(weights, image_size):
  """Cls attention [B, heads, 1+L] -> maps [B, heads, image_size, image_size] over the image:
  the patch weights (the cls token's own left out) on the patch grid, each patch's weight
  repeated over its pixels."""
  patch_weights = np.asarray(weights)[..., 1:]
  b, heads, length = patch_weights.shape
  grid = int(round(length ** 0.5))
  maps = patch_weights.reshape(b, heads, grid, grid)
  scale = image_size // grid
  return np.repeat(np.repeat(maps, scale, axis=2), scale, axis=3)
