"""ResNet-18/50 backbones (Flax Linen) with the CIFAR variant (3x3 stem, stride 1, no max-pool).

BatchNorm keeps running statistics in the `batch_stats` collection. Under `jax.jit` with the
batch sharded over devices its mean and variance are over the global batch: SyncBN semantics;
`bn_group_size` gives each group of that many examples its own (per-GPU BN, `batch_norm`).
`bn_running_var` picks the biased (Flax) or unbiased (PyTorch) running variance (`batch_norm`);
`zero_init_residual` starts the last BN scale of every block at 0 instead of 1.
`conv_init` names the releases' convolution kernel initialisers (`CONV_INITS`).
`__call__(images [B, H, W, C], train) -> (features [B, C_out], intermediates)`; intermediates
are {"pooled": the features, "feature_map": [B, h, w, C_out] before the pooling}.
"""
import math
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models.batch_norm import BatchNorm
from ssljax.models.conv import Conv

# name: (block kind, blocks per stage)
DEPTHS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
          "resnet50": ("bottleneck", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}


def _truncated_normal_over_sqrt_fan_in(key, shape, dtype=jnp.float32):
  """N(0, 1/fan_in) cut at +-2 sd and not rescaled (std 0.88/sqrt(fan_in)); kernel
  [kh, kw, C_in, C_out], fan_in = kh * kw * C_in."""
  return nn.initializers.truncated_normal(1 / math.sqrt(math.prod(shape[:-1])))(key, shape, dtype)


# Kernel initialisers of the releases' ResNets (`ResNet.conv_init`, `model.resnet_init`):
#   torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu"), N(0, 2/fan_out) untruncated.
#   haiku: hk.Conv2D's default TruncatedNormal(1/sqrt(fan_in)), not rescaled for the cut.
#   tf_variance_scaling: tf.keras VarianceScaling() (scale 1, fan_in, truncated normal), rescaled
#     by 1/0.87962566 so the std is exactly 1/sqrt(fan_in).
CONV_INITS = {
    "torchvision": nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
    "haiku": _truncated_normal_over_sqrt_fan_in,
    "tf_variance_scaling": nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal"),
}


def _conv(features, kernel, stride, dtype, init, name):
  """k x k convolution, stride s, padding k // 2, no bias (torchvision's ResNet convs); kernel
  initialiser `CONV_INITS[init]`."""
  return Conv(features, (kernel, kernel), (stride, stride), ((kernel // 2, kernel // 2),) * 2,
              kernel_init=CONV_INITS[init], dtype=dtype, name=name)


def _norm(train, dtype, running_var, group_size, zero_scale=False, name=None):
  return BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                   scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
                   running_var=running_var, group_size=group_size, name=name)


class ResidualBlock(nn.Module):
  """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) block with a projection shortcut."""
  filters: int
  strides: int
  bottleneck: bool
  zero_init_residual: bool
  dtype: Any = jnp.float32
  bn_running_var: str = "biased"
  bn_group_size: Optional[int] = None
  conv_init: str = "torchvision"

  @nn.compact
  def __call__(self, x, train):
    conv = lambda f, k, s, name: _conv(f, k, s, self.dtype, self.conv_init, name)
    norm = lambda name, zero_scale=False: _norm(train, self.dtype, self.bn_running_var,
                                                self.bn_group_size, zero_scale, name)
    out_filters = self.filters * (4 if self.bottleneck else 1)
    if self.bottleneck:
      y = nn.relu(norm("bn1")(conv(self.filters, 1, 1, "conv1")(x)))
      y = nn.relu(norm("bn2")(conv(self.filters, 3, self.strides, "conv2")(y)))
      y = norm("bn3", self.zero_init_residual)(conv(out_filters, 1, 1, "conv3")(y))
    else:
      y = nn.relu(norm("bn1")(conv(self.filters, 3, self.strides, "conv1")(x)))
      y = norm("bn2", self.zero_init_residual)(conv(self.filters, 3, 1, "conv2")(y))
    if x.shape[-1] != out_filters or self.strides != 1:
      x = norm("downsample_bn")(conv(out_filters, 1, self.strides, "downsample_conv")(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet backbone without the classifier; returns globally average-pooled features."""
  stage_sizes: Sequence[int]
  bottleneck: bool
  width: int = 64
  cifar_stem: bool = False
  zero_init_residual: bool = True
  dtype: Any = jnp.float32
  bn_running_var: str = "biased"
  bn_group_size: Optional[int] = None
  conv_init: str = "torchvision"

  @nn.compact
  def __call__(self, images, train=False):
    x = images.astype(self.dtype)
    stem_norm = _norm(train, self.dtype, self.bn_running_var, self.bn_group_size, name="bn1")
    if self.cifar_stem:
      x = _conv(self.width, 3, 1, self.dtype, self.conv_init, "conv1")(x)
      x = nn.relu(stem_norm(x))
    else:
      x = _conv(self.width, 7, 2, self.dtype, self.conv_init, "conv1")(x)
      x = nn.relu(stem_norm(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=[(1, 1)] * 2)
    for stage, num_blocks in enumerate(self.stage_sizes):
      for block in range(num_blocks):
        x = ResidualBlock(self.width * 2 ** stage, 2 if stage > 0 and block == 0 else 1,
                          self.bottleneck, self.zero_init_residual, self.dtype,
                          self.bn_running_var, self.bn_group_size, conv_init=self.conv_init,
                          name=f"layer{stage + 1}_{block}")(x, train)
    pooled = x.mean(axis=(1, 2))
    return pooled, {"pooled": pooled, "feature_map": x}


def from_name(name, *, width=64, cifar_stem=False, zero_init_residual=True, dtype=jnp.float32,
              bn_running_var="biased", bn_group_size=None, conv_init="torchvision"):
  """ResNet backbone by name ("resnet18", "resnet50", ...)."""
  if name not in DEPTHS:
    raise ValueError(f"unknown ResNet {name!r}: use one of {', '.join(DEPTHS)}")
  kind, stages = DEPTHS[name]
  if conv_init not in CONV_INITS:
    raise ValueError(f"unknown conv_init {conv_init!r}: use one of {', '.join(CONV_INITS)}")
  return ResNet(stages, kind == "bottleneck", width, cifar_stem, zero_init_residual, dtype,
                bn_running_var, bn_group_size, conv_init=conv_init)
