"""Damaged, partial and mismatching checkpoints: resume from the newest good one, or say why."""
import errno
import glob
import logging
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import load_config
from ssljax.run import run_types
from ssljax.runtime import checkpoint, metrics
from ssljax.errors import UserError


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A complete demo:runlocal run (6 steps, checkpoints at 3 and 6) and its losses."""
  workdir = tmp_path_factory.mktemp("finished")
  run_types.run(load_config("demo", "runlocal"), str(workdir))
  return workdir, _losses(workdir)


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


def _copy(finished_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_run[0], workdir)
  os.remove(workdir / "metrics.jsonl")
  return workdir


def _damage(step_dir):
  for path in glob.glob(os.path.join(step_dir, "state", "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"\0garbage")


def test_half_written_checkpoint_is_ignored(finished_run, tmp_path):
  workdir = _copy(finished_run, tmp_path)
  partial = workdir / "checkpoints" / "9.orbax-checkpoint-tmp-1712345678"
  (partial / "state").mkdir(parents=True)
  (partial / "state" / "d").write_bytes(b"half")
  summary = run_types.run(load_config("demo", "runlocal"), str(workdir))
  assert summary["final_loss"] is None and summary["step"] == 6  # resumed from 6: done


def test_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_resumes(
    finished_run, tmp_path, caplog):
  workdir = _copy(finished_run, tmp_path)
  _damage(workdir / "checkpoints" / "6")
  with caplog.at_level(logging.WARNING, logger="ssljax.runtime.checkpoint"):
    summary = run_types.run(load_config("demo", "runlocal"), str(workdir))
  assert any("checkpoint step 6" in r.message and "unreadable" in r.message
             for r in caplog.records)
  losses = _losses(workdir)
  assert sorted(losses) == [4, 5, 6] and summary["step"] == 6
  for step in (4, 5, 6):
    assert losses[step] == finished_run[1][step]  # the same curve as the uninterrupted run
  assert os.path.isdir(workdir / "checkpoints_unreadable" / "6")  # kept, not deleted
  assert sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) == [3, 6]


def test_no_readable_checkpoint_is_an_error_that_keeps_the_files(finished_run, tmp_path):
  workdir = _copy(finished_run, tmp_path)
  for step in (3, 6):
    _damage(workdir / "checkpoints" / str(step))
  with pytest.raises(UserError, match="no checkpoint .* is readable"):
    run_types.run(load_config("demo", "runlocal"), str(workdir))
  assert sorted(os.listdir(workdir / "checkpoints_unreadable")) == ["3", "6"]


def test_checkpoint_of_another_model_shape_names_the_parameter(finished_run, tmp_path):
  workdir = _copy(finished_run, tmp_path)
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.model.mlp_dim = 200  # runlocal takes its ViT size from the table
  with pytest.raises(checkpoint.CheckpointMismatch) as error:
    run_types.run(config, str(workdir))
  message = str(error.value)
  assert "checkpoint step 6" in message and "/params/encoder/" in message
  assert "mlp" in message and f"{config.model.mlp_dim}" in message and "\n" not in message
  assert os.path.isdir(workdir / "checkpoints" / "6")  # nothing was moved or deleted


def test_describe_mismatch_reports_missing_extra_and_reshaped_arrays():
  expected = {"/params/a": (2, 3), "/params/b": (4,), "/opt_state/0/mu/a": (2, 3)}
  assert checkpoint.describe_mismatch(dict(expected), expected) is None
  assert "/params/b has shape (5,) there and (4,)" in checkpoint.describe_mismatch(
      {**expected, "/params/b": (5,)}, expected)
  assert "has no /params/a" in checkpoint.describe_mismatch(
      {k: v for k, v in expected.items() if k != "/params/a"}, expected)
  assert "has /params/c" in checkpoint.describe_mismatch({**expected, "/params/c": (1,)},
                                                          expected)


def _fail_writes(monkeypatch):
  """Every later checkpoint write fails as on a full disk."""
  async def no_space(*args, **kwargs):
    del args, kwargs
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", no_space)


def test_failed_write_is_an_error_and_keep_n_never_deletes_the_last_good_one(
    tmp_path, monkeypatch):
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=1)
  good = {"w": jnp.arange(4.0)}
  ckpt.save(1, good, {"position": 1}, "{}")
  ckpt.wait()
  _fail_writes(monkeypatch)
  with pytest.raises(checkpoint.CheckpointWriteError) as error:
    ckpt.save(2, {"w": jnp.zeros(4)}, {"position": 2}, "{}")
    ckpt.wait()
  assert str(error.value).startswith(f"writing checkpoint step 2 in {ckpt.directory} failed "
                                     "(OSError: [Errno 28] No space left on device)")
  assert str(error.value).endswith("the last good checkpoint, step 1")
  monkeypatch.undo()
  reopened = checkpoint.Checkpointer(str(tmp_path), keep=1)
  step, state, data_state = reopened.restore_latest(
      jax.eval_shape(lambda: good), {"w": jax.sharding.SingleDeviceSharding(jax.devices()[0])})
  assert step == 1 and data_state == {"position": 1}
  np.testing.assert_array_equal(state["w"], good["w"])
  reopened.close()


def test_training_stops_with_the_write_error_and_resumes_from_the_last_good_checkpoint(
    finished_run, tmp_path, monkeypatch):
  workdir = _copy(finished_run, tmp_path)
  shutil.rmtree(workdir / "checkpoints" / "6")
  _fail_writes(monkeypatch)
  with pytest.raises(checkpoint.CheckpointWriteError, match="step 6 .* step 3$"):
    run_types.run(load_config("demo", "runlocal"), str(workdir))
  assert [d for d in os.listdir(workdir / "checkpoints") if d.isdigit()] == ["3"]


def test_a_failed_first_write_says_the_rerun_starts_from_the_beginning(tmp_path, monkeypatch):
  """It used to say "resumes from the last good checkpoint, step None"."""
  from ssljax.runtime import checkpoint  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.Checkpointer(str(tmp_path), keep=2, async_save=False)
  assert ckpt.resume_point() == "starts from the beginning (no checkpoint was written yet)"
  ckpt.close()
