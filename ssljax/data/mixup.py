"""Mixup and CutMix with label smoothing on device, per group of images (timm's `Mixup` in
`mode='batch'`, MAE fine-tuning, which runs it on each GPU's batch of 32).

With probability `prob` a group is mixed with its reverse (example i with example G-1-i of the
same group): CutMix (with probability `switch_prob` when both are on) pastes a box of the
partner image whose area is 1 - lam, lam ~ Beta(cutmix_alpha, cutmix_alpha), and lam is
corrected to the box's clipped area; Mixup blends the images as lam * x + (1 - lam) * partner,
lam ~ Beta(mixup_alpha, mixup_alpha). The targets are the same blend of the label-smoothed
one-hot labels (on-value 1 - smoothing + smoothing / K, off-value smoothing / K), so each row
sums to 1. Every group draws its own lam, choice and box; one group is the whole batch.
"""
import jax
import jax.numpy as jnp


def smooth_one_hot(labels, num_classes, smoothing):
  """int [B] -> float32 [B, K] one-hot with `smoothing` spread uniformly over the classes."""
  off = smoothing / num_classes
  return jax.nn.one_hot(labels, num_classes) * (1.0 - smoothing) + off


def cutmix_box(key, height, width, lam):
  """Box (top, bottom, left, right) of area about (1 - lam) * H * W, centred uniformly,
  clipped to the image (timm's `rand_bbox`)."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h, cut_w = (height * ratio).astype(jnp.int32), (width * ratio).astype(jnp.int32)
  cy_key, cx_key = jax.random.split(key)
  cy = jax.random.randint(cy_key, (), 0, height)
  cx = jax.random.randint(cx_key, (), 0, width)
  top, bottom = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
  left, right = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
  return top, bottom, left, right


def _mix_group(key, images, targets, *, mixup_alpha, cutmix_alpha, prob, switch_prob):
  """One group: images [G, H, W, C], targets [G, K] -> (mixed, mixed targets, lam)."""
  apply_key, switch_key, mixup_key, cutmix_key, box_key = jax.random.split(key, 5)
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.bernoulli(switch_key, switch_prob)
  else:
    use_cutmix = jnp.asarray(cutmix_alpha > 0)
  beta = lambda key, alpha: jax.random.beta(key, alpha, alpha) if alpha > 0 else 1.0
  lam_mixup, lam_cutmix = beta(mixup_key, mixup_alpha), beta(cutmix_key, cutmix_alpha)
  lam = jnp.where(use_cutmix, lam_cutmix, lam_mixup)
  lam = jnp.where(jax.random.bernoulli(apply_key, prob), lam, 1.0)

  _, h, w, _ = images.shape
  partner = images[::-1]
  top, bottom, left, right = cutmix_box(box_key, h, w, lam)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  in_box = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # [H, W]
  box_lam = 1.0 - in_box.sum() / (h * w)
  cut = jnp.where(in_box[None, :, :, None], partner, images)
  blend = lam * images + (1.0 - lam) * partner
  mixed = jnp.where(use_cutmix, cut, blend)
  lam = jnp.where(use_cutmix & (lam < 1.0), box_lam, lam)
  return mixed, lam * targets + (1.0 - lam) * targets[::-1], lam


def mix_batch(key, images, labels, num_classes, *, mixup_alpha=0.8, cutmix_alpha=1.0,
              prob=1.0, switch_prob=0.5, smoothing=0.1, group_size=None):
  """(images [B, H, W, C], labels int [B]) -> (mixed images, soft targets [B, K], lam).

  `group_size` G (dividing B): consecutive groups of G images mix independently, lam [B / G];
  None: the whole batch is one group, lam a scalar. `mixup_alpha=0` or `cutmix_alpha=0` turns
  that one off; `prob=0` only smooths the labels.
  """
  targets = smooth_one_hot(labels, num_classes, smoothing)
  b = images.shape[0]
  groups = 1 if group_size is None else b // group_size
  if prob <= 0 or (mixup_alpha <= 0 and cutmix_alpha <= 0):
    return images, targets, jnp.ones(() if group_size is None else (groups,))
  mix = lambda k, x, t: _mix_group(k, x, t, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                                   prob=prob, switch_prob=switch_prob)
  if group_size is None:
    return mix(key, images, targets)
  if b % group_size:
    raise ValueError(f"batch of {b} images is not divisible by mixup group_size {group_size}")
  keys = key[None] if groups == 1 else jax.random.split(key, groups)  # one group: the batch's
  split = lambda x: x.reshape((groups, group_size) + x.shape[1:])
  mixed, mixed_targets, lam = jax.vmap(mix)(keys, split(images), split(targets))
  return mixed.reshape(images.shape), mixed_targets.reshape(targets.shape), lam
