"""The k-means floor of the baseline harness (`baseline="kmeans"`, `evals.features`): centroids
fitted by Lloyd's iterations from a seeded k-means++ start, and features of an image that are a
fixed function of its distances to them.

Two inputs (`probe.kmeans_input`):
  "patches" (default; Coates & Ng, "The importance of encoder training and encoding with
    vector quantization", ICML 2011, and Coates, Lee & Ng, AISTATS 2011): every
    `patch_size`-pixel patch at stride 1, each normalised for brightness and contrast
    ((p - mean(p)) / sqrt(var(p) + 10), pixels in [0, 255]) and ZCA-whitened (eps 0.1) with a
    whitening fitted on the training patches; k-means on random training patches; an image's
    feature is the "triangle" activation f_k = max(0, mean_j(z_j) - z_k), z_k = |x - c_k|, of
    every patch, summed over the four quadrants of the image: [B, 4k];
  "images": k-means on whole images (the normalised pixels the PCA floor projects); the
    feature is the triangle activation of the image itself: [B, k].
The objective Lloyd's iterations minimise, the mean squared distance of a fitted point to its
nearest centroid (a reconstruction error), is computed after every iteration; it never rises.
An empty cluster keeps its centroid. Coates et al. use 1,600 centroids and 400K patches; the
defaults (`sections.probe_base_config`) are smaller so the floor fits a CPU run.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

INPUTS = ("patches", "images")
CONTRAST_EPS = 10.0  # Coates & Ng's constant for patches of [0, 255] pixels
WHITEN_EPS = 0.1


def squared_distances(points, centroids):
  """[N, D], [K, D] -> [N, K] squared Euclidean distances (clipped at 0 against rounding)."""
  cross = points @ centroids.T
  return jnp.maximum(jnp.sum(points**2, -1)[:, None] - 2 * cross
                     + jnp.sum(centroids**2, -1)[None], 0.0)


def objective(points, centroids):
  """Mean over points [N, D] of the squared distance to the nearest centroid [K, D]."""
  return jnp.mean(jnp.min(squared_distances(points, centroids), -1))


def kmeans_plus_plus(key, points, k):
  """k-means++ seeding (Arthur & Vassilvitskii 2007): the first centroid a uniform draw of the
  points [N, D], each next one drawn with probability proportional to the squared distance
  to the nearest centroid so far -> [k, D]."""
  first_key, rest_key = jax.random.split(key)
  first = points[jax.random.randint(first_key, (), 0, points.shape[0])]
  centroids = jnp.zeros((k, points.shape[1]), points.dtype).at[0].set(first)
  nearest = jnp.sum((points - first)**2, -1)

  def add(i, carry):
    centroids, nearest = carry
    chosen = points[jax.random.categorical(jax.random.fold_in(rest_key, i),
                                           jnp.log(jnp.maximum(nearest, 1e-30)))]
    nearest = jnp.minimum(nearest, jnp.sum((points - chosen)**2, -1))
    return centroids.at[i].set(chosen), nearest

  return jax.lax.fori_loop(1, k, add, (centroids, nearest))[0]


def lloyd_step(points, centroids):
  """One assignment + update: (new centroids [K, D], objective of `centroids`); a centroid
  without points stays where it was."""
  distances = squared_distances(points, centroids)
  assignment = jnp.argmin(distances, -1)
  k = centroids.shape[0]
  sums = jax.ops.segment_sum(points, assignment, k)
  counts = jax.ops.segment_sum(jnp.ones_like(assignment, points.dtype), assignment, k)
  new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], centroids)
  return new, jnp.mean(jnp.min(distances, -1))


@functools.partial(jax.jit, static_argnames=("k", "iterations"))
def fit(points, k, iterations, seed):
  """points [N, D] -> (centroids [k, D], objectives [iterations + 1]): objectives[t] is the
  objective after t Lloyd iterations from the k-means++ start drawn with `seed`."""
  centroids = kmeans_plus_plus(jax.random.key(seed), points, k)
  centroids, objectives = jax.lax.scan(lambda c, _: lloyd_step(points, c), centroids, None,
                                       length=iterations)
  return centroids, jnp.append(objectives, objective(points, centroids))


def triangle(points, centroids):
  """[..., D] -> [..., K]: max(0, mean_j(z_j) - z_k), z = distances to the centroids [K, D]
  (Coates et al.'s "k-means triangle": about half the features are 0)."""
  flat = points.reshape(-1, points.shape[-1])
  z = jnp.sqrt(squared_distances(flat, centroids))
  f = jnp.maximum(jnp.mean(z, -1, keepdims=True) - z, 0.0)
  return f.reshape(points.shape[:-1] + (centroids.shape[0],))


def image_patches(images, size):
  """float [B, H, W, C] -> every size x size patch at stride 1, flattened:
  [B, H - size + 1, W - size + 1, size * size * C]."""
  return jax.lax.conv_general_dilated_patches(
      images, (size, size), (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def normalise_contrast(patches):
  """[..., P] -> each patch minus its mean, divided by sqrt(its variance + CONTRAST_EPS)."""
  mean = jnp.mean(patches, -1, keepdims=True)
  return (patches - mean) / jnp.sqrt(jnp.var(patches, -1, keepdims=True) + CONTRAST_EPS)


def fit_whitening(patches):
  """[N, P] (contrast-normalised) -> (mean [P], ZCA matrix [P, P]) with eigenvalues + WHITEN_EPS."""
  patches = np.asarray(patches, np.float64)
  mean = patches.mean(0)
  eigenvalues, vectors = np.linalg.eigh(np.cov(patches - mean, rowvar=False))
  zca = (vectors / np.sqrt(eigenvalues + WHITEN_EPS)) @ vectors.T
  return mean.astype(np.float32), zca.astype(np.float32)


def whiten(patches, mean, zca):
  """[..., P] -> contrast-normalised, then ZCA-whitened with a `fit_whitening` result."""
  return (normalise_contrast(patches) - mean) @ zca


def sample_patches(images, size, count, seed):
  """`count` random size x size patches of images uint8 [N, H, W, C] (uniform image and
  position), flattened as `image_patches` does: float32 [count, size * size * C]."""
  rng = np.random.default_rng(seed)
  n, h, w, _ = images.shape
  which = rng.integers(0, n, count)
  rows, cols = rng.integers(0, h - size + 1, count), rng.integers(0, w - size + 1, count)
  cut = np.stack([images[i, r:r + size, c:c + size] for i, r, c in zip(which, rows, cols)])
  return np.asarray(image_patches(jnp.asarray(cut, jnp.float32), size)[:, 0, 0])


def fit_patch_features(images, size, k, count, iterations, seed):
  """uint8 training images [N, H, W, 3] -> ({"mean", "zca", "centroids" [k, P]} of
  `patch_features`, objectives [iterations + 1]), fitted on `count` random patches."""
  normalised = np.asarray(normalise_contrast(jnp.asarray(sample_patches(images, size, count,
                                                                        seed))))
  mean, zca = fit_whitening(normalised)
  centroids, objectives = fit(jnp.asarray((normalised - mean) @ zca), k, iterations, seed)
  return ({"mean": mean, "zca": zca, "centroids": np.asarray(centroids)},
          np.asarray(objectives))


def quadrant_sum(features):
  """[B, H', W', K] -> [B, 4K]: the sum over each quadrant of the H' x W' grid (the middle
  row/column of an odd grid goes to the first half), quadrants in row-major order."""
  h, w = features.shape[1], features.shape[2]
  top, left = -(-h // 2), -(-w // 2)
  quadrants = [features[:, rows, cols].sum((1, 2))
               for rows in (slice(0, top), slice(top, h)) for cols in (slice(0, left),
                                                                       slice(left, w))]
  return jnp.concatenate(quadrants, -1)


def patch_features(images, size, variables):
  """float [B, H, W, 3] in [0, 255] -> [B, 4K] pooled triangle features of every patch;
  `variables`: {"mean", "zca", "centroids"} (`fit_patch_features`)."""
  patches = whiten(image_patches(images, size), variables["mean"], variables["zca"])
  return quadrant_sum(triangle(patches, variables["centroids"]))
