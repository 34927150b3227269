"""What the dense-prediction pretexts (denoising, context encoder, colorization) share: an
encoder (`siamese.build_backbone`, so `model.variant` switches ResNet and ViT) whose spatial
feature map a `conv_decoder.ConvDecoder` brings back to the input resolution, its init, forward,
evaluation features, validation and FLOPs.

A method's config section (`config.denoising`, ...) has `decoder_width` (the first upsampling
stage's width; each further stage halves it). Parameters and BatchNorm statistics are
`{"backbone", "decoder"}`; `encode` gives the probes {"backbone": [B, D]} as the Siamese methods
do, so fine-tuning, convert and the probes see the same backbone.
"""
import math

import jax.numpy as jnp

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import siamese
from ssljax.models import conv_decoder, resnet, vit


def feature_map_size(config):
  """Side of the encoder's spatial map for `config.input.image_size` images."""
  size, variant = config.input.image_size, config.model.variant
  if variant.startswith("resnet"):
    stride = 8 if config.model.cifar_stem else 32
    return -(-size // stride)
  return size // vit.spec_from_config(config.model)["patch_size"]


def decoder_stages(config):
  """Number of 2x upsamplings from the feature map to the image (exact by `validate`)."""
  return int(round(math.log2(config.input.image_size / feature_map_size(config))))


def build_model(config, section, out_channels):
  """`conv_decoder.EncoderDecoder` with `out_channels` outputs per pixel."""
  decoder = conv_decoder.ConvDecoder(decoder_stages(config), config[section].decoder_width,
                                     out_channels, dtype=jnp.dtype(config.model.dtype),
                                     bn_running_var=config.model.bn_running_var)
  return conv_decoder.EncoderDecoder(siamese.build_backbone(config), decoder)


def init(model, rng, image_shape):
  """{"params": {"backbone", "decoder"}, "batch_stats": {...}} for `image_shape` [B, H, W, C]."""
  images = jnp.zeros((2,) + tuple(image_shape[1:]), jnp.float32)
  return dict(model.init(rng, images, train=False))


def predict(model, params, state, images, train=True):
  """Network input [B, H, W, C] -> (out [B, H, W, out_channels], state with the new batch stats,
  pooled backbone features [B, D])."""
  variables = {"params": params, "batch_stats": state["batch_stats"]}
  if not train:
    out, extra = model.apply(variables, images, train=False)
    return out, state, extra["pooled"]
  (out, extra), updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
  return out, dict(state, batch_stats=updates["batch_stats"]), extra["pooled"]


def training_pixels(config, rng, batch):
  """uint8 batch["image"] -> float32 [B, size, size, 3] in [0, 1]: random-resized crop and flip
  as `config.aug` says (per-example keys, micro-batch aware)."""
  return augment.crop_flip_batch(rng, batch["image"].astype(jnp.float32) / 255.0,
                                 config.input.image_size, crop_scale=config.aug.crop_scale,
                                 flip=config.aug.flip, crop=config.aug.crop,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))


def eval_pixels(images, size):
  """uint8 [B, H, W, 3] -> float32 [B, size, size, 3] in [0, 1], no randomness."""
  return augment.denormalize(augment.eval_view(images, size))


def encode(config, model, variables, images, network_input=augment.standardize):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]} in eval mode; `network_input` maps the [0, 1]
  pixels to what the encoder was trained on."""
  x = network_input(eval_pixels(images, config.input.image_size))
  features = model.apply({"params": variables["params"],
                          "batch_stats": variables["batch_stats"]}, x, train=False,
                         method=conv_decoder.EncoderDecoder.features)
  return {"backbone": features.astype(jnp.float32)}


def mean_over(values, weights):
  """sum(values * weights) / sum(weights): a weighted mean over pixels (0 without weights)."""
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1e-12)


def validate(config, section):
  """ConfigErrors for the encoder-decoder fields: a power-of-two upsampling, a decoder width
  that halves down every stage."""
  if config.model.variant.startswith("resnet"):
    if config.model.variant not in resnet.DEPTHS:
      raise ConfigError(f"model.variant={config.model.variant!r} is unknown: use one of "
                        f"{', '.join(resnet.DEPTHS)} or a ViT such as 'Ti/4'")
  else:
    try:
      vit.spec_from_config(config.model)
    except ValueError as e:
      raise ConfigError(f"model.variant: {e}") from None
  size, grid = config.input.image_size, feature_map_size(config)
  ratio = size / grid
  if size % grid or 2 ** round(math.log2(ratio)) != ratio:
    raise ConfigError(f"input.image_size={size} is not a power-of-two multiple of the "
                      f"encoder's {grid}x{grid} feature map ({config.model.variant}): use "
                      "e.g. 32, 64, 128 or 224 (a ResNet strides by 8 with the CIFAR stem, "
                      "else by 32; a ViT by its patch size)")
  width, stages = config[section].decoder_width, decoder_stages(config)
  if not isinstance(width, int) or width < 2 ** max(stages - 1, 0):
    raise ConfigError(f"{section}.decoder_width={width!r} cannot halve over {stages} "
                      f"upsampling stages: use an integer >= {2 ** max(stages - 1, 0)}, "
                      "e.g. 64")
  siamese.validate_network(config, section)


def forward_flops(config, section, out_channels):
  """Forward FLOPs of one image through the encoder and the decoder."""
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  size, variant = config.input.image_size, config.model.variant
  if variant.startswith("resnet"):
    total = flops.resnet_forward(variant, size, config.model.resnet_width,
                                 config.model.cifar_stem)
    channels = config.model.resnet_width * 8 * (
        4 if resnet.DEPTHS[variant][0] == "bottleneck" else 1)
  else:
    spec = vit.spec_from_config(config.model)
    total, channels = flops.vit_forward(spec, size), spec["width"]
  side = feature_map_size(config)
  for stage in range(decoder_stages(config)):
    width, side = config[section].decoder_width // 2 ** stage, side * 2
    total += 2 * side * side * 9 * channels * width
    channels = width
  return total + 2 * size * size * channels * out_channels

