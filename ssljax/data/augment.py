"""Augmentations as pure JAX functions, vmapped on device with one key per example.

Hosts only read, decode and batch uint8 images; every random transform runs here, so
accelerators never wait on host CPUs and a run is reproducible from its seed.
"""
import jax
import jax.numpy as jnp

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """uint8 [..., H, W, C] -> float32 standardised per channel."""
  x = images.astype(jnp.float32) / 255.0
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def denormalize(images, mean=IMAGENET_MEAN, std=IMAGENET_STD):
  """Inverse of `normalize`, clipped to [0, 1] for display."""
  x = images * jnp.asarray(std, jnp.float32) + jnp.asarray(mean, jnp.float32)
  return jnp.clip(x, 0.0, 1.0)


def sample_crop_box(rng, height, width, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
  """Random-resized-crop box (top, left, h, w) in pixels, float32 scalars.

  Area fraction is uniform in `scale`, aspect ratio log-uniform in `ratio` (Inception crop);
  a box larger than the image is clipped to it instead of re-sampled.
  """
  area_key, ratio_key, top_key, left_key = jax.random.split(rng, 4)
  area = height * width * jax.random.uniform(area_key, (), minval=scale[0], maxval=scale[1])
  log_ratio = jax.random.uniform(ratio_key, (), minval=jnp.log(ratio[0]),
                                 maxval=jnp.log(ratio[1]))
  aspect = jnp.exp(log_ratio)
  crop_w = jnp.clip(jnp.sqrt(area * aspect), 1.0, width)
  crop_h = jnp.clip(jnp.sqrt(area / aspect), 1.0, height)
  top = jax.random.uniform(top_key, ()) * (height - crop_h)
  left = jax.random.uniform(left_key, ()) * (width - crop_w)
  return top, left, crop_h, crop_w


def crop_and_resize(image, box, size):
  """[H, W, C] float image, box (top, left, h, w) -> [size, size, C] (bilinear, antialiased)."""
  top, left, crop_h, crop_w = box
  scale = jnp.stack([size / crop_h, size / crop_w])
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(
      image, (size, size, image.shape[-1]), (0, 1), scale, translation, method="linear",
      antialias=True)


def random_resized_crop(rng, image, size, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
  """[H, W, C] -> [size, size, C] random resized crop of one image."""
  box = sample_crop_box(rng, image.shape[0], image.shape[1], scale, ratio)
  return crop_and_resize(image, box, size)


def random_flip(rng, image):
  """[H, W, C] -> [H, W, C], mirrored left-right with probability 1/2."""
  return jnp.where(jax.random.bernoulli(rng), image[:, ::-1], image)


def crop_flip_views(rng, images, size, *, crop_scale=(0.2, 1.0), flip=True, crop=True):
  """MAE's training view: uint8 [B, H, W, C] -> normalised float32 [B, size, size, C].

  Each example gets its own key (split from `rng`), so examples get different crops and the
  same key always gives the same views.
  """
  x = normalize(images)

  def one(key, image):
    crop_key, flip_key = jax.random.split(key)
    if crop:
      image = random_resized_crop(crop_key, image, size, tuple(crop_scale))
    elif image.shape[0] != size:
      image = jax.image.resize(image, (size, size, image.shape[-1]), "linear")
    return random_flip(flip_key, image) if flip else image

  return jax.vmap(one)(jax.random.split(rng, images.shape[0]), x)
