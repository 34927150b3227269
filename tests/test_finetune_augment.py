"""Fine-tuning augmentations on device: RandAugment ops against PIL, Mixup/CutMix, erasing."""
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image, ImageEnhance, ImageOps
import pytest
from sklearn.datasets import load_sample_images

from conftest import load_config
from ssljax.data import augment, mixup, randaugment, random_erasing


def _image(seed=0, size=16):
  """uint8 [size, size, 3] with smooth structure and every intensity range."""
  rng = np.random.default_rng(seed)
  ramp = np.linspace(0, 200, size)[None, :, None] + np.linspace(0, 55, size)[:, None, None]
  return np.clip(ramp + rng.integers(0, 40, (size, size, 3)), 0, 255).astype(np.uint8)


_jit_affine = jax.jit(randaugment.affine)


def _as_float(image):
  return jnp.asarray(image, jnp.float32) / 255


def _to_uint8(x):
  return np.round(np.asarray(x) * 255).astype(np.uint8)


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("op,pil_op", [
    (randaugment.equalize, ImageOps.equalize),
    (randaugment.autocontrast, ImageOps.autocontrast),
    (lambda x: randaugment.posterize(x, 3), lambda im: ImageOps.posterize(im, 3)),
    (lambda x: randaugment.solarize(x, 128 / 255), lambda im: ImageOps.solarize(im, 128)),
    (lambda x: 1.0 - x, ImageOps.invert),
])
def test_pixel_ops_match_pil(op, pil_op, size):
  image = _image(size=size)
  expected = np.asarray(pil_op(Image.fromarray(image)))
  np.testing.assert_allclose(_to_uint8(op(_as_float(image))).astype(int), expected.astype(int),
                             atol=1)


@pytest.mark.parametrize("factor", [0.3, 1.8])
@pytest.mark.parametrize("op,enhancer", [
    (randaugment.sharpness, ImageEnhance.Sharpness),
    (augment.adjust_saturation, ImageEnhance.Color),
    (augment.adjust_brightness, ImageEnhance.Brightness),
])
def test_enhance_ops_match_pil(op, enhancer, factor):
  image = _image(size=16)
  expected = np.asarray(enhancer(Image.fromarray(image)).enhance(factor))
  np.testing.assert_allclose(_to_uint8(op(_as_float(image), factor)).astype(int),
                             expected.astype(int), atol=2)


def test_geometric_ops_move_pixels_where_they_should():
  x = _as_float(_image(size=15))
  # a quarter turn counter-clockwise is np.rot90, exactly (the sample points are pixel centres)
  np.testing.assert_allclose(randaugment.rotate(x, 90.0), np.rot90(x, 1, axes=(0, 1)),
                             atol=1e-5)
  shifted = randaugment.translate(x, 0.0, 3.0)  # content moves 3 pixels right
  np.testing.assert_allclose(shifted[:, 3:], x[:, :-3], atol=1e-6)
  np.testing.assert_allclose(shifted[:, :3], np.broadcast_to(randaugment.FILL, (15, 3, 3)),
                             atol=1e-6)


_PHOTO = load_sample_images().images[0][100:148, 200:248]  # 48 x 48 of a real photograph
_FILL = (124, 116, 104)  # timm's img_mean
_PIL_AFFINE = lambda im, coefficients: im.transform(im.size, Image.AFFINE, coefficients,
                                                    resample=Image.BICUBIC, fillcolor=_FILL)


@pytest.mark.parametrize("name,matrix,pil_op", [
    # timm's shear_x / shear_y / translate_x_rel: PIL affine coefficients; rotate: img.rotate
    ("ShearX", lambda s: randaugment.shear_x_matrix(0.27, s),
     lambda im: _PIL_AFFINE(im, (1, 0.27, 0, 0, 1, 0))),
    ("ShearX-", lambda s: randaugment.shear_x_matrix(-0.27, s),
     lambda im: _PIL_AFFINE(im, (1, -0.27, 0, 0, 1, 0))),
    ("ShearY", lambda s: randaugment.shear_y_matrix(0.27, s),
     lambda im: _PIL_AFFINE(im, (1, 0, 0, 0.27, 1, 0))),
    ("Rotate", lambda s: randaugment.rotation_matrix(27.0),
     lambda im: im.rotate(27.0, resample=Image.BICUBIC, fillcolor=_FILL)),
    ("TranslateX", lambda s: randaugment.translate_matrix(0.0, -0.405 * s[1]),
     lambda im: _PIL_AFFINE(im, (1, 0, 0.405 * im.size[0], 0, 1, 0))),
])
def test_geometric_ops_match_pil_bicubic_with_fill(name, matrix, pil_op):
  """timm's RandAugment warps with PIL's bicubic transform and the mean fill (MAE passes
  interpolation=bicubic); PIL truncates to uint8, so ours is within one level above it."""
  x = _as_float(_PHOTO)
  ours = np.asarray(_jit_affine(x, matrix(x.shape))) * 255
  theirs = np.asarray(pil_op(Image.fromarray(_PHOTO)), np.float64)
  error = ours - theirs
  assert -0.01 < error.min() and error.max() < 1.01, name
  assert np.abs(error).mean() < 0.6, name


@pytest.mark.parametrize("level,bits", [(0.0, 4), (0.5, 2), (0.74, 2), (0.75, 1), (1.0, 0)])
def test_posterize_increasing_keeps_timms_bits_and_zero_bits_is_black(level, bits):
  """timm: bits = 4 - int(4 * magnitude / 10); ImageOps.posterize keeps value & ~(2^(8-bits)
  - 1), so 0 bits is black (the Pillow of MAE's time; Pillow 10 refuses 0 bits)."""
  photo = _PHOTO[:16, :16]
  out = _to_uint8(randaugment.PIXEL["PosterizeIncreasing"](None, _as_float(photo), level))
  np.testing.assert_array_equal(out, photo & (255 - (2 ** (8 - bits) - 1)))
  if bits:
    np.testing.assert_array_equal(out, np.asarray(ImageOps.posterize(Image.fromarray(photo),
                                                                     bits)))


def test_enhance_ops_are_identity_at_factor_one_and_stay_in_range():
  x = _as_float(_image())
  np.testing.assert_allclose(randaugment.sharpness(x, 1.0), x, atol=1e-6)
  key = jax.random.key(0)
  images = jnp.stack([_as_float(_image(s)) for s in range(8)])
  out = jax.jit(jax.vmap(lambda k, im: randaugment.rand_augment(k, im, 2, 9.0, 0.5)))(
      jax.random.split(key, 8), images)
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  assert not np.allclose(out, images)  # with 8 images x 2 ops at p=0.5, something changed
  never = jax.jit(jax.vmap(lambda k, im: randaugment.rand_augment(k, im, 2, 9.0, 0.5,
                                                                  prob=0.0)))(
      jax.random.split(key, 8), images)
  np.testing.assert_array_equal(never, images)


def test_every_randaugment_op_runs_and_changes_an_image_at_full_magnitude():
  x = _as_float(_image(size=32))  # equalize leaves images of under ~255 pixels as they are
  for name, op in randaugment.OPS.items():
    out = op(jax.random.key(1), x, 1.0)
    assert out.shape == x.shape and bool(jnp.all(jnp.isfinite(out))), name
    assert not np.allclose(out, x, atol=1e-3), name


def _batch(b=8, size=8, classes=5):
  images = jnp.arange(b, dtype=jnp.float32)[:, None, None, None] * jnp.ones((b, size, size, 3))
  return images, jnp.arange(b) % classes, classes


def test_label_smoothing_targets():
  targets = mixup.smooth_one_hot(jnp.array([2]), 5, 0.1)
  np.testing.assert_allclose(targets, [[0.02, 0.02, 0.92, 0.02, 0.02]], rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_mixup_blends_images_and_targets_with_the_same_lambda(seed):
  images, labels, classes = _batch()
  mixed, targets, lam = mixup.mix_batch(jax.random.key(seed), images, labels, classes,
                                        mixup_alpha=0.8, cutmix_alpha=0.0, smoothing=0.1)
  lam = float(lam)
  assert 0 < lam < 1
  np.testing.assert_allclose(mixed, lam * images + (1 - lam) * images[::-1], rtol=1e-6)
  smooth = mixup.smooth_one_hot(labels, classes, 0.1)
  np.testing.assert_allclose(targets, lam * smooth + (1 - lam) * smooth[::-1], rtol=1e-6)
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_pastes_a_box_whose_area_is_one_minus_lambda(seed):
  images, labels, classes = _batch(size=16)
  mixed, targets, lam = mixup.mix_batch(jax.random.key(seed), images, labels, classes,
                                        mixup_alpha=0.0, cutmix_alpha=1.0, smoothing=0.0)
  from_partner = np.asarray(mixed[0, :, :, 0] == images[-1, 0, 0, 0])
  np.testing.assert_allclose(from_partner.mean(), 1 - float(lam), atol=1e-6)
  np.testing.assert_allclose(targets[0, labels[0]] + targets[0, labels[-1]], 1.0, rtol=1e-6)
  np.testing.assert_allclose(targets[0, labels[-1]], 1 - float(lam), atol=1e-6)


_jit_mix = jax.jit(mixup.mix_batch, static_argnums=3, static_argnames=(
    "mixup_alpha", "cutmix_alpha", "prob", "switch_prob", "smoothing", "group_size"))


def test_mixup_groups_draw_their_own_lambda_and_mix_within_the_group():
  """timm's Mixup(mode='batch') on each GPU's 32 images: a lam, a mixup-or-cutmix choice and a
  box per group, partners reversed inside the group."""
  images, labels, classes = _batch(b=32)
  mixed, targets, lam = _jit_mix(jax.random.key(0), images, labels, classes, smoothing=0.0,
                                 group_size=4)
  assert lam.shape == (8,) and len(set(np.round(np.asarray(lam), 6))) == 8
  partner = np.arange(32).reshape(8, 4)[:, ::-1].ravel()  # 3 2 1 0 7 6 5 4 ...
  lam_per_image = np.repeat(np.asarray(lam), 4)
  one_hot = jax.nn.one_hot(labels, classes)
  np.testing.assert_allclose(targets, lam_per_image[:, None] * one_hot
                             + (1 - lam_per_image[:, None]) * one_hot[partner], atol=1e-6)
  # every pixel is the image's own value, its partner's or (mixup) their lam-blend
  own, other = np.arange(32.0)[:, None, None], partner[:, None, None].astype(float)
  pixels = np.asarray(mixed[..., 0])
  blend = lam_per_image[:, None, None] * own + (1 - lam_per_image[:, None, None]) * other
  assert np.all(np.isclose(pixels, own) | np.isclose(pixels, other)
                | np.isclose(pixels, blend, atol=1e-5))
  is_cut = np.isclose(pixels, other).any((1, 2)) & ~np.isclose(pixels, other).all((1, 2))
  assert 0 < is_cut.reshape(8, 4).all(1).sum() < 8  # some groups cut, some blend
  assert load_config("finetune_imagenet").finetune.mixup_group_size == 32  # MAE's per-GPU batch
  assert load_config("finetune_cifar10").finetune.mixup_group_size is None  # one group


def test_one_group_of_the_whole_batch_is_the_ungrouped_mix():
  images, labels, classes = _batch()
  ungrouped = _jit_mix(jax.random.key(2), images, labels, classes, cutmix_alpha=0.0)
  grouped = _jit_mix(jax.random.key(2), images, labels, classes, cutmix_alpha=0.0,
                     group_size=8)
  for a, b in zip(ungrouped[:2], grouped[:2]):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ungrouped[2], grouped[2][0])


def test_no_mixing_when_probability_is_zero():
  images, labels, classes = _batch()
  mixed, targets, _ = mixup.mix_batch(jax.random.key(0), images, labels, classes, prob=0.0,
                                      smoothing=0.0)
  np.testing.assert_array_equal(mixed, images)
  np.testing.assert_array_equal(targets, jax.nn.one_hot(labels, classes))


def test_random_erasing_replaces_one_box_or_nothing():
  image = jnp.full((16, 16, 3), 7.0)
  erased = [random_erasing.random_erase(jax.random.key(s), image, prob=0.5) for s in range(40)]
  changed = [np.asarray(e[..., 0] != 7.0) for e in erased]
  fractions = [c.mean() for c in changed]
  assert 0 < sum(f > 0 for f in fractions) < 40  # sometimes, not always
  for c in changed:
    if c.any():  # one axis-aligned rectangle
      rows, cols = np.where(c.any(1))[0], np.where(c.any(0))[0]
      assert c[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
      assert c.mean() <= 1 / 3 + 0.05


def _timm_erased_area(rng, height, width):
  """timm 0.3.2's RandomErasing._erase (count 1, p=1) written out: pixels erased."""
  for _ in range(10):
    target = rng.uniform(0.02, 1 / 3) * height * width
    aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
    h, w = int(round(np.sqrt(target * aspect))), int(round(np.sqrt(target / aspect)))
    if w < width and h < height:
      return h * w
  return 0


def test_random_erasing_retries_like_timm_and_skips_when_nothing_fits(height=6, width=3):
  """On images this small a box often does not fit: timm draws again (10 times) and else
  leaves the image alone; the erased-area distribution is timm's."""
  count = 4000
  erase = jax.jit(jax.vmap(lambda k: random_erasing.random_erase(
      k, jnp.full((height, width, 1), 7.0), prob=1.0)))
  changed = np.asarray(erase(jax.random.split(jax.random.key(0), count))[..., 0] != 7.0)
  ours = changed.sum((1, 2))
  rng = np.random.default_rng(0)
  theirs = np.array([_timm_erased_area(rng, height, width) for _ in range(count)])
  box_heights, box_widths = changed.any(2).sum(1), changed.any(1).sum(1)
  assert box_heights.max() < height and box_widths.max() < width
  bins = height * width + 1
  total_variation = 0.5 * np.abs(np.bincount(ours, minlength=bins) / count
                                 - np.bincount(theirs, minlength=bins) / count).sum()
  assert total_variation < 0.04
  np.testing.assert_allclose((ours == 0).mean(), (theirs == 0).mean(), atol=0.015)


def test_the_single_warp_path_applies_the_chosen_op():
  x = _as_float(_image(size=32))
  key = jax.random.key(3)
  apply_op = jax.jit(randaugment._apply_op)  # pylint: disable=protected-access
  for index, (name, op) in enumerate(randaugment.OPS.items()):
    np.testing.assert_allclose(apply_op(index, key, x, 0.7), jax.jit(op)(key, x, 0.7),
                               atol=1e-6, err_msg=name)
