"""SIGTERM saves at the next step boundary (all hosts the same step), exits with status 3 and
resumes; SIGKILL at an arbitrary step loses at most one checkpoint interval and resumes exactly."""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from ssljax.runtime import metrics, preemption


def test_watch_records_sigterm_and_restores_the_previous_handler():
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers can only be installed from the main thread")
  previous = signal.getsignal(signal.SIGTERM)
  with preemption.Watch() as watch:
    assert not watch.reached(1)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.1)
    assert watch.reached(2) and watch.received == signal.SIGTERM
  assert signal.getsignal(signal.SIGTERM) == previous


def _steps(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  return [r["step"] for r in metrics.read_jsonl(path) if "loss" in r]


def _wait_for_step(workdir, step, *processes):
  deadline = time.time() + 300
  while time.time() < deadline and all(p.poll() is None for p in processes):
    if _steps(workdir) and max(_steps(workdir)) >= step:
      return
    time.sleep(0.05)
  for p in processes:
    p.kill()
  raise AssertionError(f"the run did not reach step {step}: " + " | ".join(
      f"exit status {p.wait()}: {p.stderr.read()[-1500:]}" for p in processes))


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def test_sigterm_to_one_host_saves_the_same_step_on_every_host(tmp_path):
  port = _free_port()
  env = dict({k: v for k, v in os.environ.items() if k != "XLA_FLAGS"},
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  processes = [subprocess.Popen(
      [sys.executable, "-m", "ssljax.main", "--config=configs/demo.py:runlocal",
       f"--workdir={tmp_path}", "--config.total_steps=400", "--config.log_every_steps=1",
       "--config.checkpoint_every_steps=1000", "--config.evals.knn.random_init_baseline=false",
       "--config.evals.knn.every_steps=0", "--config.evals.recon.every_steps=0",
       f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  _wait_for_step(tmp_path, 3, *processes)
  processes[1].send_signal(signal.SIGTERM)  # only host 1 gets the notice
  outputs = [p.communicate(timeout=300)[1] for p in processes]
  assert [p.returncode for p in processes] == [3, 3], outputs[0][-2000:] + outputs[1][-2000:]
  saved = [int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()]
  assert len(saved) == 1 and 3 <= saved[0] < 400
  for stderr in outputs:
    assert f"preempted: saved step {saved[0]} in {tmp_path}" in stderr
  with open(tmp_path / "checkpoints" / str(saved[0]) / "data" / "metadata",
            encoding="utf-8") as f:
    assert json.load(f)  # the data position was written, once, by the coordinated save
