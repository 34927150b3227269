"""Projection and prediction MLPs of the Siamese methods, and SwAV's prototypes.

`__call__(x [B, D], train) -> [B, out_dim]`; BatchNorm statistics live in `batch_stats`.
A Linear followed by BN has no bias (the BN removes it). `linear_init` picks the Linear
initialisation of a release (`dense_initializers`), `bn_running_var` the BN running variance
and `bn_group_size` its groups (`batch_norm`).
"""
import math
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from ssljax.models import batch_norm

INITS = ("flax", "torch", "haiku", "normal_0.01")


def dense_initializers(init, fan_in):
  """(kernel_init, bias_init) of a Linear layer with `fan_in` inputs, as each framework does:

  flax: `nn.Dense`'s lecun_normal (truncated normal with std exactly 1/sqrt(fan_in)), bias 0.
  torch: `nn.Linear`'s kaiming_uniform(a=sqrt(5)), i.e. U(+-1/sqrt(fan_in)), bias the same.
  haiku: `hk.Linear`'s normal(1/sqrt(fan_in)) cut at 2 sd, not rescaled (std 0.88/sqrt(fan_in)),
    bias 0.
  normal_0.01: SimCLR's heads, N(0, 0.01), bias 0.
  """
  zeros = nn.initializers.zeros
  if init == "flax":
    return nn.initializers.lecun_normal(), zeros
  if init == "torch":
    bound = 1 / math.sqrt(fan_in)
    uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype,
                                                                        -bound, bound)
    return nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"), uniform
  if init == "haiku":
    return nn.initializers.truncated_normal(1 / math.sqrt(fan_in)), zeros
  if init == "normal_0.01":
    return nn.initializers.normal(0.01), zeros
  raise ValueError(f"init={init!r} is unknown: use one of {', '.join(INITS)}")


def _dense(x, features, use_bias, init, name):
  kernel_init, bias_init = dense_initializers(init, x.shape[-1])
  return nn.Dense(features, use_bias=use_bias, kernel_init=kernel_init, bias_init=bias_init,
                  name=name)(x)


def _bn(x, train, running_var, group_size, scale=True, bias=True, name=None):
  return batch_norm.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                              use_scale=scale, use_bias=bias, running_var=running_var,
                              group_size=group_size, name=name)(x)


class Projector(nn.Module):
  """`num_layers` Linear layers with ReLU between; BN after each hidden layer (`hidden_bn`)
  and after the last (`last_bn`: no shift, a scale only with `last_bn_scale`). The last Linear
  has a bias only without a BN after it and with `output_bias`.

  SimSiam: 3 layers on ImageNet, 2 on CIFAR, both BNs. SimCLR: hidden BN (the release: 3
  layers, both BNs, the last with a scale). BYOL, SwAV: hidden BN only (BYOL: no output bias).
  MoCo v2: no BN. MoCo v3: both.
  """
  dim: int = 2048
  hidden_dim: int = 2048
  num_layers: int = 3
  hidden_bn: bool = True
  last_bn: bool = True
  last_bn_scale: bool = False
  output_bias: bool = True
  linear_init: str = "flax"
  bn_running_var: str = "biased"
  bn_group_size: Optional[int] = None

  @nn.compact
  def __call__(self, x, train=False):
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      norm = self.last_bn if last else self.hidden_bn
      x = _dense(x, self.dim if last else self.hidden_dim,
                 not norm and (self.output_bias or not last), self.linear_init, f"fc{i}")
      if norm:
        x = _bn(x, train, self.bn_running_var, self.bn_group_size,
                scale=not last or self.last_bn_scale, bias=not last, name=f"bn{i}")
      if not last:
        x = nn.relu(x)
    return x


class Predictor(nn.Module):
  """Bottleneck MLP: Linear(hidden, no bias), BN, ReLU, Linear(dim), with a bias (`output_bias`)
  or, with `last_bn`, followed by a BN without affine (MoCo v3's ViT predictor)."""
  dim: int = 2048
  hidden_dim: int = 512
  last_bn: bool = False
  output_bias: bool = True
  linear_init: str = "flax"
  bn_running_var: str = "biased"
  bn_group_size: Optional[int] = None

  @nn.compact
  def __call__(self, x, train=False):
    x = _dense(x, self.hidden_dim, False, self.linear_init, "fc0")
    x = nn.relu(_bn(x, train, self.bn_running_var, self.bn_group_size, name="bn0"))
    x = _dense(x, self.dim, self.output_bias and not self.last_bn, self.linear_init, "fc1")
    if self.last_bn:
      x = _bn(x, train, self.bn_running_var, self.bn_group_size, scale=False, bias=False,
              name="bn1")
    return x.astype(jnp.float32)


class Prototypes(nn.Module):
  """SwAV's prototypes: [B, D] -> [B, K] scores <z / |z|, c_k>, a Linear layer without bias
  (`kernel` [D, K]) whose columns the method keeps at unit norm after every update."""
  num_prototypes: int = 3000
  linear_init: str = "flax"

  @nn.compact
  def __call__(self, z):
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    return _dense(z, self.num_prototypes, False, self.linear_init, "prototypes")
