"""One run per workdir: a second run stops at once naming the first; stale locks are taken over."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from ssljax.config import loading
from ssljax.errors import UserError
from ssljax.run import run_types
from ssljax.runtime import workdir_lock


def _write_lock(workdir, host, pid, age_s=0.0):
  path = workdir_lock.lock_path(str(workdir))
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"host": host, "pid": pid, "started": "2026-12-01 10:00:00"}, f)
  os.utime(path, (time.time() - age_s, time.time() - age_s))
  return path


def _dead_pid():
  child = subprocess.Popen([sys.executable, "-c", "pass"])
  child.wait()
  return child.pid


def test_a_second_run_on_a_held_workdir_stops_at_once_naming_the_first(tmp_path):
  config = loading.load("demo:runlocal")
  with workdir_lock.held(str(tmp_path)):
    start = time.time()
    with pytest.raises(UserError) as error:
      run_types.run(config, str(tmp_path))
    assert time.time() - start < 5
  message = str(error.value)
  assert "\n" not in message and f"pid {os.getpid()} on host {socket.gethostname()}" in message
  assert "wait for it to finish or stop it, or pass another --workdir" in message
  assert not os.path.exists(os.path.join(tmp_path, "metrics.jsonl"))  # it wrote nothing
  assert not os.path.exists(workdir_lock.lock_path(str(tmp_path)))  # released by its owner


def test_a_live_run_on_another_host_keeps_its_lock(tmp_path):
  _write_lock(tmp_path, "another-host", 4242, age_s=5)
  with pytest.raises(UserError, match="pid 4242 on host another-host"):
    workdir_lock.acquire(str(tmp_path))


@pytest.mark.parametrize("owner", ["dead_pid_here", "silent_other_host", "half_written"])
def test_a_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog, owner):
  if owner == "dead_pid_here":
    _write_lock(tmp_path, socket.gethostname(), _dead_pid())
  elif owner == "silent_other_host":
    _write_lock(tmp_path, "another-host", 4242, age_s=workdir_lock.STALE_AFTER_S + 10)
  else:
    with open(workdir_lock.lock_path(str(tmp_path)), "w", encoding="utf-8") as f:
      f.write('{"host": "ano')
  path = workdir_lock.acquire(str(tmp_path))
  with open(path, encoding="utf-8") as f:
    assert json.load(f)["pid"] == os.getpid()
  assert any("taking over the lock" in r.message for r in caplog.records)
  workdir_lock.release(path)
  assert not os.path.exists(path)


def test_the_heartbeat_keeps_a_long_run_from_looking_stale(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir_lock, "HEARTBEAT_S", 0.05)
  with workdir_lock.held(str(tmp_path)):
    path = workdir_lock.lock_path(str(tmp_path))
    os.utime(path, (time.time() - 1000, time.time() - 1000))
    time.sleep(0.3)
    assert time.time() - os.stat(path).st_mtime < 1


@pytest.mark.slow
def test_two_command_line_runs_on_one_workdir_the_second_stops_and_the_first_finishes(tmp_path):
  """The fault-injection repro: a second `python -m ssljax.main` on a running run's workdir."""
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  args = [sys.executable, "-m", "ssljax.main", "--config=configs/demo.py:runlocal",
          f"--workdir={tmp_path}", "--config.total_steps=60", "--config.log_every_steps=10",
          "--config.checkpoint_every_steps=20"]
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  first = subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
  lock = workdir_lock.lock_path(str(tmp_path), 0)
  deadline = time.time() + 120
  while not os.path.exists(lock) and time.time() < deadline:
    time.sleep(0.2)
  second = subprocess.run(args + ["--config.seed=1"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=120)
  output, _ = first.communicate(timeout=600)
  assert second.returncode == 2, second.stderr[-2000:]
  assert f"pid {first.pid} on host {socket.gethostname()}" in second.stderr
  assert first.returncode == 0 and "finished step 60/60" in output
  steps = [json.loads(line)["step"] for line in open(tmp_path / "metrics.jsonl")
           if '"loss"' in line]
  assert steps == sorted(set(steps))  # one curve, not two interleaved
  assert sorted(os.listdir(tmp_path / "checkpoints"))[-1] == "60"
