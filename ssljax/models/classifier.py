"""Image classifiers for fine-tuning a pre-trained encoder.

`ViTClassifier` (MAE's fine-tuning model). Parameters: `encoder` (the `ViT`, named as in
pre-training so its weights load one-to-one), `fc_norm` (average pooling only) and `head`.
Pooling as in MAE's `models_vit.py`:
  pool="avg"  mean of the patch tokens, then LayerNorm `fc_norm` (the encoder's final `norm` is
              not used: MAE drops it when fine-tuning with global pooling)
  pool="cls"  the cls token after the encoder's final `norm`

`ResNetClassifier`: a ResNet backbone's pooled features, then a linear `head` initialised to
zero (SimCLR's fine-tuning, `--zero_init_logits_layer`). Parameters and BatchNorm statistics:
`backbone` (as the Siamese methods name theirs) and `head`.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from ssljax.models import vit

POOLS = ("avg", "cls")


class ViTClassifier(nn.Module):
  """images [B, H, W, C] (normalised) -> logits [B, num_classes] (float32)."""
  spec: Any  # vit.parse_variant-style dict: width, depth, num_heads, mlp_dim, patch_size
  num_classes: int
  pool: str = "avg"
  drop_path: float = 0.0
  dtype: Any = jnp.float32
  remat: Any = "none"  # vit.REMAT_POLICIES
  attention_impl: str = "auto"  # attention.IMPLS
  learned_pos_embed: bool = False  # train the position embedding (timm's ViT, MAE fine-tuning)

  @nn.compact
  def __call__(self, images, train=False):
    if self.pool not in POOLS:
      raise ValueError(f"pool={self.pool!r} is unknown: use one of {', '.join(POOLS)}")
    encoder = vit.ViT(**self.spec, dtype=self.dtype, remat=self.remat,
                      drop_path=self.drop_path, final_norm=self.pool == "cls",
                      learned_pos_embed=self.learned_pos_embed,
                      attention_impl=self.attention_impl, name="encoder")
    tokens, _ = encoder(images, deterministic=not train)
    if self.pool == "avg":
      x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="fc_norm")(tokens[:, 1:].mean(1))
    else:
      x = tokens[:, 0]
    # MAE initialises the head with std 2e-5: fine-tuning starts from near-uniform predictions.
    # (timm's trunc_normal_(std=2e-5) cuts at +-2 absolute, i.e. not at all: a plain normal.)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(2e-5),
                    name="head")(x.astype(jnp.float32))


class ResNetClassifier(nn.Module):
  """images [B, H, W, C] (normalised) -> logits [B, num_classes] (float32); BatchNorm on batch
  statistics (updating the running ones) with `train`, on the running ones without."""
  backbone: nn.Module  # a `resnet.ResNet`, bound under the name "backbone"
  num_classes: int

  @nn.compact
  def __call__(self, images, train=False):
    features, _ = self.backbone(images, train=train)
    return nn.Dense(self.num_classes, kernel_init=nn.initializers.zeros,
                    name="head")(features.astype(jnp.float32))
