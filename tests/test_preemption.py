"""SIGTERM saves at the next step boundary (all hosts the same step), exits with status 3 and
resumes; SIGKILL at an arbitrary step loses at most one checkpoint interval and resumes exactly."""
import json
import os
import random
import signal
import socket
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


def _losses(workdir):
  """[(step, loss)] in the order metrics.jsonl has them (a resumed run repeats some steps)."""
  return [(r["step"], r["loss"]) for r in metrics.read_jsonl(os.path.join(workdir,
                                                                         "metrics.jsonl"))
          if "loss" in r]


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


def test_sigkill_at_an_arbitrary_step_resumes_the_same_loss_curve_bitwise(tmp_path):
  command = [sys.executable, "-m", "ssljax.main", "--config=configs/demo.py:runlocal",
             "--config.total_steps=14", "--config.log_every_steps=1",
             "--config.checkpoint_every_steps=4", "--config.checkpoint_async=false"]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  run = lambda workdir: subprocess.run(command + [f"--workdir={workdir}"], cwd=REPO, env=env,
                                       capture_output=True, text=True, timeout=300)
  reference = run(tmp_path / "uninterrupted")
  assert reference.returncode == 0, reference.stderr[-2000:]
  expected = dict(_losses(tmp_path / "uninterrupted"))

  kill_at = random.Random(os.getpid()).randint(5, 11)  # anywhere between checkpoints
  workdir = tmp_path / "killed"
  process = subprocess.Popen(command + [f"--workdir={workdir}"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for_step(workdir, kill_at, process)
  process.kill()
  process.wait()
  killed_at = max(_steps(workdir))
  saved = [int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()]
  # With synchronous saves at most one interval is lost (4 when the kill lands mid-save).
  assert 0 <= killed_at - max(saved) <= 4

  resumed = run(workdir)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  losses = _losses(workdir)
  assert sorted(dict(losses)) == list(range(1, 15))
  for step, loss in losses:  # before the kill, and the repeated steps after the resume
    assert loss == expected[step], (step, kill_at, max(saved))


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
