"""MAE targets and loss: what counts and what does not."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from ssljax.methods import mae
from ssljax.models import patches


def test_patchify_unpatchify_round_trip_and_layout():
  x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
  p = patches.patchify(x, 4)
  assert p.shape == (2, 64, 48)
  np.testing.assert_array_equal(patches.unpatchify(p, 4), x)
  # patch 1 is the second patch of the first row; pixel order is (row, col, channel)
  np.testing.assert_array_equal(p[0, 1].reshape(4, 4, 3), x[0, 0:4, 4:8])


def test_norm_pix_targets_have_zero_mean_unit_variance_per_patch():
  x = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3)) * 3 + 1
  t = mae.patch_targets(x, 4, norm_pix_loss=True)
  np.testing.assert_allclose(t.mean(axis=-1), 0, atol=1e-5)
  np.testing.assert_allclose(t.var(axis=-1, ddof=1), 1, atol=1e-4)
  raw = mae.patch_targets(x, 4, norm_pix_loss=False)
  np.testing.assert_array_equal(raw, patches.patchify(x, 4))


def test_loss_ignores_predictions_on_visible_patches():
  b, length, dim = 4, 64, 48
  _, mask, _ = mae.random_masking(jax.random.key(2), b, length, 0.75)
  pred = jax.random.normal(jax.random.key(3), (b, length, dim))
  target = jax.random.normal(jax.random.key(4), (b, length, dim))
  changed = pred + 100.0 * (1 - mask)[..., None]
  np.testing.assert_allclose(mae.masked_mse(pred, target, mask),
                             mae.masked_mse(changed, target, mask), rtol=1e-6)
  grad = jax.grad(mae.masked_mse)(pred, target, mask)
  np.testing.assert_array_equal(grad * (1 - mask)[..., None], 0)
  assert float(jnp.abs(grad * mask[..., None]).sum()) > 0
  # and it is the mean squared error over the masked patches only
  expected = ((pred - target) ** 2).mean(-1)[mask == 1].mean()
  np.testing.assert_allclose(mae.masked_mse(pred, target, mask), expected, rtol=1e-6)


@pytest.mark.parametrize("encoder_mask_tokens", [False, True])
def test_predictions_never_depend_on_masked_pixels(encoder_mask_tokens):
  """Both the MAE encoder (drops masked patches) and the BERT-style variant (replaces them by
  a mask token) must be blind to what is under the mask."""
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.mae.encoder_mask_tokens = encoder_mask_tokens
  params = mae.init(config, jax.random.key(0), (1, 32, 32, 3))["params"]
  assert ("mask_token" in params["encoder"]) == encoder_mask_tokens
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  pred, mask = mae.forward(config, params, x, jax.random.key(2))
  pixel_mask = patches.unpatchify(jnp.broadcast_to(mask[..., None], (2, 64, 48)), 4)
  scrambled = x + 5.0 * pixel_mask * jax.random.normal(jax.random.key(3), x.shape)
  again, _ = mae.forward(config, params, scrambled, jax.random.key(2))
  np.testing.assert_allclose(pred, again, atol=1e-5)
  changed_visible, _ = mae.forward(config, params, x + 5.0 * (1 - pixel_mask),
                                   jax.random.key(2))
  assert not np.allclose(pred, changed_visible, atol=1e-3)
