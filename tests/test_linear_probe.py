"""Linear probe and kNN of frozen encoders and baselines (ssljax.linear_probe)."""
import json
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax.config import sections
from ssljax.run import linear_probe, optim, run_types
from ssljax.runtime import checkpoint, pretrained, sharding


def _probe_config(arg="runlocal", **fields):
  return load_config_with("probe_demo", arg, **fields)


def _encoder_variables(workdir):
  mesh = sharding.make_mesh()
  return pretrained.load(workdir, sharding.replicated(mesh))[1]


def test_probe_never_changes_the_encoder(pretrained_workdir, tmp_path):
  before = jax.device_get(_encoder_variables(pretrained_workdir))
  config = _probe_config(init_from=pretrained_workdir, probe__augment=True, total_epochs=None,
                         total_steps=6)
  summary = run_types.run(config, str(tmp_path))
  after = jax.device_get(_encoder_variables(pretrained_workdir))
  jax.tree.map(np.testing.assert_array_equal, before, after)
  # The probe's trainable state is the linear layer alone (BatchNorm has no affine).
  restored = checkpoint.Checkpointer(str(tmp_path), keep=1)
  saved = restored._manager.item_metadata(6)["state"].tree  # pylint: disable=protected-access
  restored.close()
  assert set(saved["params"]) == {"head"} and set(saved["model_state"]["batch_stats"]) == {"norm"}
  assert summary["record"]["encoder"].startswith("mae encoder of ")


def _separable_npz(root, num=600, size=8):
  """10 classes; class c is a constant colour c/10 in one channel plus pixel noise."""
  rng = np.random.default_rng(0)
  for split, n in (("train", num), ("test", num // 3)):
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, size, size, 3))
    images[np.arange(n), :, :, labels % 3] += 20 * labels[:, None, None] + 20
    np.savez(root / f"{split}.npz", images=np.clip(images, 0, 255).astype(np.uint8),
             labels=labels)


def test_linear_probe_reaches_100_percent_on_a_linearly_separable_set(tmp_path):
  _separable_npz(tmp_path)
  config = _probe_config(baseline="pixels", input__source="npz",
                         input__data_dir=str(tmp_path), input__image_size=8,
                         input__batch_size=64, total_epochs=40)
  summary = run_types.run(config, str(tmp_path / "probe"))
  assert summary["evals"]["linear_probe/top1"] >= 0.99
  with open(tmp_path / "probe" / "results.json", encoding="utf-8") as f:
    record = json.load(f)
  assert record["encoder"] == "pixels" and record["value"] >= 0.99
  assert record["protocol"] == "linear_probe" and record["epochs"] == 40


@pytest.mark.parametrize("augment", [False, True])
def test_resumed_probe_ends_exactly_like_an_uninterrupted_one(augment, tmp_path):
  config = _probe_config(baseline="pixels", probe__augment=augment, total_epochs=None,
                         total_steps=30, checkpoint_every_steps=10, eval_every_steps=10)
  whole = run_types.run(config, str(tmp_path / "whole"))
  # An interrupted run: the same workdir as it was at step 10 (checkpoints 20, 30 never made).
  shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
  for step in ("20", "30"):
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / step)
  resumed = run_types.run(config, str(tmp_path / "resumed"))
  assert resumed["final_loss"] == whole["final_loss"]
  assert resumed["evals"] == whole["evals"]
  heads = [checkpoint.Checkpointer(str(tmp_path / d), keep=2) for d in
           ("whole", "resumed")]
  params = [h._manager.restore(30).state["params"] for h in heads]  # pylint: disable=protected-access
  for h in heads:
    h.close()
  jax.tree.map(np.testing.assert_array_equal, params[0], params[1])


def test_knn_protocol_and_baselines_through_the_same_harness(pretrained_workdir, tmp_path):
  results = {}
  for name, fields in {"pca": dict(baseline="pca"), "pixels": dict(baseline="pixels"),
                       "random_init": dict(baseline="random_init", encoder_config="demo"),
                       "mae": dict(init_from=pretrained_workdir)}.items():
    summary = run_types.run(_probe_config("runlocal,protocol=knn", **fields),
                               str(tmp_path / name))
    results[name] = summary["record"]
    assert set(summary["evals"]) == {f"knn/top1_k{k}_t{t}" for k in (20, 200)
                                     for t in (0.07, 0.1)}
  assert results["pca"]["encoder"] == "pca64" and results["random_init"]["encoder"] == (
      "mae encoder at random init")
  # Digits are easy for raw pixels; every floor is far above chance (0.1).
  assert min(r["value"] for r in results.values()) > 0.5
  assert results["pixels"]["value"] > 0.9


# The releases' probe optimizers (see recipes.linear_probe): name, peak lr at the release's
# batch, batch, epochs, wd, 1-D params decayed / trust-ratio scaled, per-epoch lr, step decay,
# Nesterov, LARS lr after momentum, head init.
RELEASE_PROBES = {
    "mae": ("lars", 6.4, 16384, 90, 0.0, False, False, (), False, True, "normal"),
    "simsiam": ("lars", 1.6, 4096, 90, 0.0, True, True, (), False, True, "normal"),
    "moco_v2": ("sgd", 30.0, 256, 100, 0.0, False, False, (60, 80), False, False, "normal"),
    "moco_v3": ("sgd", 0.4, 1024, 90, 0.0, False, True, (), False, False, "normal"),
    "moco_v3_vit": ("sgd", 12.0, 1024, 90, 0.0, False, True, (), False, False, "normal"),
    "byol": ("sgd", 3.2, 4096, 80, 0.0, False, False, (), True, False, "haiku"),
    "simclr": ("sgd", 1.6, 4096, 90, 1e-6, True, False, (), True, False, "zeros"),
    "swav": ("sgd", 0.3, 256, 100, 1e-6, True, True, (), False, False, "normal")}


@pytest.mark.parametrize("recipe", sorted(RELEASE_PROBES))
def test_imagenet_probe_recipes_match_the_releases(recipe):
  c = load_config("probe_imagenet", f"recipe={recipe}")
  o = c.optim
  assert (o.name, round(optim.peak_learning_rate(o, c.input.batch_size), 9),
          c.input.batch_size, c.total_epochs, o.weight_decay, o.decay_1d_params,
          o.schedule_per_epoch, tuple(o.step_decay_epochs), o.nesterov,
          o.lars_lr_after_momentum, c.probe.head_init) == RELEASE_PROBES[recipe]


@pytest.mark.parametrize("name,recipe", [("probe_cifar10", "mae"), ("probe_cifar10", "simsiam"),
                                         ("probe_demo", "mae")])
def test_cifar_and_demo_probes_keep_the_settings_their_rows_were_measured_with(name, recipe):
  o, probe = (lambda c: (c.optim, c.probe))(load_config(name, f"recipe={recipe}"))
  assert (o.name, round(o.lr, 9), o.decay_1d_params, o.schedule_per_epoch,
          o.lars_lr_after_momentum, probe.head_init) == (
              "lars", 6.4 if recipe == "mae" else 0.32, False, False, False, "flax_truncated")


@pytest.mark.parametrize("init,std", [("normal", 0.01), ("flax_truncated", 0.0088),
                                      ("haiku", 0.88 / 2048 ** 0.5), ("zeros", 0.0)])
def test_probe_head_init_scale_measured_from_its_params(init, std):
  """timm's trunc_normal_(std=0.01) has absolute bounds +-2, so in effect N(0, 0.01^2); Flax's
  truncated_normal(0.01) and Haiku's default cut at 2 sigma without correction (std 0.88 sigma)."""
  head = linear_probe.LinearHead(1000, norm=False, kernel_init=init)
  params = head.init(jax.random.key(0), np.zeros((1, 2048), np.float32), train=False)["params"]
  kernel = np.asarray(params["head"]["kernel"])
  assert kernel.std() == pytest.approx(std, rel=0.01, abs=1e-12)
  np.testing.assert_array_equal(params["head"]["bias"], 0)
  assert set(linear_probe.HEAD_INITS) == set(sections.PROBE_HEAD_INITS)
