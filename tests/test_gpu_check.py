"""benchmarks/gpu_check.py: the batch search finds the largest batch that fits, a failing
section is written down without stopping the others, and `--cpu` writes every section."""
import json
import math
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import batch_search  # pylint: disable=wrong-import-position
import gpu_check  # pylint: disable=wrong-import-position

GIB = 2**30


def affine(fixed, per_example):
  return lambda batch: fixed + per_example * batch


@pytest.mark.parametrize("state_bytes", [10 * GIB, 4 * GIB])  # exact, or under the fixed part
def test_next_batch_guesses_low_from_one_point_and_exact_from_two(state_bytes):
  memory = affine(10 * GIB, GIB // 8)  # the largest batch within 90 GiB: 640
  first = batch_search.next_batch([(64, memory(64))], 90 * GIB, state_bytes, 8, 10**6)
  assert first <= 640 and (state_bytes < 10 * GIB or first == 640)
  second = batch_search.next_batch([(64, memory(64)), (first, memory(first))], 90 * GIB,
                                   state_bytes, 8, 10**6)
  assert second == 640
  assert batch_search.next_batch([(64, memory(64))], 90 * GIB, 10 * GIB, 48, 10**6) == 624
  assert batch_search.next_batch([(64, memory(64))], 90 * GIB, 10 * GIB, 8, 256) == 256


@pytest.fixture
def fake_compiles(monkeypatch):
  """compile_for returns the batch; its estimate is 10 GiB + 1/8 GiB per example."""
  compiled = []
  monkeypatch.setattr(batch_search.throughput, "compile_for",
                      lambda bench, batch: compiled.append(batch) or batch)
  monkeypatch.setattr(batch_search.throughput, "estimated_bytes", affine(10 * GIB, GIB // 8))
  state = np.zeros(GIB // 4, np.uint8)  # 0.25 GiB: the first guess is low
  return types.SimpleNamespace(state=state), compiled


@pytest.mark.parametrize("start", [64, 4096])  # below and above the answer
def test_largest_batch_finds_the_batch_that_fills_memory_and_none_above(fake_compiles, start):
  bench, compiled = fake_compiles
  batch, step, tried = batch_search.largest_batch(bench, 90 * GIB, start, 10**6, 8, 60)
  assert batch == step == 640 and len(compiled) <= 4
  assert all(b <= 640 for b, m in tried if m <= 90 * GIB)


def test_largest_batch_says_when_nothing_fits(fake_compiles):
  with pytest.raises(ValueError, match="no batch fits in 5.0 GiB"):
    batch_search.largest_batch(fake_compiles[0], 5 * GIB, 64, 10**6, 8, 60)


def test_a_section_past_its_limit_is_an_error_entry_and_the_report_still_forms():
  failed = gpu_check.run_child("input", ["--cpu"], 0.5, cpu=True)
  assert failed == {"error": "time limit of 0.5 s reached"}
  sections = {"mae_vitl": {"img_per_s": 100.0, "batch": 64}, "torch_mae": failed,
              "input": {"per_core": 50.0}}
  derived = gpu_check.derived(sections)
  assert derived == {"host_cores_needed": {"mae_vitl": 2.0}}  # no ratio without the peer
  report = {"device": "d", "backend": "b", "date": "t", "jax": "j", "torch": None,
            "host_cores": 2, "sections": {"torch_mae": failed}, "derived": derived}
  assert "torch_mae" in gpu_check.table(report) and "time limit of 0.5 s" in gpu_check.table(
      report)


def run_cpu_check(tmp_path, *flags):
  pytest.importorskip("torch", reason="the torch extra is not installed")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  out = tmp_path / "check.json"
  result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "gpu_check.py"),
                           "--cpu", f"--out={out}", f"--input-folder={tmp_path / 'jpegs'}",
                           *flags], capture_output=True, text=True, timeout=900, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "ratio ssljax / PyTorch" in result.stdout
  return json.loads(out.read_text())


def check_report(report, names):
  assert list(report["sections"]) == list(names)
  for name, section in report["sections"].items():
    assert "error" not in section and section["img_per_s"] > 0, (name, section)
  peer = report["sections"]["torch_mae"]
  ours = report["sections"][peer["model"]]
  assert peer["batch"] == ours["batch"] == 8 and ours["batches_tried"][0][0] == 8
  ratio = report["derived"]["ratio_ssljax_over_torch"]
  assert math.isfinite(ratio) and ratio == pytest.approx(ours["img_per_s"] / peer["img_per_s"])
  assert all(math.isfinite(c) and c > 0 for c in report["derived"]["host_cores_needed"].values())
  assert report["device"] == "cpu" and report["jax"] and report["torch"] and report["date"]


def test_cpu_check_writes_each_section_with_a_rate_and_a_finite_ratio(tmp_path):
  names = ("mae_vitb", "torch_mae", "input")  # one JAX section: the others run the same code
  check_report(run_cpu_check(tmp_path, f"--sections={','.join(names)}",
                             "--torch-model=mae_vitb"), names)


@pytest.mark.slow
def test_cpu_check_writes_every_section(tmp_path):
  check_report(run_cpu_check(tmp_path), gpu_check.SECTIONS)
