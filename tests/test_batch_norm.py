"""BatchNorm as the releases run it: Flax's biased running variance bit for bit, PyTorch's
unbiased one against torch.nn.BatchNorm, per-GPU groups (`group_size`) against one BatchNorm
per group, and the ResNet's residual-BN init (`zero_init_residual`)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import numpy_variables
from ssljax.models import batch_norm, heads, resnet

SHAPES = [(32, 6), (4, 5, 3, 6)]  # [B, C] (BatchNorm1d) and [B, H, W, C] (BatchNorm2d)


def _batches(shape, steps=3):
  rng = np.random.default_rng(0)
  return [(rng.normal(size=shape) * (1 + i) + i).astype(np.float32) for i in range(steps)]


def _train_steps(module, batches):
  """(outputs per step, final variables) after train-mode updates on `batches`."""
  @jax.jit
  def steps(batches):
    variables = module.init(jax.random.key(0), batches[0], use_running_average=False)
    outputs = []
    for x in batches:
      y, stats = module.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
      variables = dict(variables, **stats)
      outputs.append(y)
    return outputs, variables
  return steps(batches)


@pytest.mark.parametrize("shape", SHAPES)
def test_biased_running_var_is_bit_identical_to_flax_batchnorm(shape):
  batches = _batches(shape)
  kwargs = dict(momentum=0.9, epsilon=1e-5)
  ours, ours_vars = _train_steps(batch_norm.BatchNorm(running_var="biased", **kwargs), batches)
  flax_out, flax_vars = _train_steps(nn.BatchNorm(**kwargs), batches)
  for a, b in zip(ours + jax.tree.leaves(ours_vars), flax_out + jax.tree.leaves(flax_vars)):
    np.testing.assert_array_equal(a, b)
  assert jax.tree.structure(ours_vars) == jax.tree.structure(flax_vars)


@pytest.mark.parametrize("shape", SHAPES)
def test_unbiased_running_stats_match_torch_batchnorm(shape):
  batches = _batches(shape)
  module = batch_norm.BatchNorm(momentum=0.9, epsilon=1e-5, running_var="unbiased")
  outputs, variables = _train_steps(module, batches)
  torch_bn = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
      shape[-1], eps=1e-5, momentum=0.1)
  to_torch = lambda x: torch.from_numpy(np.moveaxis(np.asarray(x), -1, 1).copy())
  for x, y in zip(batches, outputs):
    expected = torch_bn.train()(to_torch(x)).detach().numpy()
    np.testing.assert_allclose(np.moveaxis(np.asarray(y), -1, 1), expected, atol=1e-5)
  stats = variables["batch_stats"]
  np.testing.assert_allclose(stats["mean"], torch_bn.running_mean.numpy(), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(stats["var"], torch_bn.running_var.numpy(), rtol=1e-6, atol=1e-6)
  # and unbiased means n / (n - 1) away from Flax's (the same forward, other statistics)
  _, flax_vars = _train_steps(nn.BatchNorm(momentum=0.9, epsilon=1e-5), batches)
  assert np.all(np.asarray(stats["var"]) > np.asarray(flax_vars["batch_stats"]["var"]))


def test_heads_and_resnet_update_their_running_var_as_configured():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 16)).astype(np.float32)
  projector = heads.Projector(8, 16, 2, bn_running_var="unbiased")
  variables = numpy_variables(projector, x)
  _, stats = jax.jit(lambda v: projector.apply(v, x, train=True, mutable=["batch_stats"]))(
      variables)
  h = x @ variables["params"]["fc0"]["kernel"]
  np.testing.assert_allclose(stats["batch_stats"]["bn0"]["var"],
                             0.9 + 0.1 * np.var(h, axis=0, ddof=1), rtol=1e-5)
  backbone = resnet.from_name("resnet18", width=4, cifar_stem=True, bn_running_var="unbiased")
  assert all(m.running_var == "unbiased" for m in _batch_norms(backbone, (2, 8, 8, 3)))


@pytest.mark.parametrize("shape,group_size,running_var", [
    ((32, 6), 8, "unbiased"), ((4, 5, 3, 6), 2, "biased"), ((8, 2, 2, 6), 8, "unbiased")])
def test_each_group_is_normalised_by_its_own_statistics_the_first_sets_the_running_ones(
    shape, group_size, running_var):
  """Per-GPU BN: with `group_size` the train-mode output of each group of consecutive examples
  is that of a BatchNorm over that group alone, and the running statistics are those of the
  first group's BatchNorm (rank 0's, which DDP broadcasts). Eval mode ignores the groups."""
  kwargs = dict(momentum=0.9, epsilon=1e-5, running_var=running_var)
  grouped = batch_norm.BatchNorm(group_size=group_size, **kwargs)
  whole = batch_norm.BatchNorm(**kwargs)
  scale, bias = np.random.default_rng(1).normal(size=(2, shape[-1])).astype(np.float32)
  variables = {"params": {"scale": scale, "bias": bias},
               "batch_stats": {"mean": np.zeros_like(scale), "var": np.ones_like(scale)}}
  train = lambda module: jax.jit(lambda v, x: module.apply(v, x, use_running_average=False,
                                                           mutable=["batch_stats"]))
  per_group, grouped_train = train(whole), train(grouped)
  for x in _batches(shape, steps=2):
    y, stats = grouped_train(variables, x)
    groups = [per_group(variables, x[i:i + group_size]) for i in range(0, len(x), group_size)]
    np.testing.assert_allclose(y, np.concatenate([g[0] for g in groups]), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(groups[0][1])):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    variables = dict(variables, **stats)
  np.testing.assert_array_equal(grouped.apply(variables, x, use_running_average=True),
                                whole.apply(variables, x, use_running_average=True))
  with pytest.raises(ValueError, match="not a multiple of group_size"):
    jax.eval_shape(grouped_train, variables, x[1:])


def test_heads_and_resnet_pass_the_bn_group_size_to_every_batchnorm():
  projector = heads.Projector(8, 16, 2, bn_group_size=4)
  predictor = heads.Predictor(8, 4, last_bn=True, bn_group_size=4)
  backbone = resnet.from_name("resnet18", width=4, cifar_stem=True, bn_group_size=4)
  found = (_batch_norms(projector, (8, 16)) + _batch_norms(predictor, (8, 8))
           + _batch_norms(backbone, (8, 8, 8, 3)))
  assert len({id(m) for m in found}) == 2 + 2 + 20 and all(m.group_size == 4 for m in found)
  assert all(m.group_size is None for m in _batch_norms(heads.Projector(8, 16, 2), (8, 16)))


def _batch_norms(model, shape):
  """The BatchNorm modules `model` creates on input `shape`."""
  found = []
  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm):
      found.append(context.module)
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(record):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
  return found


@pytest.mark.parametrize("zero_init", [True, False])
def test_zero_init_residual_sets_the_last_bn_scale_of_every_block(zero_init):
  """torchvision `zero_init_residual`: bn3 (bottleneck) / bn2 (basic) weight 0 instead of 1;
  every other BN scale 1 (read from each BatchNorm's scale initialiser, without running it)."""
  for name, last, blocks in (("resnet18", "bn2", 8), ("resnet50", "bn3", 16)):
    model = resnet.from_name(name, width=2, cifar_stem=True, zero_init_residual=zero_init)
    scales = {"/".join(m.path): float(m.scale_init(jax.random.key(0), (1,))[0])
              for m in _batch_norms(model, (1, 8, 8, 3))}
    residual = {path for path in scales if path.startswith("layer") and path.endswith(last)}
    assert len(residual) == blocks
    for path, scale in scales.items():
      assert scale == (0.0 if zero_init and path in residual else 1.0), path
