"""MAE's reconstruction targets (He et al., 2022, Table 1d), chosen by `mae.target`.

- `pixel`: the patches of the (channel-standardised) image, MSE on masked patches.
- `norm_pixel`: each patch standardised by its own mean and std (the paper's default).
- `pca`: the largest `mae.pca_dims` PCA coefficients of each patch, MSE on masked patches. The
  paper does PCA "in the patch space" without saying more; here that is the `pixel` target's
  space (channel-standardised patches, centred by the fitted mean), so only the low-frequency
  part of each patch is predicted.
- `tokens`: the id of each patch's nearest centroid in a k-means codebook of
  `mae.token_codebook_size` centroids over per-patch standardised patches (`mae.tokenizer =
  "kmeans"`), cross-entropy on masked patches. It stands in for the paper's DALL-E dVAE tokens,
  which cannot be downloaded here: a codebook the repo fits itself, not a learned dVAE.

The PCA basis and the codebook are fitted once, on a seeded sample of `mae.target_fit_examples`
training images (their evaluation views), by the method's `fit_state` hook, and kept as model
state in the collection `STATE` (checkpointed with the run).
`mae.norm_pix_loss`, when set, is the older switch: True means `norm_pixel`, False `pixel`.
"""
import jax
import jax.numpy as jnp
import numpy as np

from ssljax.data import augment, sources
from ssljax.errors import ConfigError, DataError
from ssljax.models import pca
from ssljax.models import patches, vit

TARGETS = ("pixel", "norm_pixel", "pca", "tokens")
TOKENIZERS = ("kmeans",)
STATE = "mae_target"  # the model-state collection of the fitted targets


def name(config):
  """`config.mae`'s target; a saved config from before `mae.target` has only norm_pix_loss."""
  alias = config.mae.get("norm_pix_loss")
  target = config.mae.get("target", "norm_pixel")
  if alias is None:
    return target
  implied = "norm_pixel" if alias else "pixel"
  if target not in ("norm_pixel", implied):  # norm_pixel is the default, so the alias wins
    raise ConfigError(f"mae.norm_pix_loss={alias} contradicts mae.target={target!r}: set only "
                      "mae.target (norm_pix_loss is its older alias; None leaves it to target)")
  return implied


def patch_dim(config):
  return vit.spec_from_config(config.model)["patch_size"] ** 2 * 3


def output_dim(config):
  """What the decoder predicts per patch: pixels, PCA coefficients or codebook logits."""
  target = name(config)
  if target == "pca":
    return config.mae.pca_dims
  if target == "tokens":
    return config.mae.token_codebook_size
  return patch_dim(config)


def patch_targets(images, patch_size, norm_pix_loss):
  """[B, H, W, C] -> [B, L, p*p*C] targets; per-patch standardised if `norm_pix_loss`.

  As in the official release the variance is the unbiased one, with eps 1e-6.
  """
  target = patches.patchify(images.astype(jnp.float32), patch_size)
  if norm_pix_loss:
    mean, std = patch_mean_std(target)
    target = (target - mean) / std
  return target


def patch_mean_std(patch_pixels):
  """[B, L, P] -> per-patch mean and std, [B, L, 1] each (unbiased variance + 1e-6)."""
  mean = patch_pixels.mean(axis=-1, keepdims=True)
  return mean, jnp.sqrt(patch_pixels.var(axis=-1, keepdims=True, ddof=1) + 1e-6)


def masked_mse(pred, target, mask):
  """Mean over masked patches of the per-patch MSE; visible patches do not count."""
  per_patch = jnp.mean((pred.astype(jnp.float32) - target) ** 2, axis=-1)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_cross_entropy(logits, ids, mask):
  """logits [B, L, V], ids int [B, L], mask [B, L] -> mean cross-entropy over masked patches."""
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  per_patch = -jnp.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0]
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def pca_coefficients(patch_pixels, mean, components):
  """[..., P] patches, mean [P], components [P, K] (orthonormal columns) -> [..., K]."""
  return (patch_pixels - mean) @ components


def pca_reconstruction(coefficients, mean, components):
  """[..., K] -> [..., P]: the patch's projection on the top K components (low-pass)."""
  return coefficients @ components.T + mean


def token_ids(normalised_patches, codebook):
  """[..., P] per-patch standardised patches, codebook [V, P] -> int32 [...]: nearest centroid."""
  distances = (jnp.sum(normalised_patches ** 2, -1, keepdims=True)
               - 2 * normalised_patches @ codebook.T + jnp.sum(codebook ** 2, -1))
  return jnp.argmin(distances, axis=-1).astype(jnp.int32)


def loss(config, state, pred, images, mask):
  """The masked-patch loss of `pred` [B, L, output_dim] against the target of images
  [B, H, W, C] (normalised); `state` holds the fitted collection for pca and tokens."""
  target = name(config)
  p = vit.spec_from_config(config.model)["patch_size"]
  if target in ("pixel", "norm_pixel"):
    return masked_mse(pred, patch_targets(images, p, target == "norm_pixel"), mask)
  fitted = state[STATE]
  if target == "pca":
    coefficients = pca_coefficients(patch_targets(images, p, False), fitted["mean"],
                                    fitted["components"])
    return masked_mse(pred, coefficients, mask)
  return masked_cross_entropy(pred, token_ids(patch_targets(images, p, True),
                                              fitted["codebook"]), mask)


def predicted_pixels(config, variables, pred, images):
  """pred [B, L, output_dim] -> [B, L, P] patches in the images' units, for the figure:
  norm_pixel and tokens restore each true patch's mean and std; pca projects back; tokens
  paint the argmax centroid."""
  target = name(config)
  pred = pred.astype(jnp.float32)
  p = vit.spec_from_config(config.model)["patch_size"]
  if target == "pixel":
    return pred
  if target == "pca":
    fitted = variables[STATE]
    return pca_reconstruction(pred, fitted["mean"], fitted["components"])
  if target == "tokens":
    pred = variables[STATE]["codebook"][jnp.argmax(pred, axis=-1)]
  mean, std = patch_mean_std(patches.patchify(images, p))
  return pred * std + mean


# ------------------------------------------------------------------------------- fitting

def sample_patches(config, source):
  """float32 [N * L, P]: the channel-standardised patches of a seeded sample of
  `mae.target_fit_examples` training images, in their evaluation view (whole, resized)."""
  count = min(config.mae.target_fit_examples, len(source))
  index = np.sort(np.random.default_rng(config.seed).permutation(len(source))[:count])
  view = sources.eval_source(source, config.input)
  images = np.stack([view[int(i)]["image"] for i in index])
  x = augment.eval_view(jnp.asarray(images), config.input.image_size)
  p = vit.spec_from_config(config.model)["patch_size"]
  return np.asarray(patches.patchify(x, p)).reshape(-1, patch_dim(config))


fit_pca = pca.fit


def fit_kmeans(points, size, iterations, seed):
  """[N, P] -> codebook [size, P]: Lloyd's algorithm from `size` distinct sampled points; a
  centroid left without points is moved to the point farthest from its centroid."""
  x = np.asarray(points, np.float32)
  if len(x) < size:
    raise DataError(f"mae.token_codebook_size={size} needs at least as many fitting patches; "
                    f"the sample has {len(x)}: raise mae.target_fit_examples or lower "
                    "mae.token_codebook_size")
  rng = np.random.default_rng(seed)
  codebook = x[rng.choice(len(x), size, replace=False)].copy()
  squared = np.sum(x ** 2, axis=1, keepdims=True)
  for _ in range(iterations):
    distances = squared - 2 * x @ codebook.T + np.sum(codebook ** 2, axis=1)
    assign = distances.argmin(axis=1)
    counts = np.bincount(assign, minlength=size)
    sums = np.zeros_like(codebook)
    np.add.at(sums, assign, x)
    filled = counts > 0
    codebook[filled] = sums[filled] / counts[filled, None]
    empty = np.flatnonzero(~filled)
    if empty.size:
      farthest = np.argsort(distances[np.arange(len(x)), assign])[::-1][:empty.size]
      codebook[empty] = x[farthest]
  return codebook


def fit_state(config, source):
  """{STATE: fitted arrays} for the pca and tokens targets; {} for the pixel ones."""
  target = name(config)
  if target not in ("pca", "tokens"):
    return {}
  patch_pixels = sample_patches(config, source)
  if target == "pca":
    return {STATE: fit_pca(patch_pixels, config.mae.pca_dims)}
  codebook = fit_kmeans(_standardise_rows(patch_pixels), config.mae.token_codebook_size,
                        config.mae.kmeans_iterations, config.seed)
  return {STATE: {"codebook": codebook}}


def _standardise_rows(patch_pixels):
  """[N, P] -> each row standardised as `patch_targets(..., norm_pix_loss=True)` does."""
  mean, std = patch_mean_std(jnp.asarray(patch_pixels))
  return np.asarray((jnp.asarray(patch_pixels) - mean) / std)


def validate(config):
  """mae.target and its fields; raises ConfigError."""
  target = name(config)
  c = config.mae
  if target not in TARGETS:
    raise ConfigError(f"mae.target={target!r} is unknown: use one of {', '.join(TARGETS)}")
  dim = patch_dim(config)
  checks = [
      ("pca_dims", target != "pca" or 1 <= c.pca_dims <= dim,
       f"a count in [1, {dim}] (the patch dimension; the paper: 96 of 768, an eighth)"),
      ("tokenizer", c.tokenizer in TOKENIZERS, " or ".join(TOKENIZERS)),
      ("token_codebook_size", target != "tokens" or c.token_codebook_size >= 2,
       "a codebook of at least 2 centroids, e.g. 512"),
      ("kmeans_iterations", c.kmeans_iterations >= 1, "at least 1 Lloyd iteration, e.g. 20"),
      ("target_fit_examples", c.target_fit_examples >= 1,
       "at least 1 training image (e.g. 1000) to fit the PCA basis or the codebook on"),
  ]
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"mae.{field}={c[field]!r} is invalid for mae.target={target!r}: "
                        f"use {fix}")
