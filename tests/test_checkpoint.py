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

from conftest import load_config, load_config_with
from ssljax.run import run_types
from ssljax.runtime import checkpoint, metrics, pretrained
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


def _flip_bytes(step_dir):
  """Bit rot that still decodes: one bit of one stored value of the largest parameter flipped,
  the files otherwise valid (orbax compresses chunks with zstd, so flipped file bytes either
  fail to decode, which the unreadable case covers, or decode to other values, as here)."""
  state_dir = os.path.join(step_dir, "state")
  with ocp.StandardCheckpointer() as reader:
    state = reader.restore(state_dir)
  leaves, treedef = jax.tree_util.tree_flatten(state)
  index = max(range(len(leaves)), key=lambda i: np.size(leaves[i]))
  bits = np.array(leaves[index]).view(np.uint32)
  bits.reshape(-1)[bits.size // 2] ^= 1 << 20
  leaves[index] = bits.view(np.float32)
  shutil.rmtree(state_dir)
  with ocp.StandardCheckpointer() as writer:
    writer.save(state_dir, jax.tree_util.tree_unflatten(treedef, leaves))


@pytest.mark.parametrize("damage,reason", [(_damage, "unreadable"),
                                           (_flip_bytes, "does not match its checksum")])
def test_damaged_newest_checkpoint_is_set_aside_and_the_previous_one_resumes(
    damage, reason, finished_run, tmp_path, caplog):
  workdir = _copy(finished_run, tmp_path)
  damage(workdir / "checkpoints" / "6")
  with caplog.at_level(logging.WARNING, logger="ssljax.runtime.checkpoint"):
    summary = run_types.run(load_config("demo", "runlocal"), str(workdir))
  assert any("checkpoint step 6" in r.message and reason in r.message
             for r in caplog.records)
  losses = _losses(workdir)
  assert sorted(losses) == [4, 5, 6] and summary["step"] == 6
  for step in (4, 5, 6):
    assert losses[step] == finished_run[1][step]  # the same curve as the uninterrupted run
  assert os.path.isdir(workdir / "checkpoints_unreadable" / "6")  # kept, not deleted
  assert sorted(int(d) for d in os.listdir(workdir / "checkpoints") if d.isdigit()) == [3, 6]


def test_an_init_from_checkpoint_with_bit_rot_is_refused(finished_run, tmp_path):
  workdir = _copy(finished_run, tmp_path)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  pretrained.load(str(workdir / "checkpoints" / "6"), device)  # intact: loads
  _flip_bytes(workdir / "checkpoints" / "6")
  with pytest.raises(UserError, match=r"init_from checkpoint .*/6 is damaged \(the data of "
                     r"/.* does not match its checksum"):
    pretrained.load(str(workdir / "checkpoints" / "6"), device)


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


def test_a_checkpoint_past_total_steps_is_an_error_naming_both(finished_run, tmp_path):
  workdir = _copy(finished_run, tmp_path)
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.total_steps = 4
  with pytest.raises(UserError, match=r"checkpoint in .*checkpoints is at step 6, past this "
                     r"run's 4 steps: set total_steps .* or pass a new --workdir"):
    run_types.run(config, str(workdir))


def test_resuming_under_a_changed_config_names_the_changes(finished_run, tmp_path, caplog):
  workdir = _copy(finished_run, tmp_path)
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.seed, config.input.batch_size, config.total_steps = 1, 16, 7
  with caplog.at_level(logging.WARNING, logger="ssljax"):
    run_types.run(config, str(workdir))
  [warning] = [r.message for r in caplog.records if "changed config" in r.message]
  assert warning.startswith("resuming step 6 under a changed config: ")
  for change in ("input.batch_size: 32 -> 16", "seed: 0 -> 1", "total_steps: 6 -> 7"):
    assert change in warning


def test_an_evaluation_checkpoint_does_not_resume_on_another_encoder(pretrained_workdir,
                                                                     tmp_path, caplog):
  config = load_config_with("probe_demo", "runlocal", init_from=pretrained_workdir,
                            total_epochs=None, total_steps=2, eval_every_steps=1000)
  run_types.run(config, str(tmp_path))
  other = os.path.join(pretrained_workdir, "checkpoints")  # names another (here: the same) one
  with config.unlocked():
    config.init_from, config.total_steps = other, 3
  with pytest.raises(UserError, match=r"checkpoint in .* \(step 2\) was trained on another "
                     r"encoder \(init_from: .* -> .*checkpoints'\): pass a new --workdir, or "
                     r"--config.resume_with_changed_encoder=true"):
    run_types.run(config, str(tmp_path))
  with config.unlocked():
    config.resume_with_changed_encoder = True
  with caplog.at_level(logging.WARNING, logger="ssljax"):
    assert run_types.run(config, str(tmp_path))["step"] == 3
  assert any("changed config: init_from" in r.message for r in caplog.records)
