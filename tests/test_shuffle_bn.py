"""MoCo v2's shuffle BN (`moco.shuffle_bn`) with per-GPU BatchNorm groups
(`model.bn_group_size`): the key batch runs through the key encoder in a random order drawn from
the step key and its keys come back in the batch's order."""
import flax.linen as nn
import jax
import numpy as np
import pytest

from conftest import load_config
from ssljax.errors import ConfigError
from ssljax.methods import moco, siamese
from ssljax.models import batch_norm, heads

B, D = 16, 3


class _Backbone(nn.Module):
  """[B, D] -> (BatchNorm(x), {"pooled": the same}): a ResNet's output contract, one BN."""
  group_size: int = None

  @nn.compact
  def __call__(self, x, train=False):
    y = batch_norm.BatchNorm(use_running_average=not train, group_size=self.group_size,
                                 name="bn")(x)
    return y, {"pooled": y}


def _images(seed=0):
  return (np.random.default_rng(seed).normal(size=(B, D)) * 3 + 1).astype(np.float32)


def _bn_variables():
  return {"params": {"scale": np.full(D, 2.0, np.float32), "bias": np.ones(D, np.float32)},
          "batch_stats": {"mean": np.full(D, 0.5, np.float32),
                          "var": np.full(D, 4.0, np.float32)}}


def test_the_key_permutation_is_a_permutation_drawn_from_the_key():
  keys = [jax.random.key(0), jax.random.key(0), jax.random.key(1)]
  perms = [np.asarray(moco.batch_permutation(k, 256)) for k in keys]
  np.testing.assert_array_equal(np.sort(perms[0]), np.arange(256))
  np.testing.assert_array_equal(perms[0], perms[1])
  assert (perms[0] != perms[2]).mean() > 0.9 and (perms[0] != np.arange(256)).mean() > 0.9


def test_unshuffling_restores_the_order_exactly_and_only_grouped_train_bn_sees_the_shuffle():
  x, variables, key = _images(), _bn_variables(), jax.random.key(3)
  for group_size, train in ((4, False), (4, True), (None, True)):
    bn = batch_norm.BatchNorm(use_running_average=not train, group_size=group_size)
    forward = jax.jit(lambda x: (bn.apply(variables, x, mutable=["batch_stats"])[0], None))
    direct, (shuffled, _) = forward(x)[0], moco.shuffled(forward, key, x)
    if not train:  # per-example: the inverse permutation gives back each example's output
      np.testing.assert_array_equal(shuffled, direct)
    elif group_size is None:  # one group: the statistics of a permuted batch are the same
      np.testing.assert_allclose(shuffled, direct, rtol=1e-5, atol=1e-5)
    else:  # each key normalised with another group of examples than in the batch's order
      assert np.abs(np.asarray(shuffled) - np.asarray(direct)).min(axis=1).max() > 1e-2


def test_moco_keys_with_shuffle_bn_come_from_the_shuffled_batch_in_the_batchs_order():
  modules = {"backbone": _Backbone(group_size=4),
             "projector": heads.Projector(D, D, 1, hidden_bn=False, last_bn=False)}
  eye = {"kernel": np.eye(D, dtype=np.float32), "bias": np.zeros(D, np.float32)}
  backbone = _bn_variables()
  target = {"params": {"backbone": {"bn": backbone["params"]}, "projector": {"fc0": eye}},
            "batch_stats": {"backbone": {"bn": backbone["batch_stats"]}}}
  x, key = _images(), jax.random.key(5)
  (k_plain,), _ = moco._keys(modules, target, (x,))
  (k_shuffled,), after = moco._keys(modules, target, (x,), key)
  order = np.asarray(moco.batch_permutation(jax.random.fold_in(key, 0), B))
  (z,), expected = siamese.target_projections(modules, target, (x[order],))
  np.testing.assert_allclose(k_shuffled, siamese.l2_normalize(z)[np.argsort(order)], atol=1e-6)
  # the key encoder's running statistics come from the first group of the shuffled batch
  for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(expected)):
    np.testing.assert_allclose(a, b, atol=1e-6)
  assert np.abs(np.asarray(k_shuffled) - np.asarray(k_plain)).max() > 1e-2


def test_the_moco_v2_imagenet_recipe_has_per_gpu_bn_and_shuffle_bn_the_others_do_not():
  full, local = load_config("moco_v2_r50"), load_config("moco_v2_r50", "runlocal")
  assert (full.model.bn_group_size, full.moco.shuffle_bn) == (32, True)
  assert full.input.batch_size // full.model.bn_group_size == 8  # the release's 8 GPUs
  for config in (local, load_config("moco_v2_cifar10"), load_config("moco_v3_r50")):
    assert (config.model.bn_group_size, config.moco.shuffle_bn) == (None, False)
  siamese.validate_network(full, "moco")
  with full.unlocked():
    full.model.bn_group_size = 48
  with pytest.raises(ConfigError, match=r"model.bn_group_size=48 does not divide"):
    siamese.validate_network(full, "moco")
