"""Random erasing (Zhong et al. 2020) on device, timm's `RandomErasing(mode="pixel")` as in
MAE's fine-tuning recipe (`--reprob 0.25`).

With probability `prob` a box of area fraction U(1/50, 1/3) and log-uniform aspect ratio in
(0.3, 1/0.3) is filled with per-pixel standard-normal noise (the image is already normalised).
If the sampled box does not fit, timm retries up to 10 times; here the box is clipped to fit.
"""
import jax
import jax.numpy as jnp


def random_erase(key, image, prob=0.25, area=(0.02, 1 / 3), log_ratio=(-1.204, 1.204)):
  """[H, W, C] normalised float -> [H, W, C] with at most one box of noise."""
  h, w, c = image.shape
  apply_key, area_key, ratio_key, top_key, left_key, noise_key = jax.random.split(key, 6)
  target = h * w * jax.random.uniform(area_key, (), minval=area[0], maxval=area[1])
  aspect = jnp.exp(jax.random.uniform(ratio_key, (), minval=log_ratio[0], maxval=log_ratio[1]))
  box_h = jnp.clip(jnp.round(jnp.sqrt(target * aspect)), 1, h).astype(jnp.int32)
  box_w = jnp.clip(jnp.round(jnp.sqrt(target / aspect)), 1, w).astype(jnp.int32)
  top = jax.random.randint(top_key, (), 0, h - box_h + 1)
  left = jax.random.randint(left_key, (), 0, w - box_w + 1)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  in_box = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
  noise = jax.random.normal(noise_key, (h, w, c), image.dtype)
  erased = jnp.where(in_box[..., None], noise, image)
  return jnp.where(jax.random.bernoulli(apply_key, prob), erased, image)
