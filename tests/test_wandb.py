"""The Weights & Biases writer (`runtime.wandb_writer`): off by default without importing wandb;
on, an offline W&B run holds the config and the scalars and images of metrics.jsonl at their
steps, and a resumed run continues the same W&B run."""
import glob
import json
import os
import shutil
import struct
import sys
import time

import numpy as np
import pytest

from conftest import load_config_with
from ssljax.config import validation
from ssljax.errors import ConfigError, UserError
from ssljax.runtime import metrics, wandb_writer

LOG_BLOCK = 32768  # the .wandb transaction log is LevelDB's log format: 32 KiB blocks


def wandb_records(path):
  """The `wandb_internal_pb2.Record`s of an offline run's `run-ID.wandb` file (wandb has no
  Python reader since its Go core): a 7-byte header (":W&B", magic, version), then chunks of
  (crc32 4, length 2, type 1: full | first | middle | last) that never cross a block."""
  from wandb.proto import wandb_internal_pb2  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    data = f.read()
  assert data[:4] == b":W&B"
  records, pending, pos = [], b"", 7
  while pos + 7 <= len(data):
    if LOG_BLOCK - pos % LOG_BLOCK < 7:  # a block's tail too short for a header is padding
      pos += LOG_BLOCK - pos % LOG_BLOCK
      continue
    _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
    pending += data[pos + 7:pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4) and pending:
      records.append(wandb_internal_pb2.Record.FromString(pending))
      pending = b""
  return records


def saved_run_id(workdir):
  with open(os.path.join(workdir, wandb_writer.RUN_ID_FILE), encoding="utf-8") as f:
    return f.read()


def offline_run(workdir, index):
  """(run record, {step: {key: value}}) of the `index`-th offline W&B run in `workdir`."""
  import wandb  # pylint: disable=g-import-not-at-top
  wandb.teardown()  # `finish` returns before W&B's service has written the whole log
  run_id = saved_run_id(workdir)
  paths = sorted(glob.glob(os.path.join(workdir, "wandb", f"offline-run-*-{run_id}",
                                        f"run-{run_id}.wandb")))
  run, history = None, {}
  for record in wandb_records(paths[index]):
    kind = record.WhichOneof("record_type")
    if kind == "run":
      run = record.run
    elif kind == "history":
      history.setdefault(record.history.step.num, {}).update(
          {item.key or "/".join(item.nested_key): json.loads(item.value_json)
           for item in record.history.item})
  return run, history


@pytest.fixture(scope="session")
def wandb_home(tmp_path_factory):
  """W&B's settings, cache and data directories for the session (wandb reads its environment
  once per process, so one directory serves every test)."""
  return str(tmp_path_factory.mktemp("wandb_home"))


@pytest.fixture
def offline_wandb(wandb_home, monkeypatch):
  """Offline W&B runs (no network, git or console capture), their files in workdir/wandb."""
  pytest.importorskip("wandb")
  monkeypatch.delenv("WANDB_DIR", raising=False)
  for name, value in (("WANDB_MODE", "offline"), ("WANDB_SILENT", "true"),
                      ("WANDB_DISABLE_GIT", "true"), ("WANDB_CONSOLE", "off"),
                      ("WANDB_CONFIG_DIR", wandb_home), ("WANDB_CACHE_DIR", wandb_home),
                      ("WANDB_DATA_DIR", wandb_home)):
    monkeypatch.setenv(name, value)


def assert_history_is_the_jsonl(history, workdir, steps):
  """The W&B values at `steps` are metrics.jsonl's (its final history, `metrics.curve`)."""
  rows = [r for r in metrics.curve(metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl")))
          if r["step"] in steps]
  assert [r["step"] for r in rows] == sorted(history) == list(steps)
  for row in rows:
    logged = {k: v for k, v in row.items() if k != "step"}
    assert {k: history[row["step"]][k] for k in logged} == pytest.approx(logged, rel=1e-6)


def test_writer_mirrors_scalars_images_and_config_and_a_resume_continues_the_run(
    tmp_path, offline_wandb):
  config = load_config_with("demo", "runlocal", wandb__project="ssljax-test")
  workdir = str(tmp_path / "run")
  image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
  writer = metrics.Writer(workdir, enabled=True, config=config)
  for step in (1, 2):
    writer.scalars(step, {"loss": 1.0 / step, "lr": 0.1 * step})
  writer.scalars(2, {"knn/top1": 0.5})  # an evaluation at a step already logged
  writer.image(2, "mae_reconstruction", image)
  writer.close()
  run_id = saved_run_id(workdir)
  first, history = offline_run(workdir, 0)
  assert (first.project, first.display_name) == ("ssljax-test", "run")
  assert set(first.tags) == {"mae", "mu/4", "digits"}
  logged_config = {item.key: json.loads(item.value_json) for item in first.config.update}
  assert logged_config["method"] == "mae" and logged_config["wandb"]["project"] == "ssljax-test"
  assert_history_is_the_jsonl(history, workdir, (1, 2))
  png = history[2]["mae_reconstruction/path"]
  with open(glob.glob(os.path.join(workdir, "wandb", "offline-run-*", "files", png))[0],
            "rb") as f:
    assert f.read() == metrics.png_bytes(image)

  time.sleep(1.0)  # W&B names an offline run's directory by its start time, to the second
  writer = metrics.Writer(workdir, enabled=True, config=config)  # the resumed run
  writer.resumed(2)
  writer.scalars(3, {"loss": 0.25})
  writer.close()
  assert saved_run_id(workdir) == run_id
  resumed, history = offline_run(workdir, 1)
  assert resumed.run_id == run_id
  assert_history_is_the_jsonl(history, workdir, (3,))


def test_the_run_loop_hands_its_config_to_the_wandb_run(pretrained_workdir, tmp_path,
                                                        offline_wandb):
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "finished")
  shutil.copytree(pretrained_workdir, workdir)
  config = load_config_with("demo", "runlocal", wandb__project="p", wandb__name="demo",
                            wandb__tags=("a",))
  with config.unlocked():
    config.evals = {}  # as `pretrained_workdir` ran: finished, nothing to train or evaluate
  run_types.run(config, workdir)
  run, _ = offline_run(workdir, 0)
  assert (run.display_name, list(run.tags)) == ("demo", ["a"])
  logged_config = {item.key: json.loads(item.value_json) for item in run.config.update}
  assert logged_config["total_steps"] == config.total_steps


@pytest.mark.slow
def test_demo_run_with_wandb_on_logs_what_metrics_jsonl_has_and_resumes_the_same_run(
    tmp_path, offline_wandb):
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / "run")

  def run(total_steps):
    config = load_config_with("demo", "runlocal", total_steps=total_steps,
                              checkpoint_every_steps=3, wandb__project="ssljax-test")
    with config.unlocked():
      config.evals = {"recon": config.evals.recon}
      config.evals.recon.every_steps = 3
    run_types.run(config, workdir)

  run(3)
  run_id = saved_run_id(workdir)
  _, history = offline_run(workdir, 0)
  assert_history_is_the_jsonl(history, workdir, (1, 2, 3))
  assert history[3]["mae_reconstruction/_type"] == "image-file"
  run(6)
  assert saved_run_id(workdir) == run_id
  resumed, history = offline_run(workdir, 1)
  assert resumed.run_id == run_id
  assert_history_is_the_jsonl(history, workdir, (4, 5, 6))


def test_wandb_off_never_imports_it_and_on_without_it_names_the_extra(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)  # any `import wandb` raises ImportError
  config = load_config_with("demo", "runlocal")
  writer = metrics.Writer(str(tmp_path / "off"), enabled=True, config=config)
  writer.scalars(1, {"loss": 1.0})
  writer.image(1, "x", np.zeros((4, 4, 3), np.uint8))
  writer.close()
  on = load_config_with("demo", "runlocal", wandb__project="p")
  with pytest.raises(UserError, match=r"wandb is not installed: pip install 'ssljax\[wandb\]'"):
    metrics.Writer(str(tmp_path / "on"), enabled=True, config=on)
  metrics.Writer(str(tmp_path / "other"), enabled=False, config=on).close()  # not process 0


@pytest.mark.parametrize("field, value", [("tags", ("",)), ("tags", ("x" * 65,))])
def test_bad_wandb_fields_are_one_line_config_errors(field, value):
  config = load_config_with("demo", "runlocal", **{f"wandb__{field}": value})
  with pytest.raises(ConfigError, match=rf"^wandb\.{field}=.* is invalid: use "):
    validation.validate(config)
