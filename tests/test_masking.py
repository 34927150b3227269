"""MAE random masking invariants."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.methods import mae


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_exact_kept_count_and_consistent_mask(ratio):
  b, length = 16, 64
  keep, mask, restore = mae.random_masking(jax.random.key(0), b, length, ratio)
  num_keep = int(length * (1 - ratio))
  assert keep.shape == (b, num_keep)
  np.testing.assert_array_equal(mask.sum(axis=1), length - num_keep)
  # the kept indices are exactly the visible (mask == 0) patches, each once
  for row in range(b):
    assert len(set(np.asarray(keep[row]).tolist())) == num_keep
    np.testing.assert_array_equal(np.sort(keep[row]), np.flatnonzero(mask[row] == 0))


def test_restore_indices_invert_the_shuffle():
  b, length = 8, 49
  noise = jax.random.uniform(jax.random.key(1), (b, length))
  _, _, restore = mae.random_masking(None, b, length, 0.75, noise=noise)
  shuffle = jnp.argsort(noise, axis=1)
  tokens = jnp.broadcast_to(jnp.arange(length), (b, length))
  shuffled = jnp.take_along_axis(tokens, shuffle, axis=1)
  np.testing.assert_array_equal(jnp.take_along_axis(shuffled, restore, axis=1), tokens)


def test_deterministic_per_key_and_different_across_examples_and_keys():
  a = mae.random_masking(jax.random.key(3), 32, 64, 0.75)[1]
  b = mae.random_masking(jax.random.key(3), 32, 64, 0.75)[1]
  c = mae.random_masking(jax.random.key(4), 32, 64, 0.75)[1]
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
  assert len({tuple(np.asarray(row).tolist()) for row in a}) == 32


def test_given_noise_keeps_lowest_noise_patches():
  noise = jnp.asarray([[0.9, 0.1, 0.5, 0.3]])
  keep, mask, _ = mae.random_masking(None, 1, 4, 0.5, noise=noise)
  np.testing.assert_array_equal(keep, [[1, 3]])
  np.testing.assert_array_equal(mask, [[1, 0, 1, 0]])


def test_a_given_mask_is_reproduced_and_higher_ratios_with_the_same_noise_nest():
  rng = np.random.default_rng(0)
  wanted = np.zeros((4, 64), np.float32)
  for row in wanted:
    row[rng.choice(64, 48, replace=False)] = 1
  _, mask, _ = mae.random_masking(None, 4, 64, 0.75, noise=mae.noise_for_mask(wanted))
  np.testing.assert_array_equal(mask, wanted)
  with pytest.raises(ValueError, match="as many patches"):
    mae.noise_for_mask(np.triu(np.ones((2, 64))))  # 64 and 63 masked patches
  noise = jax.random.uniform(jax.random.key(3), (4, 64))
  masks = [mae.random_masking(None, 4, 64, r, noise=noise)[1] for r in (0.75, 0.85, 0.95)]
  for smaller, larger in zip(masks, masks[1:]):
    assert bool(jnp.all(larger >= smaller)) and float(larger.sum()) > float(smaller.sum())
