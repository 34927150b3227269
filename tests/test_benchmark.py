"""The benchmark scripts run end to end and print consistent numbers (not asserted)."""
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO


def _rates_and_ratio(script, args, names):
  """Runs benchmarks/<script>; checks it printed 'NAME RATE img/s' for both names and a ratio
  equal to their quotient."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), *args],
                          capture_output=True, text=True, timeout=600, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  rates = dict(re.findall(rf"^\s+({'|'.join(names)})\s+([\d.]+) img/s", result.stdout, re.M))
  assert set(rates) == set(names) and all(float(r) > 0 for r in rates.values())
  ratio = float(re.search(rf"ratio {names[0]}/{names[1]} ([\d.]+)", result.stdout).group(1))
  assert ratio == pytest.approx(float(rates[names[0]]) / float(rates[names[1]]), rel=0.02)


def test_mae_step_benchmark_prints_both_rates_and_the_ratio():
  pytest.importorskip("torch", reason="the torch extra is not installed")
  _rates_and_ratio("mae_step_vs_torch.py", ["--variant=mu/4", "--batch=8", "--steps=1",
                                            "--rounds=2", "--warmup=1"], ("jax", "torch"))


def test_conv_gradient_benchmark_prints_both_rates_and_the_ratio():
  _rates_and_ratio("conv_grad_cpu.py", ["--config=simsiam_cifar10:runlocal", "--batch=4",
                                        "--rounds=1"], ("per-tap", "native"))
