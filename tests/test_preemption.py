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


def _notice(signum=signal.SIGTERM):
  os.kill(os.getpid(), signum)
  time.sleep(0.1)  # the handler runs in the main thread at the next bytecode


def test_watch_defers_while_steps_are_unsaved_and_raises_elsewhere():
  if threading.current_thread() is not threading.main_thread():
    pytest.skip("signal handlers can only be installed from the main thread")
  previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
  with preemption.Watch() as watch:  # start-up: nothing to save, the notice stops at once
    with pytest.raises(preemption.Preempted, match="SIGTERM"):
      _notice()
  with preemption.Watch() as watch:
    watch.defer()  # unsaved steps: recorded, the loop saves at the next step
    assert not watch.reached(1)
    _notice(signal.SIGINT)
    assert watch.reached(2) and watch.received == signal.SIGINT
    with pytest.raises(preemption.Preempted):  # the step saved, nothing left: stop now
      watch.immediate()
  with preemption.Watch() as watch:
    watch.defer()
    _notice()
    with pytest.raises(preemption.Preempted):  # a second notice does not wait
      _notice()
  assert {s: signal.getsignal(s) for s in previous} == previous
  assert not issubclass(preemption.Preempted, Exception)  # no `except Exception` swallows it


def _run_until(command, line, workdir):
  """The process of `command` (in a process group of its own, as a job or a terminal has it)
  once its log shows `line` (the log lines read so far)."""
  process = subprocess.Popen(command, cwd=REPO, env=_one_device(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
  seen = []
  for log_line in process.stderr:
    seen.append(log_line)
    if line in log_line:
      return process, seen
  process.wait()
  raise AssertionError(f"the run ended (status {process.returncode}) before {line!r}: "
                       + "".join(seen)[-2000:])


def _one_device():
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}


def _image_folder(root):
  """train/ and test/ with two classes of 24 small PNGs each (held-out digits)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from ssljax.data import sources  # pylint: disable=g-import-not-at-top
  digits = sources.digits("test", 32)
  for split in ("train", "test"):
    for i in range(48):
      folder = root / split / str(int(digits.labels[i]) % 2)
      folder.mkdir(parents=True, exist_ok=True)
      Image.fromarray(digits.images[i]).save(folder / f"{i}.png")
  return root


# Ctrl-C mid-run is slow: it saves through the same stop notice as SIGTERM mid-run, which
# tests/test_run_guarantees.py covers in the default suite.
@pytest.mark.parametrize("when", ["pre-training start-up", "kNN evaluation",
                                  pytest.param("Ctrl-C mid-run", marks=pytest.mark.slow)])
def test_a_stop_notice_outside_the_steps_exits_at_once_and_ctrl_c_saves(
    when, pretrained_workdir, tmp_path):
  """SIGTERM during start-up (before any step: data, init, restore, compile) or during an
  evaluation-only run exits 3 within seconds, saving nothing, and releases the workdir;
  Ctrl-C while steps run saves the next one and exits 130. The signal goes to the whole
  process group, as a terminal's Ctrl-C and SLURM do: the Ctrl-C run decodes an image folder in
  two worker processes, which leave the notice to the main process."""
  workdir = tmp_path / "run"
  main = [sys.executable, "-m", "ssljax.main", f"--workdir={workdir}"]
  pretrain = ["--config=configs/demo.py:runlocal", "--config.total_steps=200",
              "--config.log_every_steps=1", "--config.checkpoint_every_steps=1000",
              "--config.evals.knn.random_init_baseline=false",
              "--config.evals.knn.every_steps=0", "--config.evals.recon.every_steps=0"]
  if when == "kNN evaluation":
    command = main + ["--config=configs/probe_demo.py:runlocal,protocol=knn",
                      f"--config.init_from={pretrained_workdir}"]
    wait_for, signum, status = "kNN: kNN of", signal.SIGTERM, 3
  elif when == "pre-training start-up":
    command, wait_for, signum, status = main + pretrain, "train state", signal.SIGTERM, 3
  else:
    folder = _image_folder(tmp_path / "images")
    command = main + pretrain + ["--config.input.source=image_folder",
                                 f"--config.input.data_dir={folder}",
                                 "--config.input.num_workers=2", "--config.input.canvas_size=32",
                                 "--config.input.batch_size=16"]
    signum, status, wait_for = signal.SIGINT, 130, "step 3/200"
  process, _ = _run_until(command, wait_for, workdir)
  sent = time.time()
  os.killpg(process.pid, signum)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == status, stderr[-2000:]
  assert time.time() - sent < 30 and "Traceback" not in stderr
  assert not [f for f in os.listdir(workdir) if f.startswith(".ssljax-lock")]
  # the last line of ssljax's (multiprocessing's resource tracker may add a note on grain's
  # shared-memory buffers after it, as it does at the end of any run with decoding workers)
  last_line = [l for l in stderr.strip().splitlines() if l.startswith("ssljax: ")][-1]
  saved = sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) if (
      workdir / "checkpoints").is_dir() else []
  if when == "Ctrl-C mid-run":
    assert len(saved) == 1 and 3 <= saved[0] < 200
    assert last_line == (f"ssljax: interrupted: saved step {saved[0]} in {workdir}; run the "
                         "same command again to resume")
  else:
    assert not saved and not (workdir / "results.json").exists()
    assert last_line == ("ssljax: preempted before any unsaved step (SIGTERM): run the same "
                         "command again to resume")


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


@pytest.mark.slow  # two processes; one process's SIGTERM path is in the default suite
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
