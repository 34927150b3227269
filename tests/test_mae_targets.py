"""MAE's reconstruction targets (pixel, norm_pixel, pca, tokens), the augmentation rows of the
paper's ablation, and the FLOPs of the encoder with mask tokens."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax.data import augment, resized_crop, sources
from ssljax.methods import mae, mae_targets
from ssljax.models import patches
from ssljax.run import run_types
from ssljax.runtime import pretrained


def _batch(config, count=4):
  source = sources.get_source(config.input, "train")
  return source, {"image": jnp.asarray(np.stack([source[i]["image"] for i in range(count)]))}


@pytest.fixture(scope="module")
def demo():
  config = load_config("demo", "runlocal")
  return (config, *_batch(config))


def test_pixel_targets_are_the_norm_pix_loss_paths_bit_for_bit(demo):
  config, _, batch = demo
  params = mae.init(config, jax.random.key(0), (1, 32, 32, 3))["params"]
  key = jax.random.key(1)

  def before_targets(p, norm_pix_loss):  # the loss as it was written before mae.target
    aug_key, mask_key = jax.random.split(key)
    images = mae._views(config, aug_key, batch, {})  # pylint: disable=protected-access
    pred, mask = mae.forward(config, p, images, mask_key)
    return mae.masked_mse(pred, mae.patch_targets(images, 4, norm_pix_loss), mask)

  new = load_config_with("demo", "runlocal", mae__target="norm_pixel")
  old = load_config_with("demo", "runlocal", mae__norm_pix_loss=True)
  losses = jax.jit(lambda p: (mae.loss(new, p, {}, batch, key)[0],
                              mae.loss(old, p, {}, batch, key)[0], before_targets(p, True)))
  assert len({float(v) for v in losses(params)}) == 1
  assert mae_targets.name(load_config_with("demo", "runlocal", mae__norm_pix_loss=False)) == (
      mae_targets.name(load_config_with("demo", "runlocal", mae__target="pixel"))) == "pixel"
  assert mae_targets.name(config) == "norm_pixel"  # the default, as norm_pix_loss was


def test_norm_pix_loss_contradicting_the_target_is_refused():
  with pytest.raises(Exception, match="mae.norm_pix_loss=True contradicts mae.target='pca'"):
    mae.validate(load_config_with("demo", "runlocal", mae__target="pca",
                                  mae__norm_pix_loss=True))


@pytest.fixture(scope="module")
def image_patches(demo):
  """Channel-standardised 4x4 patches of real (digit) images, [N, 48]."""
  config, source, _ = demo
  config = load_config_with("demo", "runlocal", mae__target_fit_examples=200)
  return mae_targets.sample_patches(config, source)


def test_pca_coefficients_are_the_projection_and_reconstruct_the_low_pass_patch(image_patches):
  x = image_patches
  full = mae_targets.fit_pca(x, 48)
  u = full["components"]
  np.testing.assert_allclose(u.T @ u, np.eye(48), atol=1e-5)
  variances = ((x - full["mean"]) @ u).var(axis=0)
  assert np.all(np.diff(variances) <= 1e-6)  # largest variance first
  # with every component the coefficients give the patch back
  coef = mae_targets.pca_coefficients(x, full["mean"], u)
  np.testing.assert_allclose(mae_targets.pca_reconstruction(coef, full["mean"], u), x,
                             atol=1e-4)
  top = mae_targets.fit_pca(x, 6)
  np.testing.assert_allclose(top["components"], u[:, :6], atol=1e-4)  # the top 6 of the basis
  coef6 = np.asarray(mae_targets.pca_coefficients(x, top["mean"], top["components"]))
  np.testing.assert_allclose(coef6, (x - top["mean"]) @ u[:, :6], atol=1e-4)
  low = np.asarray(mae_targets.pca_reconstruction(coef6, top["mean"], top["components"]))
  # the projection on the top components: the residual is orthogonal to them ...
  np.testing.assert_allclose((x - low) @ top["components"], 0, atol=1e-3)
  # ... and is what the top components leave out: little energy, less with more components
  errors = [np.mean((x - mae_targets.pca_reconstruction(
      mae_targets.pca_coefficients(x, f["mean"], f["components"]), f["mean"],
      f["components"])) ** 2) for f in (mae_targets.fit_pca(x, k) for k in (1, 6, 24))]
  assert errors[0] > errors[1] > errors[2] > 0 and errors[1] < 0.3 * np.var(x, axis=0).sum()


def test_tokens_are_the_nearest_centroid_and_kmeans_lowers_the_distortion(image_patches):
  points = np.asarray(mae_targets._standardise_rows(image_patches))  # pylint: disable=protected-access
  codebook = mae_targets.fit_kmeans(points, 32, iterations=10, seed=0)
  start = mae_targets.fit_kmeans(points, 32, iterations=0, seed=0)  # the sampled points
  ids = np.asarray(mae_targets.token_ids(jnp.asarray(points), jnp.asarray(codebook)))
  assert ids.dtype == np.int32 and 0 <= ids.min() and ids.max() < 32
  brute = ((points[:, None] - codebook[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(brute[np.arange(len(points)), ids], brute.min(axis=1))
  distortion = lambda c: ((points[:, None] - c[None]) ** 2).sum(-1).min(axis=1).mean()
  assert distortion(codebook) < 0.9 * distortion(start)
  np.testing.assert_array_equal(codebook, mae_targets.fit_kmeans(points, 32, 10, seed=0))


@pytest.mark.parametrize("target", ["pca", "tokens"])
def test_fitted_target_losses_count_masked_patches_only(demo, target):
  config, source, batch = demo
  config = load_config_with("demo", "runlocal", mae__target=target, mae__pca_dims=6,
                            mae__token_codebook_size=16, mae__target_fit_examples=64)
  state = jax.tree.map(jnp.asarray, mae.fit_state(config, source))
  images = augment.eval_view(batch["image"], 32)
  _, mask, _ = mae.random_masking(jax.random.key(2), 4, 64, 0.75)
  dim = mae_targets.output_dim(config)
  assert dim == {"pca": 6, "tokens": 16}[target]
  pred = jax.random.normal(jax.random.key(3), (4, 64, dim))
  value = mae_targets.loss(config, state, pred, images, mask)
  changed = pred + 100.0 * (1 - mask)[..., None]  # visible patches' outputs
  np.testing.assert_allclose(value, mae_targets.loss(config, state, changed, images, mask),
                             rtol=1e-6)
  fitted = state[mae_targets.STATE]
  pixels = patches.patchify(images, 4)
  if target == "pca":
    target_values = mae_targets.pca_coefficients(pixels, fitted["mean"], fitted["components"])
    per_patch = ((pred - target_values) ** 2).mean(-1)
  else:
    ids = mae_targets.token_ids(mae.patch_targets(images, 4, True), fitted["codebook"])
    per_patch = -jnp.take_along_axis(jax.nn.log_softmax(pred), ids[..., None], -1)[..., 0]
  np.testing.assert_allclose(value, per_patch[mask == 1].mean(), rtol=1e-5)


def test_fixed_size_crop_is_a_randomly_placed_box_of_the_configured_size():
  """The paper's "crop, fixed size" row at 32 px: a 28 x 28 box (224/256 of the side, ratio 1)
  at a random position, resized to 32 (`aug.crop_scale=(0.765625, 0.765625)`,
  `input.crop_ratio=(1, 1)`)."""
  scale, ratio = (0.765625, 0.765625), (1.0, 1.0)
  boxes = np.stack(jax.jit(jax.vmap(lambda k: jnp.stack(resized_crop.sample_box(
      k, (32, 32), scale, ratio))))(jax.random.split(jax.random.key(0), 24)))
  assert (boxes[:, 2:] == 28).all()
  assert len({tuple(b) for b in boxes[:, :2]}) > 5 and boxes[:, :2].max() <= 4
  image = jax.random.uniform(jax.random.key(1), (32, 32, 3))
  key = jax.random.key(2)
  view = augment.crop_flip(key, image, 32, crop_scale=scale, ratio=ratio, flip=False)
  box = resized_crop.sample_box(jax.random.split(key)[0], (32, 32), scale, ratio)
  np.testing.assert_allclose(view, resized_crop.resize_box(image, box, 32), atol=1e-6)


def test_augmentation_rows_none_returns_the_image_and_jitter_changes_it(demo):
  _, _, batch = demo
  none = load_config_with("demo", "runlocal", aug__crop=False, aug__flip=False)
  view = mae._views(none, jax.random.key(0), batch, {})  # pylint: disable=protected-access
  np.testing.assert_array_equal(view, augment.normalize(batch["image"]))
  jitter = load_config_with("demo", "runlocal", aug__crop=False, aug__flip=False,
                            aug__color_jitter_prob=1.0)
  assert mae.photometric(jitter.aug) and not mae.photometric(none.aug)
  jittered = mae._views(jitter, jax.random.key(0), batch, {})  # pylint: disable=protected-access
  assert float(jnp.abs(jittered - view).mean()) > 0.01


def _xla_flops(fn, *args):
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  return (analysis[0] if isinstance(analysis, list) else analysis)["flops"]


def test_mask_token_flops_ratio_is_computed_and_matches_xla():
  sizes = dict(model__variant="Ti/4", model__depth=1, mae__decoder_width=128,
               mae__decoder_heads=4)  # wide enough for the matrix products to dominate
  config = load_config_with("demo", "runlocal", **sizes)
  images = jnp.zeros((1, 32, 32, 3))
  counted = {}
  for flag in (True, False):
    c = load_config_with("demo", "runlocal", **sizes, mae__encoder_mask_tokens=flag)
    params = jax.eval_shape(lambda key, c=c: mae.init(c, key, images.shape),
                            jax.random.key(0))["params"]  # XLA counts from shapes
    counted[flag] = _xla_flops(lambda p, x, c=c: mae.forward(c, p, x, jax.random.key(1))[0],
                               params, images)
  ratio = mae.mask_token_flops_ratio(config)
  assert ratio == pytest.approx(counted[True] / counted[False], rel=0.05)
  assert mae.mask_token_flops_ratio(load_config("mae_vitl")) == pytest.approx(3.23, abs=0.01)


@pytest.mark.slow  # the default suite: the fit, loss and figure paths above, on pure functions
@pytest.mark.parametrize("target", ["pca", "tokens"])
def test_a_run_fits_its_target_once_and_keeps_it_in_the_checkpoint(tmp_path, target):
  """End to end: fit_state -> initial model state -> train steps -> checkpoint, figure."""
  config = load_config_with("demo", "runlocal", mae__target=target, mae__pca_dims=6,
                            mae__token_codebook_size=32, mae__target_fit_examples=100,
                            total_steps=2, checkpoint_every_steps=2,
                            evals__recon__every_steps=2)
  with config.unlocked():
    del config.evals["knn"]
  summary = run_types.run(config, str(tmp_path))
  assert np.isfinite(summary["final_loss"])
  assert os.path.getsize(summary["figures"][-1]) > 1000  # drawn through the fitted target
  fitted = mae.fit_state(config, sources.get_source(config.input, "train"))
  _, variables, _ = pretrained.load(
      str(tmp_path), jax.sharding.SingleDeviceSharding(jax.devices()[0]))
  for name, value in fitted[mae_targets.STATE].items():
    np.testing.assert_array_equal(variables[mae_targets.STATE][name], value)
