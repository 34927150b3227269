"""Rotation prediction and relative patch position: the labels are the transforms applied,
an orientation detector reads the rotations in the expected order, jittered grid patches stay
disjoint and inside the image, the green-magenta projection, and each method trains from its
`:runlocal` config into a checkpoint whose encoder the kNN probe reads."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax import methods
from ssljax.data import sources
from ssljax.methods import pretext, relative_position as relpos, rotation
from ssljax.run import optim, pretrain, run_types
from ssljax.run.state import TrainState


def test_rotation_labels_are_the_rotations_applied():
  images = np.random.default_rng(0).integers(0, 255, (3, 8, 8, 3)).astype(np.float32)
  views, labels = rotation.rotated_views(jnp.asarray(images))
  assert views.shape == (12, 8, 8, 3)
  np.testing.assert_array_equal(labels, np.tile(np.arange(4), 3))  # an image's 4 in a row
  for i, (view, label) in enumerate(zip(np.asarray(views), np.asarray(labels))):
    np.testing.assert_array_equal(np.rot90(view, -label, axes=(0, 1)), images[i // 4])
    if label:  # a rotated view is not the image itself
      assert not np.array_equal(view, images[i // 4])


def test_an_orientation_detector_orders_the_logits_of_the_four_rotations():
  """A bright bar along the top edge; template r is that image rotated by r * 90 degrees. The
  dot product with template r is 16 for the view of the same rotation, 4 for the two views a
  quarter turn away (the bars cross in a corner) and 0 for the opposite one."""
  image = np.zeros((1, 8, 8, 1), np.float32)
  image[0, :2] = 1.0
  views, labels = rotation.rotated_views(jnp.asarray(image))
  templates = np.stack([np.rot90(image[0], r, axes=(0, 1)).ravel() for r in range(4)])
  logits = np.asarray(views).reshape(4, -1) @ templates.T
  for view_logits, label in zip(logits, np.asarray(labels)):
    assert view_logits[label] == 16 and view_logits[(label + 2) % 4] == 0
    assert view_logits[(label + 1) % 4] == view_logits[(label - 1) % 4] == 4
  loss, accuracy = pretext.classification(jnp.asarray(logits), labels)
  assert float(accuracy) == 1.0 and float(loss) < 0.1


def _cell(corners, patch, gap):
  """Grid cell (row, column) of each patch from its corner relative to the centre's."""
  offset = corners - corners[1, 1]
  return np.rint(offset / (patch + gap)).astype(int) + 1


def test_relative_position_labels_are_the_positions_sampled():
  patch, gap, jitter = 7, 3, 1
  image = jnp.arange(32 * 32 * 3, dtype=jnp.float32).reshape(32, 32, 3)  # every patch unique
  keys = jax.random.split(jax.random.key(0), 200)
  centres, neighbours, labels, corners = jax.jit(jax.vmap(
      lambda k: relpos.sample_pair(k, image, patch, gap, jitter)))(keys)
  assert set(np.asarray(labels).tolist()) == set(range(8))
  for centre, neighbour, label, grid in zip(*(np.asarray(a) for a in (centres, neighbours,
                                                                      labels, corners))):
    row, col = relpos.NEIGHBOURS[label]
    np.testing.assert_array_equal(np.asarray(relpos.cut(image, grid[row, col], patch)),
                                  neighbour)
    np.testing.assert_array_equal(np.asarray(relpos.cut(image, grid[1, 1], patch)), centre)
    # the label's cell is where the neighbour lies relative to the centre
    assert tuple(_cell(grid, patch, gap)[row, col]) == (row, col)
    assert (row, col) != (1, 1)


GEOMETRIES = [(32, 7, 3, 1), (224, 52, 26, 4), (27, 5, 4, 2)]  # the last: no slack, gap = 2j


def test_grid_patches_never_overlap_and_stay_inside_the_image():
  sample = jax.jit(jax.vmap(relpos.sample_corners, in_axes=(0, None, None, None, None)))
  keys = jax.random.split(jax.random.key(1), 300)
  parity = np.indices((3, 3)).sum(0) % 2
  for size, patch, gap, jitter in GEOMETRIES:  # traced sizes: one compilation for all
    sampled = np.asarray(sample(keys, size, patch, gap, jitter))
    # the extremes: neighbours jittered toward each other, and apart, along both axes
    extremes = [np.asarray(relpos.patch_corners(np.array([jitter, jitter]),
                                                np.stack([s * np.where(parity, -1, 1)] * 2, -1)
                                                * jitter, patch, gap)) for s in (1, -1)]
    for corners in itertools.chain(sampled, extremes):
      boxes = corners.reshape(9, 2)
      assert boxes.min() >= 0 and boxes.max() + patch <= size, (size, boxes)
      for a, b in itertools.combinations(boxes, 2):
        assert np.abs(a - b).max() >= patch, (size, a, b)  # disjoint along some axis


def test_the_green_magenta_projection_removes_that_axis_only():
  a = jnp.asarray(relpos.GREEN_MAGENTA)
  np.testing.assert_allclose(relpos.project_out_green_magenta(a), 0, atol=1e-6)
  gray, red_blue = jnp.ones(3), jnp.asarray([1.0, 0.0, -1.0])  # both orthogonal to a
  np.testing.assert_allclose(relpos.project_out_green_magenta(gray), gray, rtol=1e-6)
  np.testing.assert_allclose(relpos.project_out_green_magenta(red_blue), red_blue, atol=1e-6)


def test_colour_dropping_keeps_one_channel_and_replaces_the_others_by_faint_noise():
  patch = jax.random.normal(jax.random.key(2), (16, 16, 3)) * 2.0
  dropped = np.asarray(jax.jit(relpos.drop_colours)(jax.random.key(3), patch))
  kept = [c for c in range(3) if np.array_equal(dropped[..., c], np.asarray(patch[..., c]))]
  assert len(kept) == 1
  for c in set(range(3)) - set(kept):
    assert 0 < dropped[..., c].std() < np.asarray(patch[..., kept[0]]).std() / 50


def test_down_sampling_keeps_flat_patches_and_removes_the_finest_texture():
  side = 52
  flat = jnp.full((side, side, 3), 0.7)
  checker = jnp.tile((np.indices((side, side)).sum(0) % 2 * 2.0 - 1)[..., None], (1, 1, 3))
  keys = jax.random.split(jax.random.key(0), 200)
  always = jax.jit(jax.vmap(lambda k, x: relpos.downsample(k, x, 1.0), in_axes=(0, None)))
  np.testing.assert_allclose(always(keys, flat), 0.7, rtol=1e-5)
  assert float(jnp.abs(always(keys, checker)).mean()) < 0.25  # shrunk below 96/96 of the side
  np.testing.assert_allclose(relpos.down_up_matrix(side, side), np.eye(side), atol=1e-5)
  third = jax.vmap(lambda k: relpos.downsample(k, checker, 0.33))(keys)
  changed = np.mean(np.abs(np.asarray(third - checker)).max(axis=(1, 2, 3)) > 1e-3)
  assert 0.2 < changed < 0.47, changed


def test_rms_normalisation_makes_mean_and_contrast_no_cue():
  patches = jax.random.normal(jax.random.key(4), (5, 7, 7, 3))
  normalised = relpos.rms_normalise(patches)
  np.testing.assert_allclose(normalised.mean(axis=(1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.sqrt(jnp.mean(normalised ** 2, axis=(1, 2, 3))), 1.0, rtol=1e-5)
  brighter = relpos.rms_normalise(patches * 3.0 + jnp.asarray([2.0, -1.0, 0.5]))
  np.testing.assert_allclose(brighter, normalised, atol=1e-4)


PRETEXT_CONFIGS = {"rotation_cifar10": "rotation_accuracy",
                   "relative_position_cifar10": "position_accuracy"}


# A ResNet train step compiles for minutes on a loaded 2-core host: the runs are slow tests; the
# invariants above and the configs' load-and-validate test are in the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PRETEXT_CONFIGS))
def test_pretext_method_learns_and_its_checkpoint_is_knn_probed(name, tmp_path):
  """15 steps on one batch of real images (held-out digits) lower the loss on that batch for
  the same key; the `:runlocal` run checkpoints an encoder that the kNN probe reads."""
  config = load_config(name, "runlocal")
  method = methods.get(config.method)
  batch = {"image": jnp.asarray(sources.digits("test", 32).images[:32])}
  variables = dict(method.init(config, jax.random.key(0), (1, 32, 32, 3)))
  params = variables.pop("params")
  tx, lr = optim.make(config.optim, 32, total_steps=40, warmup_steps=0, steps_per_epoch=46)
  state = TrainState.create(params, tx.init(params), variables)
  step = jax.jit(pretrain.make_train_step(config, method, tx, lr, total_steps=40))
  evaluate = jax.jit(lambda s: method.loss(config, s.params, s.model_state, batch,
                                           jax.random.key(7))[1][1])
  before = evaluate(state)
  for _ in range(15):
    state, _ = step(state, dict(batch, label=jnp.zeros(32, jnp.int32)))
  after = evaluate(state)
  assert float(after["loss"]) < 0.95 * float(before["loss"]), (before, after)
  assert 0 <= float(after[PRETEXT_CONFIGS[name]]) <= 1

  with config.unlocked():
    config.evals = {}
  run_types.run(config, str(tmp_path / "pretrain"))
  probe = load_config_with("probe_demo", "runlocal,protocol=knn,recipe=simsiam",
                           init_from=str(tmp_path / "pretrain"))
  record = run_types.run(probe, str(tmp_path / "knn"))["record"]
  assert record["encoder"].startswith(f"{config.method} encoder of ")
  assert record["feature"] == "backbone" and record["value"] > 0.3  # chance: 0.1
