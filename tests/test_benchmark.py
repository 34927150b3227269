"""The benchmark scripts run end to end and print consistent numbers (not asserted)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def test_benchmark_prints_both_rates_and_the_ratio():
  pytest.importorskip("torch", reason="the torch extra is not installed")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "mae_step_vs_torch.py"), "--variant=mu/4",
       "--batch=8", "--steps=1", "--rounds=2", "--warmup=1"],
      capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  rates = dict(re.findall(r"^\s+(jax|torch)\s+([\d.]+) img/s", result.stdout, re.M))
  assert set(rates) == {"jax", "torch"} and all(float(r) > 0 for r in rates.values())
  ratio = float(re.search(r"ratio jax/torch ([\d.]+)", result.stdout).group(1))
  assert ratio == pytest.approx(float(rates["jax"]) / float(rates["torch"]), rel=0.02)


def test_conv_gradient_benchmark_prints_both_rates_and_the_ratio():
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "benchmarks", "conv_grad_cpu.py"),
       "--config=simsiam_cifar10:runlocal", "--batch=4", "--rounds=1"],
      capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  rates = dict(re.findall(r"^\s+(per-tap|native)\s+([\d.]+) img/s", result.stdout, re.M))
  assert set(rates) == {"per-tap", "native"} and all(float(r) > 0 for r in rates.values())
  ratio = float(re.search(r"ratio per-tap/native ([\d.]+)", result.stdout).group(1))
  assert ratio == pytest.approx(float(rates["per-tap"]) / float(rates["native"]), rel=0.02)
