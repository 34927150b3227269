"""The command line: overrides, typos, and input errors as one line with exit status 2."""
import json
import os
import subprocess
import sys
import time

from conftest import REPO


def _run(*args, env=None):
  full_env = dict(os.environ, **(env or {}))
  full_env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "ssljax.main", *args], cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=600)


def test_runlocal_with_overrides_trains_and_prints_the_summary(tmp_path):
  result = _run("--config=configs/mae_vitl.py:runlocal", f"--workdir={tmp_path}",
                "--config.input.batch_size=16", "--config.total_steps=3",
                "--config.model.mlp_dim=96",  # an optional field, None in the recipe
                "--config.optim.warmup_steps=None")  # unset (1 in the recipe)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "finished step 3/3" in result.stdout and "final loss" in result.stdout
  assert "knn/top1_k20_t0.07" in result.stdout and "random-init" not in result.stdout
  with open(tmp_path / "checkpoints" / "3" / "config" / "metadata", encoding="utf-8") as f:
    saved = json.loads(json.load(f)["config"])
  assert saved["input"]["batch_size"] == 16 and saved["model"]["mlp_dim"] == 96
  assert saved["optim"]["warmup_steps"] is None

  # an evaluation run from that workdir prints its result and no orbax noise about the item
  # it reads on its own (the step's _CHECKPOINT_METADATA is one level up)
  probe = _run("--config=configs/probe_demo.py:protocol=knn", f"--config.init_from={tmp_path}",
               f"--workdir={tmp_path / 'knn'}")
  assert probe.returncode == 0, probe.stderr[-2000:]
  assert (tmp_path / "knn" / "results.json").is_file()
  assert "Metadata file does not exist" not in probe.stderr, probe.stderr[-2000:]


def test_imagenet_recipe_fails_fast_naming_how_to_prepare_it(tmp_path):
  result = _run("--config=configs/mae_vitl.py", f"--workdir={tmp_path / 'run'}",
                env={"TFDS_DATA_DIR": str(tmp_path / "tfds")})
  assert result.returncode == 2
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr
  assert "imagenet2012" in lines[-1] and "tfds build imagenet2012" in lines[-1]
  assert "not prepared" in lines[-1]


def test_bad_config_value_is_one_line_with_status_2(tmp_path):
  result = _run("--config=configs/demo.py", f"--workdir={tmp_path}",
                "--config.input.image_size=30")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1] == (
      "ssljax: error: input.image_size 30 is not divisible by patch_size 4: change "
      "input.image_size or model.variant")


def test_importing_the_run_types_leaves_jax_unstarted():
  """`jax.distributed.initialize` must come before any device use: no module a run imports may
  touch a device at import time (a module-level jnp array would)."""
  code = ("from ssljax.run import run_types\n"
          "from jax._src import xla_bridge\n"
          "assert not xla_bridge._backends, 'a device was used at import'\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]


def test_a_checkpoints_path_that_cannot_take_checkpoints_exits_2_at_once(tmp_path):
  """It used to fail at the first save, print the error and then hang on orbax's threads."""
  (tmp_path / "checkpoints").write_text("not a directory")
  start = time.time()
  result = _run("--config=configs/demo.py:runlocal", f"--workdir={tmp_path}")
  assert result.returncode == 2 and time.time() - start < 60
  assert result.stderr.strip().splitlines()[-1] == (
      f"ssljax: error: {tmp_path / 'checkpoints'} is a file, not the directory this run saves "
      "checkpoints in: move it away or pass another --workdir")
  assert not (tmp_path / ".ssljax-lock.0").exists()


_LIBRARY_FAILURES = '''
import logging, sys, threading
from ssljax.runtime import cli_logging
cli_logging.setup(verbose=VERBOSE)
record = logging.LogRecord("absl", logging.ERROR, "/x/orbax/checkpoint/future.py", 1,
                           "save thread raised", None, (OSError, OSError(28, "full"), None))
logging.getLogger("absl").handle(record)  # orbax's per-thread error with its traceback
def fail():
  raise OSError(28, "No space left on device")
for _ in range(3):  # the same failure in three threads
  t = threading.Thread(target=fail); t.start(); t.join()
closed = threading.Thread(target=lambda: (_ for _ in ()).throw(RuntimeError("loop is closed")))
closed.start(); closed.join()
'''


def test_library_threads_failing_after_a_full_disk_print_one_line_unless_verbose():
  """A full disk fails orbax's saver threads and TensorBoard's writer: hundreds of traceback
  lines before ssljax's own one-line error (459 on a real full tmpfs) become one line."""
  quiet, verbose = (subprocess.run([sys.executable, "-c", _LIBRARY_FAILURES.replace(
      "VERBOSE", flag)], cwd=REPO, capture_output=True, text=True, timeout=60)
                    for flag in ("False", "True"))
  assert quiet.stderr.strip().splitlines() == [
      "ssljax: background thread Thread-1 (fail) failed (OSError: [Errno 28] No space left on "
      "device)"]
  assert verbose.stderr.count("Traceback") >= 4 and "save thread raised" in verbose.stderr
