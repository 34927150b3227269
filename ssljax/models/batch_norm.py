"""Flax BatchNorm with a choice of running variance: the biased batch variance (Flax, Haiku,
Keras) or the unbiased one, n / (n - 1) times it (PyTorch's `running_var`, n the examples per
channel in the batch). Only the running statistics differ, so only eval-mode outputs do; the
parameters (`scale`, `bias`) and statistics (`mean`, `var`) keep Flax's names.

`group_size` ("ghost" BatchNorm) normalises, in train mode, each group of `group_size`
consecutive examples with its own statistics, as BatchNorm does on each GPU of a run without
SyncBN; the running statistics follow the first group alone, as on rank 0, whose buffers
PyTorch's DistributedDataParallel broadcasts to the other ranks at every forward (and rank 0
saves the checkpoint). Under `jax.jit` with a sharded batch the groups need not align with
the devices' shards: they are groups of the global batch.
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

RUNNING_VARS = ("biased", "unbiased")


class BatchNorm(nn.BatchNorm):
  """`nn.BatchNorm` (identical with `running_var="biased"` and no `group_size`) plus
  `running_var` and `group_size` (None: the whole batch is one group)."""
  running_var: str = "biased"
  group_size: Optional[int] = None

  @nn.compact
  def __call__(self, x, use_running_average=None):
    if self.running_var not in RUNNING_VARS:
      raise ValueError(f"running_var={self.running_var!r}: use one of {RUNNING_VARS}")
    train = not nn.merge_param("use_running_average", self.use_running_average,
                               use_running_average)
    if train and self.group_size is not None:
      return self._per_group(x)
    old = self.get_variable("batch_stats", "var")
    y = super().__call__(x, use_running_average)
    if self.running_var == "unbiased" and train and not self.is_initializing():
      # Flax stored new = m * old + (1 - m) * v (v biased); add (1 - m) * v / (n - 1) to get
      # m * old + (1 - m) * v * n / (n - 1) without recomputing v.
      n = x.size // x.shape[self.axis]
      new = self.get_variable("batch_stats", "var")
      old = jnp.ones_like(new) if old is None else old  # this call created it at Flax's 1
      self.put_variable("batch_stats", "var", new + (new - self.momentum * old) / (n - 1))
    return y

  def _per_group(self, x):
    """Train mode over groups: x [B, ..., C] as [B / group_size, group_size, ..., C], each
    group normalised with its own mean and biased variance (Flax's fast variance, float32);
    the running statistics updated with the first group's."""
    if self.axis not in (-1, x.ndim - 1):
      raise ValueError(f"group_size needs the features last (axis=-1), not axis={self.axis}")
    if x.shape[0] % self.group_size:
      raise ValueError(f"a batch of {x.shape[0]} is not a multiple of "
                       f"group_size={self.group_size}")
    channels = x.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32),
                            (channels,))
    ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32),
                           (channels,))
    groups = x.reshape((-1, self.group_size) + x.shape[1:])
    stats_dtype = jnp.promote_types(self.dtype or x.dtype, jnp.float32)
    axes = tuple(range(1, groups.ndim - 1))
    mean = groups.astype(stats_dtype).mean(axes, keepdims=True)  # [G, 1, ..., C]
    var = jnp.maximum(0.0, jnp.square(groups.astype(stats_dtype)).mean(axes, keepdims=True)
                      - jnp.square(mean))
    if not self.is_initializing():
      n = groups[0].size // channels
      correction = n / (n - 1) if self.running_var == "unbiased" else 1.0
      m = self.momentum
      ra_mean.value = m * ra_mean.value + (1 - m) * mean[0].reshape(channels)
      ra_var.value = m * ra_var.value + (1 - m) * var[0].reshape(channels) * correction
    y, mul, args = groups - mean, jax.lax.rsqrt(var + self.epsilon), [x]
    if self.use_scale:
      scale = self.param("scale", self.scale_init, (channels,), self.param_dtype)
      mul, args = mul * scale, args + [scale]
    y = y * mul
    if self.use_bias:
      bias = self.param("bias", self.bias_init, (channels,), self.param_dtype)
      y, args = y + bias, args + [bias]
    return y.reshape(x.shape).astype(self.dtype or jnp.result_type(*args))
