"""Context encoder (Pathak et al., CVPR 2016) as pure functions, reconstruction loss only.

A region of each training view is hidden, filled with the mean colour (0 after the per-channel
standardisation, i.e. the ImageNet mean the inputs are standardised with), and the
encoder-decoder (`dense_prediction`) predicts the pixels there; the loss is the squared error
on the region only. Regions (`region`):
  "center": the central square of side round(`mask_fraction` * size) (the paper: 64 of 128 px,
    1/4 of the area, at `mask_fraction=0.5`);
  "random_blocks": `num_blocks` squares of side round(`block_fraction` * size) at uniform random
    positions, possibly overlapping (the paper's random-block masks cover up to 1/4 of the
    image; the default 4 blocks of 1/4 of the side cover at most 1/4).
As in the paper the prediction extends `overlap` pixels into the context around each hole: the
hidden region is each square shrunk by `overlap` on every side, the loss covers the whole square
and weighs the `overlap` border `overlap_weight` times (10 in the paper) more than the hole.

Differences from the paper: the adversarial loss (its L2 + adversarial joint loss, lambda_rec
0.999) is left out, as is the channel-wise fully-connected bottleneck (the decoder is the shared
convolutional one, `models/conv_decoder.py`); the random-region (segmentation-shaped) masks are
not implemented; the encoder is `model.variant` (ResNet or ViT), not AlexNet.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import dense_prediction, siamese

REGIONS = ("center", "random_blocks")


def build_model(config):
  return dense_prediction.build_model(config, "context_encoder", 3)


def square(size, side, top, left):
  """[size, size] float, 1 on the side x side square at (top, left) (traceable offsets)."""
  rows, cols = jnp.arange(size)[:, None], jnp.arange(size)[None, :]
  return ((rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)).astype(
      jnp.float32)


def region_masks(key, size, c):
  """(loss region [size, size], hidden hole [size, size]) for one image and config section
  `c`: the squares, and the same squares shrunk by `c.overlap` on every side."""
  if c.region == "center":
    side = int(round(c.mask_fraction * size))
    corners = jnp.full((1, 2), (size - side) // 2)
  else:
    side = int(round(c.block_fraction * size))
    corners = jax.random.randint(key, (c.num_blocks, 2), 0, size - side + 1)
  inner = side - 2 * c.overlap
  region = jnp.max(jax.vmap(lambda t: square(size, side, t[0], t[1]))(corners), axis=0)
  hole = jnp.max(jax.vmap(lambda t: square(size, inner, t[0] + c.overlap,
                                           t[1] + c.overlap))(corners), axis=0)
  return region, hole


def batch_masks(rng, batch_size, size, c, index=None, total=None):
  """(region, hole) [B, size, size], per-example keys."""
  keys = augment.example_keys(rng, batch_size, index, total)
  return jax.vmap(lambda k: region_masks(k, size, c))(keys)


def hide(images, hole):
  """Standardised images [B, H, W, C] with the hole [B, H, W] set to 0 (the mean colour)."""
  return images * (1 - hole[..., None])


def region_loss(pred, target, region, hole, overlap_weight):
  """Squared error [B, H, W, C] averaged over the region, the part of it outside the hole
  weighted `overlap_weight`; pixels outside the region do not count."""
  per_pixel = jnp.mean((pred.astype(jnp.float32) - target) ** 2, axis=-1)
  weights = hole + overlap_weight * (region - hole)
  return dense_prediction.mean_over(per_pixel, weights)


def init(config, rng, image_shape):
  return dense_prediction.init(build_model(config), rng, image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"}, metrics))."""
  view_key, mask_key = jax.random.split(rng)
  images = augment.standardize(dense_prediction.training_pixels(config, view_key, batch))
  c = config.context_encoder
  region, hole = batch_masks(mask_key, images.shape[0], images.shape[1], c,
                             **augment.micro_batch(batch, config))
  pred, state, _ = dense_prediction.predict(build_model(config), params, state,
                                            hide(images, hole))
  value = region_loss(pred, images, region, hole, c.overlap_weight)
  return value, (state, {"loss": value, "hidden_fraction": jnp.mean(hole)})


def encode(config, variables, images):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]}: the encoder on whole (unmasked) images."""
  return dense_prediction.encode(config, build_model(config), variables, images)


def flops_per_example(config):
  return 3 * dense_prediction.forward_flops(config, "context_encoder", 3)


def default_config():
  """`config.context_encoder`: the paper's central square (half the side, 1/4 of the area),
  a 2-pixel overlap (of 32; the release uses 4 of 128) weighted 10x."""
  return ml_collections.ConfigDict(dict(
      region="center", mask_fraction=0.5, num_blocks=4, block_fraction=0.25, overlap=2,
      overlap_weight=10.0, decoder_width=64))


def validate(config):
  c, size = config.context_encoder, config.input.image_size
  dense_prediction.validate(config, "context_encoder")
  if c.region not in REGIONS:
    raise ConfigError(f"context_encoder.region={c.region!r} is unknown: use one of "
                      f"{', '.join(REGIONS)}")
  field = "mask_fraction" if c.region == "center" else "block_fraction"
  if not 0 < c[field] < 1:
    raise ConfigError(f"context_encoder.{field}={c[field]} is outside (0, 1): use the "
                      "square's side as a fraction of the image side, e.g. 0.5")
  side = int(round(c[field] * size))
  if c.overlap < 0 or side - 2 * c.overlap < 1:
    raise ConfigError(f"context_encoder.overlap={c.overlap} leaves no hidden pixel in a "
                      f"{side}-pixel square: use an overlap in [0, {(side - 1) // 2}]")
  if c.region == "random_blocks" and c.num_blocks < 1:
    raise ConfigError(f"context_encoder.num_blocks={c.num_blocks} is invalid: use at least "
                      "1 block, e.g. 4")
  if not c.overlap_weight >= 0:
    raise ConfigError(f"context_encoder.overlap_weight={c.overlap_weight} is negative: use a "
                      "weight >= 0 (the paper uses 10)")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
