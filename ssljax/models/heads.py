"""Projection and prediction MLPs of the Siamese methods (SimSiam, BYOL, SimCLR, MoCo).

`__call__(x [B, D], train) -> [B, out_dim]`; BatchNorm statistics live in `batch_stats`.
"""
import flax.linen as nn
import jax.numpy as jnp


def _bn(train, affine=True, name=None):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      use_scale=affine, use_bias=affine, name=name)


class Projector(nn.Module):
  """`num_layers` x (Linear without bias, BN), ReLU between, and a final BN without affine
  (SimSiam: 3 layers on ImageNet, 2 on CIFAR)."""
  dim: int = 2048
  hidden_dim: int = 2048
  num_layers: int = 3

  @nn.compact
  def __call__(self, x, train=False):
    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      x = nn.Dense(self.dim if last else self.hidden_dim, use_bias=False, name=f"fc{i}")(x)
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
