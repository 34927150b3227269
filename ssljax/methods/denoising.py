"""Denoising autoencoder (Vincent et al., ICML 2008) as pure functions, convolutional.

Each training view x (crop + flip, pixels in [0, 1]) is corrupted into x~ by masking noise, a
fixed number of pixels forced to 0 (the paper's "a fixed number vd of components chosen at
random ... forced to 0": here exactly round(`mask_fraction` * H * W) pixel positions per image,
all three channels), and/or additive Gaussian noise N(0, `gaussian_std`^2) per value (the
isotropic Gaussian corruption of the journal version, Vincent et al. 2010; not clipped). The
encoder-decoder (`dense_prediction`) reconstructs the clean x from x~; the loss is the squared
error against the clean view, both standardised per channel, averaged over all pixels
(`loss_on="all"`, the paper's reconstruction error over every component) or over the zeroed
pixels only (`"corrupted"`, the journal version's fully "emphasised" denoising).

Differences from the paper: a convolutional encoder-decoder on colour images instead of one
sigmoid layer with tied weights on binary MNIST-style inputs, and squared error instead of the
cross-entropy of [0, 1] inputs; layers are trained jointly, not stacked greedily.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import dense_prediction, siamese

LOSS_ON = ("all", "corrupted")


def build_model(config):
  return dense_prediction.build_model(config, "denoising", 3)


def masking_noise(key, height, width, fraction):
  """[H, W] float mask, 1 at exactly round(fraction * H * W) random pixel positions."""
  count = int(round(fraction * height * width))
  order = jax.random.permutation(key, height * width)
  return (jnp.zeros(height * width).at[order[:count]].set(1.0)).reshape(height, width)


def corrupt(rng, images, gaussian_std, mask_fraction, index=None, total=None):
  """float [B, H, W, C] in [0, 1] -> (corrupted [B, H, W, C], zeroed mask [B, H, W]).

  Per-example keys (`augment.example_keys`): the same example gets the same noise whatever the
  batch is split into."""
  b, h, w, c = images.shape
  keys = augment.example_keys(rng, b, index, total)
  mask_keys, noise_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
  mask = jax.vmap(lambda k: masking_noise(k, h, w, mask_fraction))(mask_keys)
  noise = jax.vmap(lambda k: jax.random.normal(k, (h, w, c)))(noise_keys)
  corrupted = images * (1 - mask[..., None]) + gaussian_std * noise
  return corrupted, mask


def reconstruction_loss(pred, target, mask, loss_on):
  """Mean squared error of pred vs target [B, H, W, C] over all pixels, or over the pixels of
  `mask` [B, H, W] (1 = corrupted) for loss_on="corrupted"."""
  per_pixel = jnp.mean((pred.astype(jnp.float32) - target) ** 2, axis=-1)
  weights = jnp.ones_like(per_pixel) if loss_on == "all" else mask
  return dense_prediction.mean_over(per_pixel, weights)


def init(config, rng, image_shape):
  return dense_prediction.init(build_model(config), rng, image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"}, metrics))."""
  view_key, noise_key = jax.random.split(rng)
  clean = dense_prediction.training_pixels(config, view_key, batch)
  c = config.denoising
  corrupted, mask = corrupt(noise_key, clean, c.gaussian_std, c.mask_fraction,
                            **augment.micro_batch(batch, config))
  pred, state, _ = dense_prediction.predict(build_model(config), params, state,
                                            augment.standardize(corrupted))
  target = augment.standardize(clean)
  value = reconstruction_loss(pred, target, mask, c.loss_on)
  metrics = {"loss": value, "input_mse": reconstruction_loss(
      augment.standardize(corrupted), target, mask, c.loss_on)}
  return value, (state, metrics)


def encode(config, variables, images):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]}: the encoder on clean images."""
  return dense_prediction.encode(config, build_model(config), variables, images)


def flops_per_example(config):
  return 3 * dense_prediction.forward_flops(config, "denoising", 3)


def default_config():
  """`config.denoising`: masking noise on 25% of the pixels (the paper's range is 0-50%), no
  Gaussian noise, the loss over every pixel."""
  return ml_collections.ConfigDict(dict(mask_fraction=0.25, gaussian_std=0.0, loss_on="all",
                                        decoder_width=64))


def validate(config):
  c = config.denoising
  dense_prediction.validate(config, "denoising")
  if not 0 <= c.mask_fraction < 1:
    raise ConfigError(f"denoising.mask_fraction={c.mask_fraction} is outside [0, 1): use the "
                      "fraction of pixels zeroed, e.g. 0.25 (0 turns masking noise off)")
  if not c.gaussian_std >= 0:
    raise ConfigError(f"denoising.gaussian_std={c.gaussian_std} is negative: use a std >= 0 "
                      "in [0, 1] pixel units, e.g. 0.1 (0 turns Gaussian noise off)")
  if c.mask_fraction == 0 and c.gaussian_std == 0:
    raise ConfigError("denoising.mask_fraction=0 and denoising.gaussian_std=0 leave the input "
                      "uncorrupted (a plain autoencoder): set either above 0, e.g. "
                      "--config.denoising.mask_fraction=0.25")
  if c.loss_on not in LOSS_ON:
    raise ConfigError(f"denoising.loss_on={c.loss_on!r} is unknown: use one of "
                      f"{', '.join(LOSS_ON)}")
  if c.loss_on == "corrupted" and c.mask_fraction * config.input.image_size ** 2 < 0.5:
    raise ConfigError(f"denoising.loss_on='corrupted' needs zeroed pixels, but "
                      f"denoising.mask_fraction={c.mask_fraction} zeroes none: raise "
                      "mask_fraction or use loss_on='all'")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
