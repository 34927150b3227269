"""Projection and prediction MLPs of the Siamese methods, and SwAV's prototypes.

`__call__(x [B, D], train) -> [B, out_dim]`; BatchNorm statistics live in `batch_stats`.
"""
import flax.linen as nn
import jax.numpy as jnp


def _bn(train, affine=True, name=None):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      use_scale=affine, use_bias=affine, name=name)


class Projector(nn.Module):
  """`num_layers` Linear layers with ReLU between; BN after each hidden layer (`hidden_bn`)
  and a BN without affine after the last (`last_bn`). A Linear followed by BN has no bias.

  SimSiam: 3 layers on ImageNet, 2 on CIFAR, both BNs. SimCLR, BYOL, SwAV: hidden BN only.
  MoCo v2: no BN. MoCo v3: both.
  """
  dim: int = 2048
  hidden_dim: int = 2048
  num_layers: int = 3
  hidden_bn: bool = True
  last_bn: bool = True

  @nn.compact
  def __call__(self, x, train=False):
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      norm = self.last_bn if last else self.hidden_bn
      x = nn.Dense(self.dim if last else self.hidden_dim, use_bias=not norm, name=f"fc{i}")(x)
      if norm:
        x = _bn(train, affine=not last, name=f"bn{i}")(x)
      if not last:
        x = nn.relu(x)
    return x


class Predictor(nn.Module):
  """Bottleneck MLP: Linear(hidden, no bias), BN, ReLU, Linear(dim) with bias, no BN."""
  dim: int = 2048
  hidden_dim: int = 512

  @nn.compact
  def __call__(self, x, train=False):
    x = nn.relu(_bn(train, name="bn0")(nn.Dense(self.hidden_dim, use_bias=False,
                                                 name="fc0")(x)))
    return nn.Dense(self.dim, name="fc1")(x).astype(jnp.float32)


class Prototypes(nn.Module):
  """SwAV's prototypes: [B, D] -> [B, K] scores <z / |z|, c_k>, a Linear layer without bias
  (`kernel` [D, K]) whose columns the method keeps at unit norm after every update."""
  num_prototypes: int = 3000

  @nn.compact
  def __call__(self, z):
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
    return nn.Dense(self.num_prototypes, use_bias=False, name="prototypes")(z)
