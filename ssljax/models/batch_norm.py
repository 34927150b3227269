"""Flax BatchNorm with a choice of running variance: the biased batch variance (Flax, Haiku,
Keras) or the unbiased one, n / (n - 1) times it (PyTorch's `running_var`, n the examples per
channel in the batch). Only the running statistics differ, so only eval-mode outputs do; the
parameters (`scale`, `bias`) and statistics (`mean`, `var`) keep Flax's names.
"""
import flax.linen as nn
import jax.numpy as jnp

RUNNING_VARS = ("biased", "unbiased")


class BatchNorm(nn.BatchNorm):
  """`nn.BatchNorm` (identical with `running_var="biased"`) plus `running_var`."""
  running_var: str = "biased"

  @nn.compact
  def __call__(self, x, use_running_average=None):
    if self.running_var not in RUNNING_VARS:
      raise ValueError(f"running_var={self.running_var!r}: use one of {RUNNING_VARS}")
    train = not nn.merge_param("use_running_average", self.use_running_average,
                               use_running_average)
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
