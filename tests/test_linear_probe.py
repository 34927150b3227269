"""Linear probe and kNN of frozen encoders and baselines (ssljax.linear_probe)."""
import json
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config_with
from ssljax.run import run_types
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
