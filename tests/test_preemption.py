"""SIGTERM: the run saves at the next step boundary, exits with status 3, and resumes."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from ssljax import metrics, preemption


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


def test_sigterm_saves_the_next_step_and_the_rerun_resumes_there(tmp_path):
  command = [sys.executable, "-m", "ssljax.main", "--config=configs/demo.py:runlocal",
             f"--workdir={tmp_path}", "--config.total_steps=400", "--config.log_every_steps=1",
             "--config.checkpoint_every_steps=1000"]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while len(_steps(tmp_path)) < 3 and time.time() < deadline and process.poll() is None:
    time.sleep(0.2)
  seen = max(_steps(tmp_path))
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 3, stderr[-2000:]
  saved = sorted(int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit())
  assert len(saved) == 1 and seen <= saved[0] < 400  # off the 1000-step schedule: the notice
  assert f"preempted: saved step {saved[0]}" in stderr and "Traceback" not in stderr
  assert max(_steps(tmp_path)) == saved[0]  # it stopped at the step it saved

  rerun = subprocess.run(command[:-3] + ["--config.total_steps=" + str(saved[0] + 3),
                                         "--config.log_every_steps=1",
                                         "--config.checkpoint_every_steps=1000"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert _steps(tmp_path)[-3:] == [saved[0] + 1, saved[0] + 2, saved[0] + 3]
  assert f"finished step {saved[0] + 3}/{saved[0] + 3}" in rerun.stdout
