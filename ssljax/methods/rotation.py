"""Rotation prediction (Gidaris, Singh & Komodakis, ICLR 2018, "RotNet") as pure functions.

Each image is cropped and flipped once (`aug.crop`, `aug.crop_scale`, `aug.flip`: the release's
CIFAR loader crops and flips before rotating), then rotated by 0, 90, 180 and 270 degrees;
all four rotations of an image go through the encoder in the same batch, as the paper found
best, so a step of B images is a batch of 4B views (BatchNorm statistics over all of them).
A classifier head on the pooled backbone feature predicts which of the four rotations a view
is; loss: cross-entropy; metric: `rotation_accuracy`.

Deviations (docs/fidelity.md): the paper's networks are NIN (CIFAR) and AlexNet (ImageNet),
whose later conv blocks act as the rotation classifier; here any `siamese.build_backbone`
encoder (ResNet or ViT) with a `rotation.head_layers` MLP on its pooled feature. The crop is
ssljax's on-device random resized crop, not the release's padded random crop.
"""
import jax.numpy as jnp
import ml_collections

from ssljax.methods import pretext, siamese

NUM_ROTATIONS = 4


def rotated_views(images):
  """[B, H, W, C] (square) -> (views [4B, H, W, C], labels int32 [4B]): view 4b + r is image b
  rotated counter-clockwise by r * 90 degrees (`jnp.rot90` over H, W), its label r."""
  views = jnp.stack([jnp.rot90(images, r, axes=(1, 2)) for r in range(NUM_ROTATIONS)], axis=1)
  labels = jnp.tile(jnp.arange(NUM_ROTATIONS, dtype=jnp.int32), images.shape[0])
  return views.reshape((-1,) + images.shape[1:]), labels


def _network(config):
  return pretext.build_network(config, config.rotation, NUM_ROTATIONS)


def init(config, rng, image_shape):
  """{"params": {backbone, head}, "batch_stats": {...}}."""
  return pretext.init_network(_network(config), rng, image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] [B, H, W, 3] -> (loss, ({"batch_stats"}, metrics)) over its 4B
  rotated views."""
  images = pretext.training_images(config, rng, batch)
  views, labels = rotated_views(images)
  return pretext.classifier_loss(_network(config), params, state, views, labels,
                                 "rotation_accuracy")


def encode(config, variables, images):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]} (pooled backbone feature, eval mode)."""
  return pretext.encode(config, variables, images)


def flops_per_example(config):
  """Four views per image, each forward and backward through backbone and head."""
  backbone, head = pretext.forward_flops(config, config.rotation, config.input.image_size,
                                         NUM_ROTATIONS)
  return NUM_ROTATIONS * 3 * (backbone + head)


def default_config():
  """`config.rotation`: a linear 4-way classifier on the pooled backbone feature."""
  return ml_collections.ConfigDict(dict(head_layers=1, head_hidden_dim=512))


def validate(config):
  pretext.validate_head(config, "rotation")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
