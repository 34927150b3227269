"""End-to-end trainer runs on the embedded digits: metrics, checkpoints, resume, devices."""
import os
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config
from ssljax.run import run_types
from ssljax.runtime import checkpoint, metrics


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


@pytest.mark.slow  # the default suite's tests/test_object_store.py checks the same on a gs:// workdir
def test_runlocal_writes_metrics_checkpoints_and_figure(tmp_path):
  config = load_config("mae_vitl", "runlocal")
  summary = run_types.run(config, str(tmp_path))
  losses = _losses(tmp_path)
  assert sorted(losses) == [1, 2, 3, 4]
  assert all(np.isfinite(v) for v in losses.values())
  assert summary["final_loss"] == losses[4]
  assert sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()) == [2, 4]
  assert 0.0 <= summary["evals"]["knn/top1_k20_t0.07"] <= 1.0
  figure = summary["figures"][-1]
  assert os.path.getsize(figure) > 1000 and figure.endswith(".png")
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
  records = metrics.read_jsonl(tmp_path / "metrics.jsonl")
  assert any("learning_rate" in r and "grad_norm" in r for r in records)
  # achieved model TFLOP/s = img/s x the method's analytic FLOPs (no MFU: CPUs have no peak)
  from ssljax.methods import mae  # pylint: disable=g-import-not-at-top
  rated = [r for r in records if "img_per_s" in r]
  assert rated and all(r["tflops_per_s"] == pytest.approx(
      r["img_per_s"] * mae.flops_per_example(config) / 1e12) and "mfu" not in r for r in rated)


@pytest.mark.slow  # the bitwise resume of every run type: test_run_guarantees
def test_resumed_run_reproduces_the_uninterrupted_loss_curve(tmp_path):
  config = load_config("demo", "runlocal")  # 6 steps, checkpoints at 3 and 6
  full = tmp_path / "full"
  run_types.run(config, str(full))
  expected = _losses(full)
  # a second workdir that lost everything after step 3 (as if killed between 3 and 6)
  resumed = tmp_path / "resumed"
  shutil.copytree(full, resumed)
  shutil.rmtree(resumed / "checkpoints" / "6")
  os.remove(resumed / "metrics.jsonl")
  summary = run_types.run(config, str(resumed))
  again = _losses(resumed)
  assert sorted(again) == [4, 5, 6]  # it started at step 4: nothing before was recomputed
  for step in (4, 5, 6):
    assert again[step] == expected[step], (step, again[step], expected[step])
  assert summary["step"] == 6
  # a third start finds the run complete and trains nothing
  assert run_types.run(config, str(resumed))["final_loss"] is None
  # the step-3 checkpoint written by 8 devices also resumes on 1 device, on the same curve
  on_one = tmp_path / "on_one_device"
  shutil.copytree(full, on_one)
  shutil.rmtree(on_one / "checkpoints" / "6")
  os.remove(on_one / "metrics.jsonl")
  run_types.run(config, str(on_one), devices=jax.devices()[:1])
  for step, loss in _losses(on_one).items():
    np.testing.assert_allclose(loss, expected[step], rtol=1e-5, atol=1e-6)


def test_one_and_eight_devices_give_the_same_losses(tmp_path):
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.total_steps = 3
    config.evals = {}
  assert len(jax.devices()) == 8
  run_types.run(config, str(tmp_path / "one"), devices=jax.devices()[:1])
  run_types.run(config, str(tmp_path / "eight"))
  one, eight = _losses(tmp_path / "one"), _losses(tmp_path / "eight")
  assert sorted(one) == [1, 2, 3]
  for step in one:
    np.testing.assert_allclose(one[step], eight[step], rtol=1e-5, atol=1e-6)


def test_online_probe_learns_without_changing_the_encoder(tmp_path):
  def run(enabled, workdir):
    config = load_config("demo", "runlocal")
    with config.unlocked():
      config.total_steps, config.log_every_steps, config.evals = 30, 1, {}
      config.checkpoint_every_steps = 30
      config.online_probe.enabled, config.online_probe.lr = enabled, 1e-2
    run_types.run(config, str(workdir))
    ckpt = checkpoint.Checkpointer(str(workdir), keep=1)
    params = ckpt._manager.restore(30).state["params"]  # pylint: disable=protected-access
    ckpt.close()
    return params, [r for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
                    if "loss" in r]

  with_probe, probed = run(True, tmp_path / "probe")
  without, plain = run(False, tmp_path / "plain")
  # The labels reach only the probe's layer: the encoder and decoder train exactly as without.
  assert set(with_probe) == set(without) | {"online_probe"}
  for name in without:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                 with_probe[name], without[name])
  assert abs(probed[-1]["loss"] - plain[-1]["loss"]) < 1e-5  # "loss" stays the method's
  probe_losses = [r["online_probe_loss"] for r in probed]
  assert probe_losses[0] == pytest.approx(np.log(10), rel=1e-5)  # zero-initialised layer
  assert np.mean(probe_losses[-5:]) < 0.75 * np.log(10), probe_losses
