"""Masked autoencoder (He et al., 2022) as pure functions.

The encoder sees only the visible ~25% of patches; a small decoder gets the encoded visible
tokens plus mask tokens for all patches and predicts pixels; the loss is the MSE on masked
patches only, optionally against per-patch normalised pixels (`norm_pix_loss`).
"""
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections.config_dict import placeholder
import numpy as np

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.models import attention, patches, vit


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
      patch_size=spec["patch_size"], dtype=dtype, remat=config.model.remat,
      attention_impl=impl)
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


def patch_targets(images, patch_size, norm_pix_loss):
  """[B, H, W, C] -> [B, L, p*p*C] targets; per-patch standardised if `norm_pix_loss`.

  As in the official release the variance is the unbiased one, with eps 1e-6.
  """
  target = patches.patchify(images.astype(jnp.float32), patch_size)
  if norm_pix_loss:
    mean, std = patch_mean_std(target)
    target = (target - mean) / std
  return target


def patch_mean_std(patch_pixels):
  """[B, L, P] -> per-patch mean and std, [B, L, 1] each (unbiased variance + 1e-6)."""
  mean = patch_pixels.mean(axis=-1, keepdims=True)
  return mean, jnp.sqrt(patch_pixels.var(axis=-1, keepdims=True, ddof=1) + 1e-6)


def masked_mse(pred, target, mask):
  """Mean over masked patches of the per-patch MSE; visible patches do not count."""
  per_patch = jnp.mean((pred.astype(jnp.float32) - target) ** 2, axis=-1)
  return jnp.sum(per_patch * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def forward(config, params, images, rng=None, noise=None, mask_ratio=None, micro=None):
  """Normalised images [B, H, W, C] -> (pred [B, L, p*p*C], mask [B, L]).

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


def _views(config, rng, batch, micro):
  return augment.crop_flip_views(rng, batch["image"], config.input.image_size,
                                 crop_scale=config.aug.crop_scale, flip=config.aug.flip,
                                 crop=config.aug.crop, **micro,
                                 **augment.geometry(batch, config))


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] [B, H, W, C] -> (loss, (state, metrics)); MAE has no extra state."""
  aug_key, mask_key = jax.random.split(rng)
  micro = augment.micro_batch(batch, config)
  images = _views(config, aug_key, batch, micro)
  pred, mask = forward(config, params, images, mask_key, micro=micro)
  p = vit.spec_from_config(config.model)["patch_size"]
  value = masked_mse(pred, patch_targets(images, p, config.mae.norm_pix_loss), mask)
  return value, (state, {"loss": value})


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
  with the visible patches pasted back). With `norm_pix_loss` the predictions are standardised
  per patch, so they are shown with each patch's true mean and standard deviation restored.
  """
  size = config.input.image_size
  p = vit.spec_from_config(config.model)["patch_size"]
  x = augment.eval_view(images, size)
  pred, mask = forward(config, variables["params"], x, rng, noise, mask_ratio)
  pred = pred.astype(jnp.float32)
  if config.mae.norm_pix_loss:
    mean, std = patch_mean_std(patches.patchify(x, p))
    pred = pred * std + mean
  pixel_mask = patches.unpatchify(jnp.broadcast_to(mask[..., None], pred.shape), p)
  recon = patches.unpatchify(pred, p)
  show = augment.denormalize
  return {
      "original": show(x),
      "masked": show(x) * (1 - pixel_mask) + 0.5 * pixel_mask,
      "reconstruction": show(recon),
      "pasted": show(x * (1 - pixel_mask) + recon * pixel_mask),
  }


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
             + flops.dense(c.decoder_width, spec["patch_size"] ** 2 * 3, 1 + length))
  return 3 * (flops.vit_forward(spec, config.input.image_size, kept_patches=kept) + decoder)


def default_config():
  """`config.mae` with the paper's defaults (ViT-L recipe): 75% masking, 8 x 512 decoder."""
  return ml_collections.ConfigDict(dict(
      mask_ratio=0.75, norm_pix_loss=True, encoder_mask_tokens=False,
      decoder_width=512, decoder_depth=8, decoder_heads=16, decoder_mlp_ratio=4.0))


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
  return [("encoder", "vit", True), ("decoder", "vit", False)]


def describe_model(config):
  return f", decoder {config.mae.decoder_width} x {config.mae.decoder_depth}"
