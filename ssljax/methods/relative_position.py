"""Relative patch position (Doersch, Gupta & Efros, ICCV 2015) as pure functions.

From each image, a 3x3 grid of `patch_size` patches with `gap` pixels between neighbours, each
patch moved by its own random jitter of up to `jitter` pixels per axis, the grid placed at a
random position so that every patch stays inside the image. The centre patch and one of its 8
neighbours, drawn uniformly, go through the same encoder (one batch of 2B patches); their
pooled features, concatenated (centre first), go to a classifier head that predicts which of
the 8 positions the neighbour is in (labels row-major over the grid, the centre left out:
0 1 2 / 3 . 4 / 5 6 7). Loss: 8-way cross-entropy; metric: `position_accuracy`.

Sizes. The paper samples 96 px patches, 48 px gaps and up to 7 px jitter from images resized
to 150K-450K pixels, so its grid (384 px) spans most of the image. The configs keep that
proportion and the paper's gap of half a patch where the pixels allow:
  224 px (configs/relative_position_r50.py): patch 52, gap 26, jitter 4 (the paper's
     7/96 of a patch); the grid spans 208 of 224 px;
  32 px (CIFAR-10): patch 7, gap 3, jitter 1, the grid spans 27 of 32 px; smaller gaps leave
     low-level continuity across patch borders, larger patches leave no room for jitter.
`gap >= 2 * jitter` is required (two jittered neighbours never overlap) and `3 * patch_size +
2 * gap + 2 * jitter <= input.image_size` (every patch inside the image).

Chromatic aberration (`relative_position.chroma`): the paper found the network locating
patches by the colour fringes lenses leave away from the image centre and tried two remedies,
both here: "project" multiplies every pixel by B = I - a^T a / (a a^T) with
a = [-1, 2, -1], removing the green-magenta axis; it is a fixed transform, so `encode` applies
it too and the evaluated encoder sees what it was trained on. "drop" (the default: the release's only remedy, `train.py`) keeps one random colour
channel of each patch and replaces the other two with Gaussian noise of 1/100 of the kept
channel's standard deviation (the encoder is then evaluated on colour images, as in the
paper). "none" leaves colours as they are.

Patch statistics, as the release's `prep_image`: with probability `downsample_prob` (0.33) a
patch is shrunk to a random side whose area is uniform between (10/96)^2 and (95/96)^2 of the
patch's, and resized back (`downsample`), so that fine texture is not a reliable cue; then
(`patch_norm="rms"`) each patch has its channel means removed and is divided by its RMS, so
that its mean and contrast are no cue either (the release scales to RMS 50, AlexNet's input
scale; here RMS 1, the scale of the standardised images the encoder is evaluated on).

Deviations (docs/fidelity.md): any `siamese.build_backbone` encoder (ResNet, or a ViT whose
patch size divides `patch_size`) instead of the paper's AlexNet-style towers, with a
`head_layers` MLP (Linear + BN + ReLU) in place of its fc7, fc8, fc9 (3 layers); the projection
acts on standardised pixels; the image is first cut and resized to `input.image_size`
(`aug.crop`, `aug.flip`; the CIFAR config uses the whole image).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import pretext, siamese

# The 8 neighbours' grid cells (row, column), in label order; the centre is (1, 1).
NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))
CENTRE = (1, 1)
CHROMA = ("project", "drop", "none")
PATCH_NORMS = ("rms", "none")
# The release's down-sampled areas, in pixels of its 96 px patch: uniform in [10^2, 95^2].
DOWNSAMPLE_AREA = (10 / 96) ** 2, (95 / 96) ** 2
GREEN_MAGENTA = (-1.0, 2.0, -1.0)


def grid_extent(patch, gap):
  """Side of the un-jittered 3x3 grid, in pixels."""
  return 3 * patch + 2 * gap


def patch_corners(origin, jitter, patch, gap):
  """origin [2] (the un-jittered grid's top-left pixel) and jitter [3, 3, 2] -> top-left
  (row, column) [3, 3, 2] of each patch of the grid."""
  cells = jnp.arange(3) * (patch + gap)
  grid = jnp.stack(jnp.meshgrid(cells, cells, indexing="ij"), axis=-1)
  return jnp.asarray(origin) + grid + jitter


def sample_corners(key, size, patch, gap, jitter):
  """Random grid position and per-patch jitter in [-jitter, jitter] -> corners [3, 3, 2] of
  patches inside a `size`-pixel square image."""
  origin_key, jitter_key = jax.random.split(key)
  slack = size - grid_extent(patch, gap) - 2 * jitter
  origin = jitter + jax.random.randint(origin_key, (2,), 0, slack + 1)
  offsets = jax.random.randint(jitter_key, (3, 3, 2), -jitter, jitter + 1)
  return patch_corners(origin, offsets, patch, gap)


def cut(image, corner, patch):
  """[H, W, C] -> the [patch, patch, C] patch whose top-left pixel is `corner` (row, column)."""
  return jax.lax.dynamic_slice(image, (corner[0], corner[1], 0),
                               (patch, patch, image.shape[-1]))


def sample_pair(key, image, patch, gap, jitter):
  """[S, S, C] -> (centre [patch, patch, C], neighbour [patch, patch, C], label int32 in
  [0, 8), corners [3, 3, 2]): the neighbour is the patch at grid cell NEIGHBOURS[label]."""
  corner_key, label_key = jax.random.split(key)
  corners = sample_corners(corner_key, image.shape[0], patch, gap, jitter)
  label = jax.random.randint(label_key, (), 0, len(NEIGHBOURS))
  row, col = jnp.asarray(NEIGHBOURS)[label]
  return (cut(image, corners[CENTRE], patch), cut(image, corners[row, col], patch), label,
          corners)


def project_out_green_magenta(x):
  """[..., 3] -> [..., 3] times B = I - a^T a / (a a^T), a = GREEN_MAGENTA."""
  a = jnp.asarray(GREEN_MAGENTA)
  return x @ (jnp.eye(3) - jnp.outer(a, a) / jnp.dot(a, a))


def drop_colours(key, patch):
  """[p, p, 3] -> one random channel kept, the other two Gaussian noise of 1/100 of its std."""
  keep_key, noise_key = jax.random.split(key)
  keep = jax.random.randint(keep_key, (), 0, 3)
  kept = jnp.take(patch, keep, axis=-1)
  noise = jax.random.normal(noise_key, patch.shape) * jnp.std(kept) / 100
  return jnp.where(jnp.arange(3) == keep, patch, noise)


def chroma_transform(chroma, key, patches):
  """`relative_position.chroma` on patches [N, p, p, 3] (standardised)."""
  if chroma == "project":
    return project_out_green_magenta(patches)
  if chroma == "drop":
    return jax.vmap(drop_colours)(jax.random.split(key, patches.shape[0]), patches)
  return patches


def _triangle_weights(positions, count, width):
  """[M] sample positions (continuous pixel coordinates) -> [M, count] weights of a linear
  kernel `width` pixels wide over pixels 0..count-1 (centres at i + 0.5), each row summing
  to 1 over the pixels it reaches."""
  centres = jnp.arange(count) + 0.5
  weights = jnp.maximum(0.0, 1.0 - jnp.abs(centres[None] - positions[:, None]) / width)
  return weights / jnp.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


def down_up_matrix(small, side):
  """[side, side] R such that R @ x @ R.T shrinks a side x side image x to small x small
  pixels (bilinear, antialiased; `small` an integer in [1, side]) and stretches it back."""
  rows = jnp.arange(side)
  down = _triangle_weights((rows + 0.5) * side / small, side, side / small)  # [side, side]
  down = down * (rows < small)[:, None]  # rows >= small do not exist in the small image
  up = _triangle_weights((rows + 0.5) * small / side, side, 1.0)
  up = up * (rows < small)[None, :]
  up = up / up.sum(axis=1, keepdims=True)  # the edge reads the last small pixel only
  return up @ down


def downsample(key, patch, prob):
  """[p, p, C] -> with probability `prob`, the patch shrunk to a side of round(sqrt(U) * p)
  pixels (at least 1), U uniform in DOWNSAMPLE_AREA, then resized back to p."""
  apply_key, area_key = jax.random.split(key)
  side = patch.shape[0]
  area = jax.random.uniform(area_key, (), minval=DOWNSAMPLE_AREA[0], maxval=DOWNSAMPLE_AREA[1])
  small = jnp.clip(jnp.round(jnp.sqrt(area) * side), 1, side)
  resample = down_up_matrix(small, side)
  restored = jnp.einsum("ij,jkc,lk->ilc", resample, patch, resample)
  return jnp.where(jax.random.uniform(apply_key) < prob, restored, patch)


def rms_normalise(patches):
  """[N, p, p, C] -> each patch minus its channel means, divided by its RMS."""
  centred = patches - jnp.mean(patches, axis=(1, 2), keepdims=True)
  rms = jnp.sqrt(jnp.mean(jnp.square(centred), axis=(1, 2, 3), keepdims=True))
  return centred / jnp.maximum(rms, 1e-6)


def patch_statistics(config, key, patches):
  """`downsample_prob` then `patch_norm` on patches [N, p, p, C]."""
  c = config.relative_position
  if c.downsample_prob > 0:
    patches = jax.vmap(lambda k, x: downsample(k, x, c.downsample_prob))(
        jax.random.split(key, patches.shape[0]), patches)
  return rms_normalise(patches) if c.patch_norm == "rms" else patches


def pairs(config, rng, batch):
  """uint8 batch["image"] [B, H, W, 3] -> (centres [B, p, p, 3], neighbours [B, p, p, 3],
  labels int32 [B]), standardised, with `chroma` and the patch statistics applied."""
  c = config.relative_position
  view_key, pair_key, chroma_key, stats_key = jax.random.split(rng, 4)
  images = pretext.training_images(config, view_key, batch)
  keys = augment.example_keys(pair_key, images.shape[0], **augment.micro_batch(batch, config))
  centres, neighbours, labels, _ = jax.vmap(
      lambda k, x: sample_pair(k, x, c.patch_size, c.gap, c.jitter))(keys, images)
  both = chroma_transform(c.chroma, chroma_key, jnp.concatenate([centres, neighbours]))
  both = patch_statistics(config, stats_key, both)
  return both[:len(labels)], both[len(labels):], labels


def _network(config):
  return pretext.build_network(config, config.relative_position, len(NEIGHBOURS))


def init(config, rng, image_shape):
  """{"params": {backbone, head}, "batch_stats": {...}}; the backbone on patches, the head on
  two concatenated features."""
  del image_shape
  side = config.relative_position.patch_size
  return pretext.init_network(_network(config), rng, (1, side, side, 3), head_inputs=2)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"}, metrics)), one pair per image."""
  centres, neighbours, labels = pairs(config, rng, batch)
  # one backbone batch of 2B patches; the head gets [B, 2D], the centre's feature first
  return pretext.classifier_loss(_network(config), params, state,
                                 jnp.concatenate([centres, neighbours]), labels,
                                 "position_accuracy",
                                 lambda f: jnp.concatenate(jnp.split(f, 2), axis=-1))


def encode(config, variables, images):
  """uint8 [B, H, W, 3] -> {"backbone": [B, D]}: the pooled backbone feature of the whole
  image in eval mode (after the green-magenta projection if the encoder was trained with it)."""
  project = config.relative_position.chroma == "project"
  return pretext.encode(config, variables, images,
                        project_out_green_magenta if project else None)


def flops_per_example(config):
  """Two patches per image, forward and backward through the backbone; the head on the pair."""
  backbone, head = pretext.forward_flops(config, config.relative_position,
                                         config.relative_position.patch_size,
                                         len(NEIGHBOURS), head_inputs=2)
  return 3 * (2 * backbone + head)


def default_config():
  """`config.relative_position` at 32 px (see the module docstring for 224 px)."""
  return ml_collections.ConfigDict(dict(patch_size=7, gap=3, jitter=1, chroma="drop",
                                        downsample_prob=0.33, patch_norm="rms",
                                        head_layers=3, head_hidden_dim=512))


def validate(config):
  c, size = config.relative_position, config.input.image_size
  for field, minimum in (("patch_size", 1), ("gap", 0), ("jitter", 0)):
    if not isinstance(c[field], int) or c[field] < minimum:
      raise ConfigError(f"relative_position.{field}={c[field]!r} is invalid: use an integer "
                        f">= {minimum} (pixels)")
  if c.gap < 2 * c.jitter:
    raise ConfigError(f"relative_position.gap={c.gap} is below 2 * jitter={2 * c.jitter}, so "
                      "jittered neighbours can overlap: use a gap >= 2 * jitter or a smaller "
                      "jitter")
  need = grid_extent(c.patch_size, c.gap) + 2 * c.jitter
  if need > size:
    raise ConfigError(f"relative_position.patch_size={c.patch_size} with gap {c.gap} and "
                      f"jitter {c.jitter} needs {need} px (3 * patch + 2 * gap + 2 * jitter), "
                      f"more than input.image_size={size}: use smaller patches or gap")
  if c.chroma not in CHROMA:
    raise ConfigError(f"relative_position.chroma={c.chroma!r} is unknown: use one of "
                      f"{', '.join(CHROMA)}")
  if c.patch_norm not in PATCH_NORMS:
    raise ConfigError(f"relative_position.patch_norm={c.patch_norm!r} is unknown: use one of "
                      f"{', '.join(PATCH_NORMS)}")
  if not isinstance(c.downsample_prob, (int, float)) or not 0 <= c.downsample_prob <= 1:
    raise ConfigError(f"relative_position.downsample_prob={c.downsample_prob!r} is invalid: "
                      "use a probability in [0, 1] (0.33 in the release, 0 turns it off)")
  if not config.model.variant.startswith("resnet"):
    from ssljax.models import vit  # pylint: disable=g-import-not-at-top
    vit_patch = vit.spec_from_config(config.model)["patch_size"]
    if c.patch_size % vit_patch:
      raise ConfigError(f"relative_position.patch_size={c.patch_size} is not divisible by the "
                        f"ViT's patch size {vit_patch}: use a multiple of {vit_patch}")
  pretext.validate_head(config, "relative_position")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
