"""Colorization (Zhang, Isola & Efros, ECCV 2016) as pure functions.

Each training view (crop + flip, sRGB in [0, 1]) becomes CIE Lab (`data/lab.py`); the lightness
L, scaled to (L - 50) / 50 and replicated to 3 channels (so the encoder keeps the standard RGB
stem and its checkpoint stays a plain ResNet or ViT for probes, fine-tuning and convert), goes
in; the encoder-decoder (`dense_prediction`) predicts the ab channels of every pixel.
`loss`:
  "classification" (the paper): ab quantised on a grid of `grid` (10) units; the target of a
    pixel is its soft encoding, a Gaussian (`soft_sigma` 5) over its `soft_neighbours` (10, the
    release's NNEncLayer; the paper's text says 5)
    nearest bins; the loss is the cross-entropy with that target, weighted by the class
    rebalancing weight w of the pixel's nearest bin: w ~ ((1 - lambda) p~ + lambda / Q)^-1,
    normalised so that sum_q p~_q w_q = 1, with p~ the empirical ab distribution of the training
    split smoothed by a Gaussian of `rebalance_sigma` (5) and lambda = `rebalance_lambda` (0.5).
    p~ and w are fitted on `prior_examples` training images by `fit_state` and kept as model
    state ("ab_prior"), so a resumed run keeps them. An image none of whose every-4th pixels
    has |a| or |b| above `gray_threshold` (5; the release's NonGrayMaskLayer) is grayscale and
    weighs 0, so gray photographs do not teach that everything is gray (None: every image);
  "regression": the L2 loss on ab (scaled by 1/110), the paper's regression baseline.

Differences from the paper: the Q bins are the grid cells that any sRGB colour falls in
(`lab.in_gamut_bins`: 261 cells at grid 10, computed from the conversion on a 64^3 RGB lattice),
not the paper's 313 (the cells its ImageNet colours occupy under its own conversion); the ab
output is at the input resolution (the paper predicts at 1/4 and upsamples); the encoder is
`model.variant` (ResNet or ViT) instead of the paper's VGG-style network; the paper's
annealed-mean decoding of the bins to colours is not needed for representation learning and is
left out.
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax.data import lab
from ssljax.errors import ConfigError
from ssljax.methods import dense_prediction, siamese

LOSSES = ("classification", "regression")
AB_SCALE = 110.0  # |a|, |b| <= ~110 for sRGB colours: the regression target's scale


def bins(config):
  """[Q, 2] ab bin centres of `config.colorization.grid`."""
  return jnp.asarray(lab.in_gamut_bins(config.colorization.grid))


def out_channels(config):
  c = config.colorization
  return len(lab.in_gamut_bins(c.grid)) if c.loss == "classification" else 2


def build_model(config):
  return dense_prediction.build_model(config, "colorization", out_channels(config))


def lightness_input(rgb):
  """sRGB [..., H, W, 3] in [0, 1] -> the network input: (L - 50) / 50 in 3 channels."""
  lightness = (lab.rgb_to_lab(rgb)[..., :1] - 50.0) / 50.0
  return jnp.broadcast_to(lightness, rgb.shape)


def squared_distances(ab, centres):
  """ab [..., 2], centres [Q, 2] -> [..., Q] squared distances."""
  return jnp.sum((ab[..., None, :] - centres) ** 2, axis=-1)


def hard_encode(ab, centres):
  """[..., 2] -> [...] index of the nearest bin."""
  return jnp.argmin(squared_distances(ab, centres), axis=-1)


def soft_encode(ab, centres, neighbours=5, sigma=5.0):
  """[..., 2] -> [..., Q]: a Gaussian of `sigma` over the `neighbours` nearest bins, sum 1
  (bins tied with the k-th nearest count too)."""
  d2 = squared_distances(ab, centres)
  kth = -jax.lax.top_k(-d2, neighbours)[0][..., -1:]
  logits = jnp.where(d2 <= kth, -(d2 - jnp.min(d2, axis=-1, keepdims=True)) / (2 * sigma ** 2),
                     -jnp.inf)
  return jax.nn.softmax(logits, axis=-1)


def smooth_distribution(distribution, centres, sigma):
  """p [Q] -> p~ [Q]: p convolved with a Gaussian of `sigma` over the bin centres, sum 1."""
  kernel = np.exp(-np.asarray(squared_distances(jnp.asarray(centres), jnp.asarray(centres)))
                  / (2 * sigma ** 2))
  smoothed = kernel @ np.asarray(distribution, np.float64)
  return smoothed / smoothed.sum()


def rebalancing_weights(smoothed, mix):
  """p~ [Q] -> w [Q] ~ ((1 - mix) p~ + mix / Q)^-1, normalised to sum_q p~_q w_q = 1."""
  smoothed = np.asarray(smoothed, np.float64)
  weights = 1.0 / ((1 - mix) * smoothed + mix / smoothed.size)
  return weights / np.sum(smoothed * weights)


def weighted_cross_entropy(logits, target, pixel_weights):
  """Mean over pixels of -w sum_q target log softmax(logits); logits, target [..., Q]."""
  per_pixel = -jnp.sum(target * jax.nn.log_softmax(logits.astype(jnp.float32)), axis=-1)
  return jnp.mean(pixel_weights * per_pixel)


def empirical_distribution(config, source, images_per_chunk=16, pixels_per_image=1024):
  """[Q] float64: the frequency of each ab bin (nearest centre) over the pixels of a seeded
  sample of `colorization.prior_examples` training images (at most `pixels_per_image` pixels of
  each, strided)."""
  c = config.colorization
  centres = lab.in_gamut_bins(c.grid)
  order = np.random.default_rng(config.seed).permutation(len(source))[:c.prior_examples]
  nearest = jax.jit(lambda rgb: hard_encode(lab.rgb_to_lab(rgb)[..., 1:], jnp.asarray(centres)))
  counts = np.zeros(len(centres), np.float64)
  for start in range(0, len(order), images_per_chunk):
    pixels = []
    for i in order[start:start + images_per_chunk]:
      flat = np.asarray(source[int(i)]["image"]).reshape(-1, 3)
      pixels.append(flat[::max(1, len(flat) // pixels_per_image)][:pixels_per_image])
    rgb = np.concatenate(pixels).astype(np.float32) / 255.0
    padded = np.zeros((images_per_chunk * pixels_per_image, 3), np.float32)  # one compilation
    padded[:len(rgb)] = rgb
    counts += np.bincount(np.asarray(nearest(padded))[:len(rgb)], minlength=len(centres))
  return counts / counts.sum()


def fit_state(config, source):
  """{"ab_prior": {"distribution": p~ [Q], "weights": w [Q]}} for the classification loss."""
  c = config.colorization
  if c.loss != "classification":
    return {}
  smoothed = smooth_distribution(empirical_distribution(config, source),
                                 lab.in_gamut_bins(c.grid), c.rebalance_sigma)
  weights = rebalancing_weights(smoothed, c.rebalance_lambda)
  return {"ab_prior": {"distribution": smoothed.astype(np.float32),
                       "weights": weights.astype(np.float32)}}


def colourful(ab, threshold):
  """ab [B, H, W, 2] -> float32 [B]: 1 where some pixel of the every-4th-pixel grid (the
  release's subsampled ab) has |a| or |b| above `threshold`, else 0 (a grayscale image)."""
  return jnp.any(jnp.abs(ab[:, ::4, ::4]) > threshold, axis=(1, 2, 3)).astype(jnp.float32)


def colorization_loss(config, out, ab, state):
  """Network output [B, H, W, Q or 2] vs true ab [B, H, W, 2] -> (loss, metrics)."""
  c = config.colorization
  if c.loss == "regression":
    value = jnp.mean((out.astype(jnp.float32) - ab / AB_SCALE) ** 2)
    return value, {"loss": value}
  centres = bins(config)
  target = soft_encode(ab, centres, c.soft_neighbours, c.soft_sigma)
  nearest = hard_encode(ab, centres)
  pixel_weights = state["ab_prior"]["weights"][nearest]
  metrics = {}
  if c.gray_threshold is not None:
    image_weights = colourful(ab, c.gray_threshold)
    pixel_weights = pixel_weights * image_weights[:, None, None]
    metrics["gray_fraction"] = 1.0 - jnp.mean(image_weights)
  value = weighted_cross_entropy(out, target, pixel_weights)
  accuracy = jnp.mean(jnp.argmax(out, axis=-1) == nearest)
  return value, dict(metrics, loss=value, bin_accuracy=accuracy)


def init(config, rng, image_shape):
  return dense_prediction.init(build_model(config), rng, image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"[, "ab_prior"]}, metrics))."""
  rgb = dense_prediction.training_pixels(config, rng, batch)
  ab = lab.rgb_to_lab(rgb)[..., 1:]
  out, state, _ = dense_prediction.predict(build_model(config), params, state,
                                           lightness_input(rgb))
  value, metrics = colorization_loss(config, out, ab, state)
  return value, (state, metrics)


def encode(config, variables, images):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]}: the encoder on the lightness of the images."""
  return dense_prediction.encode(config, build_model(config), variables, images,
                                 network_input=lightness_input)


def flops_per_example(config):
  return 3 * dense_prediction.forward_flops(config, "colorization", out_channels(config))


def default_config():
  """`config.colorization`: the paper's classification loss and settings."""
  return ml_collections.ConfigDict(dict(
      loss="classification", grid=10, soft_neighbours=10, soft_sigma=5.0,
      rebalance_lambda=0.5, rebalance_sigma=5.0, prior_examples=2000, gray_threshold=5.0,
      decoder_width=64))


def validate(config):
  c = config.colorization
  dense_prediction.validate(config, "colorization")
  if c.loss not in LOSSES:
    raise ConfigError(f"colorization.loss={c.loss!r} is unknown: use one of "
                      f"{', '.join(LOSSES)}")
  checks = [
      ("grid", c.grid > 0, "a cell side > 0 in ab units (the paper uses 10)"),
      ("soft_neighbours", isinstance(c.soft_neighbours, int) and c.soft_neighbours >= 1,
       "a count >= 1 (the paper uses 5; 1 is a one-hot target)"),
      ("soft_sigma", c.soft_sigma > 0, "a width > 0 in ab units (the paper uses 5)"),
      ("rebalance_lambda", 0 <= c.rebalance_lambda <= 1,
       "a mix in [0, 1] (the paper uses 0.5; 1 turns rebalancing off)"),
      ("rebalance_sigma", c.rebalance_sigma > 0, "a width > 0 in ab units (the paper uses 5)"),
      ("prior_examples", isinstance(c.prior_examples, int) and c.prior_examples >= 1,
       "a count of training images >= 1, e.g. 2000"),
  ]
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"colorization.{field}={c[field]!r} is invalid: use {fix}")
  if c.gray_threshold is not None and not (isinstance(c.gray_threshold, (int, float))
                                           and c.gray_threshold >= 0):
    raise ConfigError(f"colorization.gray_threshold={c.gray_threshold!r} is invalid: use ab "
                      "units >= 0 (the release uses 5), or None to weigh every image")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
