"""Random erasing (Zhong et al. 2020) on device, timm's `RandomErasing(mode="pixel")` as in
MAE's fine-tuning recipe (`--reprob 0.25`).

With probability `prob` a box of area fraction U(1/50, 1/3) and log-uniform aspect ratio in
(0.3, 1/0.3) is filled with per-pixel standard-normal noise (the image is already normalised).
As in timm, up to `attempts` (area, aspect) draws are made and the first box strictly smaller
than the image in both sides is used; if none is, the image stays as it is.
"""
import jax
import jax.numpy as jnp


def random_erase(key, image, prob=0.25, area=(0.02, 1 / 3), log_ratio=(-1.204, 1.204),
                 attempts=10):
  """[H, W, C] normalised float -> [H, W, C] with at most one box of noise."""
  h, w, c = image.shape
  apply_key, area_key, ratio_key, top_key, left_key, noise_key = jax.random.split(key, 6)
  target = h * w * jax.random.uniform(area_key, (attempts,), minval=area[0], maxval=area[1])
  aspect = jnp.exp(jax.random.uniform(ratio_key, (attempts,), minval=log_ratio[0],
                                      maxval=log_ratio[1]))
  heights = jnp.round(jnp.sqrt(target * aspect)).astype(jnp.int32)  # [attempts]
  widths = jnp.round(jnp.sqrt(target / aspect)).astype(jnp.int32)
  fits = (heights < h) & (widths < w)
  first = jnp.argmax(fits)  # the first draw that fits (0 when none does)
  box_h, box_w = heights[first], widths[first]
  top = jax.random.randint(top_key, (), 0, h - box_h + 1)
  left = jax.random.randint(left_key, (), 0, w - box_w + 1)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  in_box = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
  noise = jax.random.normal(noise_key, (h, w, c), image.dtype)
  erased = jnp.where(in_box[..., None], noise, image)
  return jnp.where(jax.random.bernoulli(apply_key, prob) & fits.any(), erased, image)
