"""The benchmark scripts run end to end and print consistent numbers (not asserted)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def _rates_and_ratio(script, args, names):
  """Runs benchmarks/<script> -> ({name: img/s}, printed ratio names[0]/names[1])."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  rates = dict(re.findall(rf"^\s+({'|'.join(names)})\s+([\d.]+) img/s", result.stdout, re.M))
  ratio = re.search(rf"ratio {names[0]}/{names[1]} ([\d.]+)", result.stdout)
  return {k: float(v) for k, v in rates.items()}, float(ratio.group(1)) if ratio else None


@pytest.mark.slow
def test_mae_step_benchmark_prints_both_rates_and_the_ratio():
  pytest.importorskip("torch", reason="the torch extra is not installed")
  rates, ratio = _rates_and_ratio("mae_step_vs_torch.py", ["--variant=mu/4", "--batch=8",
                                                           "--steps=1", "--rounds=2",
                                                           "--warmup=1"], ("jax", "torch"))
  assert set(rates) == {"jax", "torch"} and min(rates.values()) > 0
  assert ratio == pytest.approx(rates["jax"] / rates["torch"], rel=0.02)


@pytest.mark.slow
def test_conv_gradient_benchmark_prints_both_rates_and_the_ratio():
  rates, ratio = _rates_and_ratio("conv_grad_cpu.py", ["--config=simsiam_cifar10:runlocal",
                                                       "--batch=4", "--rounds=1"],
                                  ("per-tap", "native"))
  assert set(rates) == {"per-tap", "native"} and min(rates.values()) > 0
  assert ratio == pytest.approx(rates["per-tap"] / rates["native"], rel=0.02)


@pytest.mark.slow
def test_throughput_benchmark_prints_rate_flops_and_memory_for_each_model():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "throughput.py"),
                           "--runlocal", "--batch=8", "--steps=1", "--warmup=1"],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  lines = re.findall(r"^(\w+) .* ([\d.]+) img/s, ([\d.]+) GFLOP/img, ([\d.e-]+) TFLOP/s, MFU "
                     r"(.*), memory ([\d.]+) GiB", result.stdout, re.M)
  assert [line[0] for line in lines] == ["mae_vitb", "mae_vitl", "simsiam_r50"]
  for _, rate, _, tflops, mfu, _ in lines:
    assert float(rate) > 0 and float(tflops) > 0 and mfu.startswith("n/a")  # CPU: no peak


@pytest.mark.slow
def test_input_pipeline_benchmark_prints_ssljax_the_peer_and_their_ratio(tmp_path):
  pytest.importorskip("torch", reason="the torch extra is not installed")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "input_pipeline.py"),
                           f"--folder={tmp_path}", "--images=72", "--batches=1", "--workers=2"],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  rates = dict(re.findall(r"^\s+(ssljax \w+|torch\w* peer \w+)\s+([\d.]+) img/s", result.stdout,
                          re.M))
  ratios = [float(r) for r in re.findall(r"ratio ssljax / peer\s+([\d.]+)x", result.stdout)]
  assert len(rates) == 6 and len(ratios) == 3 and min(float(v) for v in rates.values()) > 0
  assert ratios[0] == pytest.approx(float(rates["ssljax MAE"]) / float(rates["torch peer MAE"]),
                                    rel=0.02)
  assert re.search(r"device augment MAE \(1 view\)\s+[\d.]+ img/s", result.stdout)
  assert re.search(r"H100 .* -> +[\d.]+ host cores", result.stdout)
