"""Augmentations as pure JAX functions, vmapped on device with one key per example.

Hosts only read, decode and batch uint8 images; every random transform runs here, so
accelerators never wait on host CPUs and a run is reproducible from its seed.
"""
import functools

import jax
import jax.numpy as jnp

from ssljax.data import resized_crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def standardize(x, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """float [..., H, W, C] in [0, 1] -> standardised per channel."""
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """uint8 [..., H, W, C] -> float32 standardised per channel."""
  return standardize(images.astype(jnp.float32) / 255.0, mean, std)


def denormalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """Inverse of `normalize`, clipped to [0, 1] for display."""
  x = images * jnp.asarray(std, jnp.float32) + jnp.asarray(mean, jnp.float32)
  return jnp.clip(x, 0.0, 1.0)


def eval_view(images, size):
  """uint8 [B, H, W, C] -> normalised float32 [B, size, size, C], no randomness.

  Hosts already hand evaluators their evaluation views at `size` (Resize + CenterCrop,
  `ssljax.data.decode`); images of another size are resized whole.
  """
  x = normalize(images)
  if x.shape[1] != size:
    x = jax.image.resize(x, (x.shape[0], size, size, x.shape[-1]), "linear")
  return x


def random_flip(rng, image):
  """[H, W, C] -> [H, W, C], mirrored left-right with probability 1/2."""
  return jnp.where(jax.random.bernoulli(rng), image[:, ::-1], image)


def crop_flip(key, image, size, *, crop_scale=(0.2, 1.0), flip=True, crop=True, extent=None,
              interpolation="bilinear", ratio=resized_crop.DEFAULT_RATIO, sampler="torchvision",
              antialias=True):
  """Geometric part of a view: float [H, W, C] -> [size, size, C].

  `extent` (h, w): the image is the top-left h x w of `image` (a canvas); default all of it.
  With `crop`, a random resized crop of the whole image (`crop_scale`, `ratio`), its box drawn
  by `sampler` (`resized_crop.SAMPLERS`), resampled with `interpolation` (`antialias`: the
  kernel widened when reducing, `resized_crop.axis_weights`); without, the whole image resized.
  """
  crop_key, flip_key = jax.random.split(key)
  if extent is None:
    if not crop and image.shape[0] == size and image.shape[1] == size:
      return random_flip(flip_key, image) if flip else image
    extent = image.shape[:2]
  box = (resized_crop.SAMPLERS[sampler](crop_key, extent, tuple(crop_scale), tuple(ratio))
         if crop else resized_crop.full_box(extent))
  image = resized_crop.resize_box(image, box, size, interpolation, antialias)
  return random_flip(flip_key, image) if flip else image


def example_keys(rng, count, index=None, total=None):
  """Per-example keys [count]: `split(rng, count)`; for a micro-batch (gradient accumulation)
  holding examples `index` [count] of a batch of `total`, the keys they have in the whole batch,
  so accumulated micro-batches see exactly the randomness of the large batch."""
  if index is None:
    return jax.random.split(rng, count)
  return jax.random.split(rng, total)[index]


def micro_batch(batch, config):
  """`example_keys`' index/total for a method's batch (empty when it is the whole batch)."""
  if "example_index" not in batch:
    return {}
  return {"index": batch["example_index"], "total": config.input.batch_size}


def geometry(batch, config):
  """The crop settings of a method's batch: its images' extents [B, 2] (canvases from
  decoded files; absent for in-memory arrays) and `config.input`'s interpolation, ratio, crop
  sampler and resize antialiasing."""
  return {"extent": batch.get("extent"), "interpolation": config.input.interpolation,
          "ratio": tuple(config.input.crop_ratio), "sampler": config.input.crop_sampler,
          "antialias": config.input.resize_antialias}


def per_example(fn, keys, images, extent):
  """vmap of fn(key, image, extent) over the batch (keys [B], images [B, ...], extent [B, 2]);
  an extent of None (whole images) passes through unbatched."""
  if extent is None:
    return jax.vmap(lambda k, x: fn(k, x, None))(keys, images)
  return jax.vmap(fn)(keys, images, extent)


def crop_flip_batch(rng, images, size, *, index=None, total=None, extent=None, **crop_args):
  """`crop_flip` of every image, one key each: float [B, H, W, C] -> [B, size, size, C] in the
  input's units; `crop_args`: crop_scale, flip, crop, interpolation, ratio, sampler,
  antialias."""
  one = lambda key, image, ext: crop_flip(key, image, size, extent=ext, **crop_args)
  return per_example(one, example_keys(rng, images.shape[0], index, total), images, extent)


def crop_flip_views(rng, images, size, **view_args):
  """MAE's training view: uint8 [B, H, W, C] -> normalised float32 [B, size, size, C].

  Each example gets its own key (`example_keys`), so examples get different crops and the
  same key always gives the same views. `view_args`: see `crop_flip_batch`.
  """
  return standardize(crop_flip_batch(rng, images.astype(jnp.float32) / 255.0, size,
                                     **view_args))


# ---------------------------------------------------------------- photometric ([0, 1] RGB)

def grayscale(image):
  """[H, W, 3] -> [H, W, 3] luma (ITU-R 601-2, as PIL/torchvision) in every channel."""
  gray = image @ jnp.asarray([0.299, 0.587, 0.114], image.dtype)
  return jnp.repeat(gray[..., None], 3, axis=-1)


def rgb_to_hsv(image):
  """[..., 3] RGB in [0, 1] -> HSV, each in [0, 1]."""
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  maxc, minc = image.max(-1), image.min(-1)
  delta = maxc - minc
  safe = jnp.where(delta > 0, delta, 1.0)
  sat = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  hue = jnp.where(maxc == r, (g - b) / safe,
                  jnp.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
  hue = jnp.where(delta > 0, (hue / 6.0) % 1.0, 0.0)
  return jnp.stack([hue, sat, maxc], axis=-1)


def hsv_to_rgb(image):
  """Inverse of `rgb_to_hsv`."""
  h, s, v = image[..., 0], image[..., 1], image[..., 2]
  k = lambda n: (n + h * 6.0) % 6.0
  f = lambda n: v - v * s * jnp.clip(jnp.minimum(k(n), 4.0 - k(n)), 0.0, 1.0)
  return jnp.stack([f(5.0), f(3.0), f(1.0)], axis=-1)


def adjust_brightness(image, factor):
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
  mean = grayscale(image)[..., 0].mean()
  return jnp.clip((image - mean) * factor + mean, 0.0, 1.0)


def adjust_saturation(image, factor):
  gray = grayscale(image)
  return jnp.clip((image - gray) * factor + gray, 0.0, 1.0)


def adjust_hue(image, shift):
  hsv = rgb_to_hsv(image)
  return hsv_to_rgb(hsv.at[..., 0].set((hsv[..., 0] + shift) % 1.0))


def adjust_brightness_additive(image, delta):
  """BYOL's release: x + delta, clipped to [0, 1]."""
  return jnp.clip(image + delta, 0.0, 1.0)


def adjust_contrast_per_channel(image, factor):
  """TensorFlow's adjust_contrast: [..., H, W, C], each channel scaled around its own mean over
  the image, clipped to [0, 1]."""
  mean = image.mean(axis=(-3, -2), keepdims=True)
  return jnp.clip((image - mean) * factor + mean, 0.0, 1.0)


def adjust_saturation_hsv(image, factor):
  """TensorFlow's adjust_saturation: the HSV saturation times `factor`, clipped to [0, 1]."""
  hsv = rgb_to_hsv(image)
  return hsv_to_rgb(hsv.at[..., 1].set(jnp.clip(hsv[..., 1] * factor, 0.0, 1.0)))


# Brightness, contrast and saturation ops of each colour-jitter semantics
# (`sections.COLOR_JITTER_IMPLS`); hue is the same HSV rotation in all three. torchvision's
# ColorJitter: contrast around the luma mean, saturation a blend with the grayscale image. The
# TF releases: per-channel contrast and HSV saturation (tf.image), brightness x * f in SimCLR
# ("tf_scaled"; tf2/data_util.py, impl "simclrv2") and x + delta in BYOL ("tf_additive";
# byol/utils/augmentations.py).
COLOR_JITTER_OPS = {
    "torchvision": (adjust_brightness, adjust_contrast, adjust_saturation),
    "tf_additive": (adjust_brightness_additive, adjust_contrast_per_channel,
                    adjust_saturation_hsv),
    "tf_scaled": (adjust_brightness, adjust_contrast_per_channel, adjust_saturation_hsv),
}


def color_jitter(key, image, strength=(0.4, 0.4, 0.4, 0.1), impl="torchvision"):
  """ColorJitter(brightness, contrast, saturation, hue) with the ops of `impl`
  (`COLOR_JITTER_OPS`): factors uniform in [1-s, 1+s] (BYOL's brightness shift and the hue
  shift in [-s, s]), the four ops in an order drawn from `key` (one per example), each
  clipped to [0, 1]."""
  b, c, s, h = strength
  brightness, contrast, saturation = COLOR_JITTER_OPS[impl]
  keys = jax.random.split(key, 5)
  low, high = (-b, b) if impl == "tf_additive" else (1 - b, 1 + b)
  factors = [jax.random.uniform(keys[0], (), minval=low, maxval=high),
             jax.random.uniform(keys[1], (), minval=1 - c, maxval=1 + c),
             jax.random.uniform(keys[2], (), minval=1 - s, maxval=1 + s),
             jax.random.uniform(keys[3], (), minval=-h, maxval=h)]
  ops = [lambda x: brightness(x, factors[0]), lambda x: contrast(x, factors[1]),
         lambda x: saturation(x, factors[2]), lambda x: adjust_hue(x, factors[3])]
  for index in jax.random.permutation(keys[4], 4):
    image = jax.lax.switch(index, ops, image)
  return image


def gaussian_blur(key, image, sigma_range=(0.1, 2.0), kernel_fraction=0.1):
  """Separable Gaussian blur with sigma uniform in `sigma_range`; kernel ~10% of the side."""
  sigma = jax.random.uniform(key, (), minval=sigma_range[0], maxval=sigma_range[1])
  radius = max(int(image.shape[0] * kernel_fraction) // 2, 1)
  offsets = jnp.arange(-radius, radius + 1, dtype=image.dtype)
  kernel = jnp.exp(-0.5 * (offsets / sigma) ** 2)
  kernel = kernel / kernel.sum()
  padded = jnp.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
  rows = sum(kernel[i] * padded[i:i + image.shape[0]] for i in range(2 * radius + 1))
  return sum(kernel[i] * rows[:, i:i + image.shape[1]] for i in range(2 * radius + 1))


def solarize(image, threshold=0.5):
  """[H, W, C] in [0, 1] -> values at or above `threshold` inverted (1 - x).

  BYOL's threshold 0.5 on floats; MoCo v3's PIL `ImageOps.solarize` inverts uint8 values
  >= 128, i.e. the floats that round to them, x >= 127.5 / 255 = 0.5: the same threshold."""
  return jnp.where(image >= threshold, 1.0 - image, image)


def view_prob(prob, view):
  """A probability for view `view`: `prob` itself, or its entry `view` when one per view."""
  return prob[view] if isinstance(prob, (tuple, list)) else prob


def _maybe(key, prob, fn, image):
  apply_key, op_key = jax.random.split(key)
  if prob <= 0:
    return image
  return jnp.where(jax.random.uniform(apply_key) < prob, fn(op_key, image), image)


def siamese_views(rng, images, size, aug, index=None, total=None, **geometry_args):
  """Two independent views of each image, the SimSiam/BYOL/MoCo recipe.

  uint8 [B, H, W, 3] -> two normalised float32 [B, size, size, 3]: random resized crop
  (`aug.crop_scale`), flip, color jitter (`aug.color_jitter` with prob `aug.color_jitter_prob`,
  semantics `aug.color_jitter_impl`), grayscale (`aug.grayscale_prob`), Gaussian blur
  (`aug.blur_prob`), solarize (`aug.solarize_prob`), normalisation. Blur and solarize
  probabilities are one for all views or one per view (BYOL's and MoCo v3's asymmetric views:
  blur (1.0, 0.1), solarize (0.0, 0.2)).
  """
  return tuple(augmented_views(rng, images, size, aug, 2, index=index, total=total,
                               **geometry_args))


def augmented_views(rng, images, size, aug, count, crop_scale=None, index=None, total=None,
                    extent=None, interpolation="bilinear", ratio=resized_crop.DEFAULT_RATIO,
                    sampler="torchvision", antialias=True, first_view=0):
  """`count` independent views [B, size, size, 3] of each image, as `siamese_views`, with
  `crop_scale` replacing `aug.crop_scale` (SwAV's small multi-crops); `extent` [B, 2],
  `interpolation`, `ratio`, `sampler`, `antialias`: see `crop_flip`. The views are views
  `first_view`, `first_view + 1`, ... of the method (the index into per-view probabilities).
  All views come from the one decoded image."""
  scale = tuple(crop_scale or aug.crop_scale)

  def one(key, image, ext, view):
    # split(key, 5)'s first four keys are split(key, 4)'s (partitionable threefry), so the
    # solarize key left every other draw as it was before solarize existed.
    geo_key, jitter_key, gray_key, blur_key, solarize_key = jax.random.split(key, 5)
    image = crop_flip(geo_key, image, size, crop_scale=scale, flip=aug.flip, crop=aug.crop,
                      extent=ext, interpolation=interpolation, ratio=ratio, sampler=sampler,
                      antialias=antialias)
    image = _maybe(jitter_key, aug.color_jitter_prob,
                   lambda k, x: color_jitter(k, x, tuple(aug.color_jitter),
                                             aug.color_jitter_impl), image)
    image = _maybe(gray_key, aug.grayscale_prob, lambda _, x: grayscale(x), image)
    image = _maybe(blur_key, view_prob(aug.blur_prob, view), gaussian_blur, image)
    image = _maybe(solarize_key, view_prob(aug.solarize_prob, view),
                   lambda _, x: solarize(x), image)
    return standardize(image)

  x = images.astype(jnp.float32) / 255.0
  views = []
  for view, k in enumerate(jax.random.split(rng, count), start=first_view):
    views.append(per_example(functools.partial(one, view=view),
                             example_keys(k, images.shape[0], index, total), x, extent))
  return views
