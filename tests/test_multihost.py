"""Two local processes (localhost coordinator, gloo CPU collectives, 4 fake devices each)
train exactly like one process with 8 devices, with pure data parallelism and with FSDP."""
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from ssljax.runtime import metrics

COMMAND = [sys.executable, "-m", "ssljax.main", "--config=configs/demo.py:runlocal",
           "--config.log_every_steps=1", "--config.evals.knn.every_steps=0",
           "--config.evals.knn.random_init_baseline=false", "--config.evals.recon.every_steps=0"]


def _env(devices):
  return dict({k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


def _two_processes(workdir, *flags):
  port = _free_port()
  processes = [subprocess.Popen(
      COMMAND + [f"--workdir={workdir}", *flags, f"--coordinator_address=localhost:{port}",
                 "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=_env(4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in processes]
  assert [p.returncode for p in processes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
  return outputs


@pytest.mark.slow  # the default suite starts 2 processes in test_preemption's multi-host test
def test_two_processes_train_like_one_process_with_all_the_devices(tmp_path):
  single = subprocess.run(COMMAND + [f"--workdir={tmp_path / 'one'}"], cwd=REPO, env=_env(8),
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-2000:]
  expected = _losses(tmp_path / "one")
  assert sorted(expected) == [1, 2, 3, 4, 5, 6]
  for name, flags in (("dp", []), ("fsdp", ["--config.mesh.fsdp=2",
                                           "--config.mesh.fsdp_min_size=0"])):
    outputs = _two_processes(tmp_path / name, *flags)
    losses = _losses(tmp_path / name)
    records = metrics.read_jsonl(os.path.join(tmp_path / name, "metrics.jsonl"))
    assert [r["step"] for r in records if "loss" in r] == sorted(expected)  # by process 0 only
    for step, loss in expected.items():
      np.testing.assert_allclose(losses[step], loss, rtol=1e-5, atol=1e-6, err_msg=name)
    assert "finished step 6/6" in outputs[0][0] and "finished step 6/6" in outputs[1][0]
