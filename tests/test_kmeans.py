"""The k-means floor (evals.kmeans, `baseline="kmeans"`): the fit recovers synthetic cluster
centres with an objective that never rises, the features are the documented function of the
distances, and the floor runs through the kNN harness with its objective in results.json."""
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config_with
from ssljax.evals import kmeans
from ssljax.run import run_types


def _clusters(seed=0, per_cluster=200, dims=5):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(4, dims)) * 10
  points = np.concatenate([c + rng.normal(size=(per_cluster, dims)) * 0.3 for c in centres])
  return centres.astype(np.float32), points.astype(np.float32)


def test_fit_recovers_the_centres_and_the_objective_never_rises():
  centres, points = _clusters()
  fitted, objectives = kmeans.fit(jnp.asarray(points), 4, 10, 0)
  objectives = np.asarray(objectives)
  assert np.all(np.diff(objectives) <= 1e-5 * objectives[0]), objectives
  # each true centre has a fitted centroid within the noise of its 200-point mean
  nearest = np.sqrt(((centres[:, None] - np.asarray(fitted)[None])**2).sum(-1)).min(1)
  assert nearest.max() < 0.15, nearest
  # at convergence the objective is the within-cluster variance, 5 dims x 0.3^2; the k-means++
  # start (one point per cluster) has about twice that
  np.testing.assert_allclose(objectives[-1], 5 * 0.09, rtol=0.15)
  assert objectives[-1] < 0.75 * objectives[0]


def test_triangle_features_are_the_mean_distance_minus_each_distance_clipped_at_zero():
  rng = np.random.default_rng(2)
  points, centroids = rng.normal(size=(6, 3)), rng.normal(size=(5, 3))
  z = np.sqrt(((points[:, None] - centroids[None])**2).sum(-1))
  expected = np.maximum(z.mean(1, keepdims=True) - z, 0)
  np.testing.assert_allclose(kmeans.triangle(jnp.asarray(points, jnp.float32),
                                             jnp.asarray(centroids, jnp.float32)),
                             expected, rtol=1e-4, atol=1e-5)


def test_patch_features_sum_the_triangle_activations_of_every_patch_over_quadrants():
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (2, 7, 7, 3)).astype(np.float32)
  size, k = 3, 4
  variables, _ = kmeans.fit_patch_features(images.astype(np.uint8), size, k, 60, 3, 0)
  features = np.asarray(kmeans.patch_features(jnp.asarray(images), size, variables))
  assert features.shape == (2, 4 * k)
  # by hand: the 5 x 5 patches at stride 1, normalised, whitened, triangle; rows/cols 0-2 and
  # 3-4 make the quadrants
  grid = np.asarray(kmeans.image_patches(jnp.asarray(images), size))
  for b in range(2):
    for r0 in range(5):
      for c0 in range(5):
        direct = images[b, r0:r0 + size, c0:c0 + size]
        assert sorted(grid[b, r0, c0]) == sorted(direct.ravel())  # the patch, some layout
    x = np.asarray(kmeans.whiten(jnp.asarray(grid[b]), variables["mean"], variables["zca"]))
    f = np.asarray(kmeans.triangle(jnp.asarray(x), variables["centroids"]))
    quads = [f[:3, :3], f[:3, 3:], f[3:, :3], f[3:, 3:]]
    np.testing.assert_allclose(features[b], np.concatenate([q.sum((0, 1)) for q in quads]),
                               rtol=1e-4, atol=1e-4)


def test_whitening_scales_each_principal_variance_to_lambda_over_lambda_plus_eps():
  patches = np.asarray(kmeans.normalise_contrast(jnp.asarray(
      np.random.default_rng(4).normal(size=(4000, 12)) * np.repeat([1, 2, 3], 4) * 4 + 100)))
  np.testing.assert_allclose(patches.mean(1), 0, atol=1e-4)  # each patch's own mean removed
  mean, zca = kmeans.fit_whitening(patches)
  variances = np.linalg.eigvalsh(np.cov(patches, rowvar=False))
  whitened = np.linalg.eigvalsh(np.cov((patches - mean) @ zca, rowvar=False))
  np.testing.assert_allclose(whitened, variances / (variances + kmeans.WHITEN_EPS), atol=1e-4)
  np.testing.assert_allclose(zca, zca.T, atol=1e-5)  # ZCA: a symmetric whitening


# The patch features' pieces have the fast tests above; their run through the harness is slow.
@pytest.mark.parametrize("kmeans_input", [pytest.param("patches", marks=pytest.mark.slow),
                                          "images"])
def test_kmeans_floor_through_the_knn_harness_logs_its_objective(kmeans_input, tmp_path):
  config = load_config_with("probe_demo", "runlocal,protocol=knn,baseline=kmeans",
                            probe__kmeans_input=kmeans_input, probe__kmeans_k=32,
                            probe__kmeans_iterations=5, probe__kmeans_fit_examples=1000)
  record = run_types.run(config, str(tmp_path))["record"]
  assert record["encoder"] == f"kmeans32 {kmeans_input}" and record["kmeans_k"] == 32
  objectives = record["kmeans_objectives"]
  assert len(objectives) == 6 and record["kmeans_objective"] == objectives[-1]
  assert objectives[-1] < objectives[0]
  assert record["value"] > 0.5  # digits; chance is 0.1
