"""Masked autoencoder (He et al., 2022) as pure functions.

The encoder sees only the visible ~25% of patches; a small decoder gets the encoded visible
tokens plus mask tokens for all patches and predicts each patch's target (`mae.target`, see
`mae_targets`: pixels, per-patch normalised pixels, PCA coefficients or k-means token ids); the
loss is on masked patches only.

Deviation from the paper: the `tokens` target's tokenizer is a k-means codebook over patches
fitted by the repo (`mae.tokenizer="kmeans"`), not DALL-E's dVAE (not downloadable here).
"""
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections.config_dict import placeholder
import numpy as np

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import mae_targets as targets
from ssljax.models import attention, patches, vit

# Re-exported: the target functions' older home (tests, benchmarks, the converter's checks).
patch_targets, patch_mean_std = targets.patch_targets, targets.patch_mean_std
masked_mse = targets.masked_mse


def build_models(config):
  """(encoder, decoder) Linen modules from `config.model` and `config.mae`."""
  spec = vit.spec_from_config(config.model)
  dtype = jnp.dtype(config.model.dtype)
  impl = config.model.get("attention_impl", "auto")
  for width, heads in ((spec["width"], spec["num_heads"]),
                       (config.mae.decoder_width, config.mae.decoder_heads)):
    attention.require_runnable("model.attention_impl", impl, dtype, width // heads)
  encoder = vit.ViT(**spec, dtype=dtype, remat=config.model.remat,
                    weight_init=config.model.get("vit_init", "xavier"), attention_impl=impl)
  decoder = vit.MAEDecoder(
      width=config.mae.decoder_width, depth=config.mae.decoder_depth,
      num_heads=config.mae.decoder_heads,
      mlp_dim=int(config.mae.decoder_width * config.mae.decoder_mlp_ratio),
      patch_size=spec["patch_size"], out_dim=targets.output_dim(config), dtype=dtype,
      remat=config.model.remat, attention_impl=impl)
  return encoder, decoder


def num_patches(config):
  return (config.input.image_size // vit.spec_from_config(config.model)["patch_size"]) ** 2


def random_masking(rng, batch_size, length, mask_ratio, noise=None, index=None, total=None):
  """Per-example random masking by sorting uniform noise; the lowest noise is kept.

  Returns keep_indices [B, K] (K = int(L * (1 - mask_ratio)), the same for every example),
  mask [B, L] (1 = masked, 0 = visible, in patch order) and restore_indices [B, L] that undo the
  shuffle. Each example gets its own key, so examples get different masks; `noise` [B, L]
  replaces the sampled noise (to reproduce another implementation's mask).
  """
  if noise is None:
    keys = augment.example_keys(rng, batch_size, index, total)
    noise = jax.vmap(lambda k: jax.random.uniform(k, (length,)))(keys)
  num_keep = int(length * (1 - mask_ratio))
  shuffle = jnp.argsort(noise, axis=1)
  restore = jnp.argsort(shuffle, axis=1)
  mask_shuffled = (jnp.arange(length) >= num_keep).astype(jnp.float32)
  mask = jnp.take_along_axis(jnp.broadcast_to(mask_shuffled, (batch_size, length)), restore, 1)
  return shuffle[:, :num_keep], mask, restore


def noise_for_mask(mask):
  """mask [B, L] (1 = masked) -> noise [B, L] for which `random_masking` gives that mask.

  Every example must mask the same number of patches (the encoder sees K tokens each); pass
  `mask_ratio` = masked / L with it. Visible patches keep their patch order.
  """
  mask = np.asarray(mask, np.float32)
  counts = mask.sum(axis=1)
  if len(set(counts.tolist())) > 1:
    raise ValueError(f"every example must mask as many patches; got counts {counts.tolist()}")
  return jnp.asarray(mask)  # argsort is stable: visible (0) first in patch order, then masked


def forward(config, params, images, rng=None, noise=None, mask_ratio=None, micro=None):
  """Normalised images [B, H, W, C] -> (pred [B, L, targets.output_dim], mask [B, L]).

  The mask comes from `rng`, or from the given `noise` [B, L] (the official release's
  argument: the lowest noise is kept; `noise_for_mask` turns a mask into noise);
  `mask_ratio` overrides `config.mae.mask_ratio`.
  """
  encoder, decoder = build_models(config)
  b = images.shape[0]
  length = num_patches(config)
  ratio = config.mae.mask_ratio if mask_ratio is None else mask_ratio
  keep, mask, restore = random_masking(rng, b, length, ratio, noise, **(micro or {}))
  if config.mae.encoder_mask_tokens:  # BERT-style: mask tokens go through the encoder
    tokens, _ = encoder.apply({"params": params["encoder"]}, images, token_mask=mask)
    restore = jnp.broadcast_to(jnp.arange(length), (b, length))
  else:
    tokens, _ = encoder.apply({"params": params["encoder"]}, images, keep_indices=keep)
  pred, _ = decoder.apply({"params": params["decoder"]}, tokens, restore)
  return pred, mask


def init(config, rng, image_shape):
  """Variables {"params": {"encoder", "decoder"}} for images of `image_shape` [B, H, W, C]."""
  encoder, decoder = build_models(config)
  enc_key, dec_key = jax.random.split(rng)
  images = jnp.zeros(image_shape, jnp.float32)
  kwargs = {}
  length = num_patches(config)
  b = image_shape[0]
  if config.mae.encoder_mask_tokens:
    kwargs["token_mask"] = jnp.zeros((b, length))
  enc_vars = encoder.init(enc_key, images, **kwargs)
  tokens, _ = encoder.apply(enc_vars, images, **kwargs)
  dec_vars = decoder.init(dec_key, tokens, jnp.broadcast_to(jnp.arange(length), (b, length)))
  return {"params": {"encoder": enc_vars["params"], "decoder": dec_vars["params"]}}


def photometric(aug):
  """Whether `aug` asks for colour jitter, grayscale, blur or solarize (the paper's "crop +
  color jit" row); MAE's own recipe has none."""
  probs = [aug.color_jitter_prob, aug.grayscale_prob]
  for value in (aug.blur_prob, aug.solarize_prob):
    probs += list(value) if isinstance(value, (tuple, list)) else [value]
  return any(p > 0 for p in probs)


def _views(config, rng, batch, micro):
  geometry = augment.geometry(batch, config)
  if photometric(config.aug):  # the Siamese recipes' chain, as view 0
    return augment.augmented_views(rng, batch["image"], config.input.image_size, config.aug, 1,
                                   **micro, **geometry)[0]
  return augment.crop_flip_views(rng, batch["image"], config.input.image_size,
                                 crop_scale=config.aug.crop_scale, flip=config.aug.flip,
                                 crop=config.aug.crop, **micro, **geometry)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] [B, H, W, C] -> (loss, (state, metrics)); the state (the fitted PCA
  basis or codebook, if any) is unchanged."""
  aug_key, mask_key = jax.random.split(rng)
  micro = augment.micro_batch(batch, config)
  images = _views(config, aug_key, batch, micro)
  pred, mask = forward(config, params, images, mask_key, micro=micro)
  value = targets.loss(config, state, pred, images, mask)
  return value, (state, {"loss": value})


def fit_state(config, source):
  """The pca and tokens targets' PCA basis or k-means codebook, fitted on training patches."""
  return targets.fit_state(config, source)


def encode(config, variables, images):
  """uint8 [B, H, W, C] -> {"cls", "patch_mean"}: [B, D] features of the unmasked encoder."""
  x = augment.eval_view(images, config.input.image_size)
  encoder, _ = build_models(config)
  _, features = encoder.apply({"params": variables["params"]["encoder"]}, x)
  return {k: v.astype(jnp.float32) for k, v in features.items()}


def reconstruct(config, variables, images, rng, noise=None, mask_ratio=None):
  """uint8 [B, H, W, C] -> dict of [B, H, W, C] images in [0, 1] for the MAE figure.

  The mask is drawn from `rng` or given as `noise` [B, L] (see `forward`): the same noise with
  a higher `mask_ratio` hides a superset of the patches (the paper's 75/85/95% figure).

  "original", "masked" (masked patches grey), "reconstruction" and "pasted" (reconstruction
  with the visible patches pasted back). Predictions become pixels by
  `mae_targets.predicted_pixels`: norm_pixel ones get each patch's true mean and standard
  deviation restored, PCA coefficients are projected back (the low-pass patch), token logits
  paint their argmax centroid (with the patch's mean and std restored).
  """
  size = config.input.image_size
  p = vit.spec_from_config(config.model)["patch_size"]
  x = augment.eval_view(images, size)
  pred, mask = forward(config, variables["params"], x, rng, noise, mask_ratio)
  pred = targets.predicted_pixels(config, variables, pred, x)
  pixel_mask = patches.unpatchify(jnp.broadcast_to(mask[..., None], pred.shape), p)
  recon = patches.unpatchify(pred, p)
  show = augment.denormalize
  return {
      "original": show(x),
      "masked": show(x) * (1 - pixel_mask) + 0.5 * pixel_mask,
      "reconstruction": show(recon),
      "pasted": show(x * (1 - pixel_mask) + recon * pixel_mask),
  }


def mask_token_flops_ratio(config):
  """Training FLOPs per image with mask tokens in the encoder over those without (the paper's
  Table 1c "FLOPs" column, 3.3x for ViT-L/16 at 75% masking with the 8 x 512 decoder: this
  gives 3.23x there; the encoder alone would be 4.0x)."""
  with_tokens, without = (_with_mae_field(config, "encoder_mask_tokens", flag)
                          for flag in (True, False))
  return flops_per_example(with_tokens) / flops_per_example(without)


def _with_mae_field(config, field, value):
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.mae[field] = value
  return config


def flops_per_example(config):
  """Training FLOPs per image: 3 x (encoder on the cls token + kept patches, decoder on all)."""
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  spec = vit.spec_from_config(config.model)
  length = num_patches(config)
  kept = length if config.mae.encoder_mask_tokens else int(length * (1 - config.mae.mask_ratio))
  c = config.mae
  decoder = (flops.dense(spec["width"], c.decoder_width, 1 + kept)
             + flops.transformer_blocks(1 + length, c.decoder_width,
                                        int(c.decoder_width * c.decoder_mlp_ratio),
                                        c.decoder_depth)
             + flops.dense(c.decoder_width, targets.output_dim(config), 1 + length))
  return 3 * (flops.vit_forward(spec, config.input.image_size, kept_patches=kept) + decoder)


def default_config():
  """`config.mae` with the paper's defaults (ViT-L recipe): 75% masking, 8 x 512 decoder."""
  return ml_collections.ConfigDict(dict(
      mask_ratio=0.75, encoder_mask_tokens=False,
      decoder_width=512, decoder_depth=8, decoder_heads=16, decoder_mlp_ratio=4.0,
      # pixel | norm_pixel | pca | tokens (mae_targets); norm_pix_loss: the older alias
      # (True: norm_pixel, False: pixel), None leaves it to target
      target="norm_pixel", norm_pix_loss=placeholder(bool),
      pca_dims=96,  # the paper's 96 (of 768 at 16x16 patches)
      # k-means tokenizer (the dVAE stand-in): 512 centroids keep ~250 fitting patches each at
      # 1,000 CIFAR-10 images x 64 patches, and the decoder's output layer small
      tokenizer="kmeans", token_codebook_size=512, kmeans_iterations=20,
      target_fit_examples=1000))


def recon_eval_config(every_steps=None, every_epochs=None, split="test", num_images=8):
  """`config.evals.recon`: the reconstruction figure on fixed held-out images, every
  `every_steps` or `every_epochs`."""
  return ml_collections.ConfigDict(dict(
      type="recon", split=split,
      every_steps=placeholder(int) if every_steps is None else every_steps,
      every_epochs=placeholder(float) if every_epochs is None else float(every_epochs),
      num_images=num_images, seed=0, random_init_baseline=False))


def validate(config):
  """The ViT must fit the images and the mask ratio must leave a visible patch."""
  try:
    spec = vit.spec_from_config(config.model)
  except ValueError as e:
    raise ConfigError(f"model.variant: {e}") from None
  for name in ("width", "depth", "num_heads", "mlp_dim", "patch_size"):
    if spec[name] < 1:
      where = (f"model.{name}" if config.model.get(name) is not None else
               f"model.variant={config.model.variant!r} (its {name})")
      raise ConfigError(f"{where} is {spec[name]}: a ViT needs {name} >= 1")
  if config.mae.decoder_depth < 1:
    raise ConfigError(f"mae.decoder_depth={config.mae.decoder_depth} is invalid: use at least "
                      "1 block (the paper's ablation spans 1 to 12; 8 is its default)")
  size, patch = config.input.image_size, spec["patch_size"]
  if spec["width"] % spec["num_heads"]:
    raise ConfigError(f"model width {spec['width']} is not divisible by num_heads "
                      f"{spec['num_heads']}: change model.num_heads")
  if size % patch:
    raise ConfigError(f"input.image_size {size} is not divisible by patch_size {patch}: "
                      "change input.image_size or model.variant")
  ratio = config.mae.mask_ratio
  if not 0 < ratio < 1:
    raise ConfigError(f"mae.mask_ratio={ratio} is outside (0, 1) (the loss is on masked "
                      "patches only): use e.g. 0.75")
  length = (size // patch) ** 2
  visible = int(length * (1 - ratio))
  if visible < 1 or visible >= length:
    what = "no visible patch" if visible < 1 else "no masked patch"
    raise ConfigError(f"mae.mask_ratio={ratio} leaves {what} of the {length} patches of "
                      f"{size}px images at patch_size {patch}: change mae.mask_ratio, "
                      "input.image_size or model.variant")
  width, heads = config.mae.decoder_width, config.mae.decoder_heads
  if width <= 0 or heads <= 0 or width % heads:
    raise ConfigError(f"mae.decoder_width={width} is not a positive multiple of "
                      f"mae.decoder_heads={heads}: change either")
  targets.validate(config)


def finetune_encoder(config):
  """The encoder fine-tuning takes: the ViT under `params["encoder"]`, as its spec."""
  return {"kind": "vit", "part": "encoder", "vit": vit.spec_from_config(config.model)}


TORCH_WRAPPER_KEY = "model"  # the official files keep their weights under checkpoint["model"]


def torch_parts(config):
  """Encoder (required) and decoder (optional: `mae_pretrain_vit_*.pth` hold the encoder only;
  `mae_visualize_vit_large.pth` has the decoder too), both in timm's ViT layout."""
  if config.mae.encoder_mask_tokens:
    raise ConfigError("mae.encoder_mask_tokens=True (the BERT-style variant) has no PyTorch "
                      "layout: convert models with mae.encoder_mask_tokens=False")
  if targets.name(config) not in ("pixel", "norm_pixel"):  # the release predicts pixels
    return [("encoder", "vit", True)]
  return [("encoder", "vit", True), ("decoder", "vit", False)]


def describe_model(config):
  return f", decoder {config.mae.decoder_width} x {config.mae.decoder_depth}"
