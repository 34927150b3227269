"""A convolutional decoder back to the input resolution, and the encoder-decoder of the dense
pretexts (denoising, context encoder, colorization).

`ConvDecoder(stages, width, out_channels)`: `stages` times (nearest 2x upsampling, 3x3 conv,
BatchNorm, ReLU), the i-th stage `width // 2**i` channels wide, then a 1x1 conv with bias to
`out_channels`: [B, h, w, C] -> [B, h * 2^stages, w * 2^stages, out_channels]. Upsampling then
convolving (rather than a transposed conv) avoids checkerboard artefacts and uses `conv.Conv`'s
fast kernel gradient on CPU.

`EncoderDecoder(backbone, decoder)`: a ResNet's feature map before pooling, or a ViT's patch
tokens as a [B, H/p, W/p, D] grid, through the decoder; params and BatchNorm statistics under
"backbone" and "decoder". `__call__(images, train) -> (out [B, H, W, out_channels], {"pooled":
[B, D]})`; `features(images, train) -> [B, D]` (the ResNet's pooled feature, the ViT's cls token).
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models import vit
from ssljax.models.batch_norm import BatchNorm
from ssljax.models.conv import Conv


def upsample_nearest(x, factor=2):
  """[B, h, w, C] -> [B, h * factor, w * factor, C], each value repeated factor x factor."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


class ConvDecoder(nn.Module):
  stages: int
  width: int
  out_channels: int
  dtype: Any = jnp.float32
  bn_running_var: str = "biased"

  @nn.compact
  def __call__(self, x, train=False):
    x = x.astype(self.dtype)
    for stage in range(self.stages):
      x = Conv(self.width // 2 ** stage, (3, 3), padding=((1, 1), (1, 1)),
               kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
               dtype=self.dtype, name=f"conv{stage}")(upsample_nearest(x))
      x = nn.relu(BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                            dtype=self.dtype, running_var=self.bn_running_var,
                            name=f"bn{stage}")(x))
    return nn.Dense(self.out_channels, dtype=self.dtype, name="head")(x).astype(jnp.float32)


class EncoderDecoder(nn.Module):
  backbone: nn.Module
  decoder: ConvDecoder

  def _encode(self, images, train):
    """-> (feature map [B, h, w, D], pooled [B, D])."""
    if isinstance(self.backbone, vit.ViT):
      tokens, _ = self.backbone(images)
      b, length, width = tokens[:, 1:].shape
      grid = int(round(length ** 0.5))
      return tokens[:, 1:].reshape(b, grid, grid, width), tokens[:, 0]
    pooled, intermediates = self.backbone(images, train=train)
    return intermediates["feature_map"], pooled

  def __call__(self, images, train=False):
    feature_map, pooled = self._encode(images, train)
    return self.decoder(feature_map, train=train), {"pooled": pooled}

  def features(self, images, train=False):
    return self._encode(images, train)[1]
