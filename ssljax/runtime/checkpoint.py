"""Orbax checkpoints in `workdir/checkpoints`: async, keep the newest N, auto-resume.

A checkpoint holds the train state (params, optimizer state, step, method state), the data
iterator's position, the config as JSON, and a checksum of every state array
(`runtime.checksums`), verified on restore. Restores use abstract targets with the current
mesh's shardings, so a checkpoint written on 8 devices restores on 1 and vice versa.

Resuming takes the newest readable checkpoint. Half-written ones (orbax's tmp directories)
are never listed; a finalised one whose files are damaged (unreadable, or read back with data
that does not match its checksums) is moved to
`workdir/checkpoints_unreadable/` with a warning and the previous one is used; one whose
arrays do not fit the current config is an error naming the first mismatching array.
"""
import json
import logging

import jax
from jax.experimental import multihost_utils
import orbax.checkpoint as ocp

from ssljax.config import loading
from ssljax.errors import UserError
from ssljax.runtime import checksums, storage

log = logging.getLogger(__name__)


class CheckpointMismatch(UserError):
  """A checkpoint's arrays do not fit the state the current config builds."""


def directory_of(workdir):
  """Where a run in `workdir` keeps its checkpoints (a URL for an object-store workdir)."""
  return storage.join(workdir, "checkpoints")


def _abstract_shapes(tree):
  """{"/params/encoder/...": shape} of a pytree of arrays or ShapeDtypeStructs."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {checksums.path_name(path): tuple(leaf.shape) for path, leaf in leaves}


def _saved_shapes(tree, prefix=""):
  """The same for orbax's metadata tree (nested dicts and lists of ArrayMetadata)."""
  if tree is None:  # an empty node (optax's EmptyState, a None field)
    return {}
  if isinstance(tree, dict):
    items = tree.items()
  elif isinstance(tree, (list, tuple)):
    items = enumerate(tree)
  else:
    return {prefix: tuple(tree.shape)}
  shapes = {}
  for key, value in items:
    shapes.update(_saved_shapes(value, f"{prefix}/{key}"))
  return shapes


def describe_mismatch(saved, expected):
  """First difference of two {path: shape} maps, parameters first; None when they agree."""
  for path in sorted(set(saved) | set(expected), key=lambda p: (not p.startswith("/params"), p)):
    if path not in saved:
      return f"it has no {path} (shape {expected[path]}), which this config builds"
    if path not in expected:
      return f"it has {path} (shape {saved[path]}), which this config does not build"
    if saved[path] != expected[path]:
      return f"{path} has shape {saved[path]} there and {expected[path]} in this config"
  return None


class DamagedCheckpoint(Exception):
  """A checkpoint read back with data that differs from what was saved (bit rot)."""


class CheckpointWriteError(UserError):
  """A checkpoint could not be written (disk full, permissions); earlier ones are kept."""


def _short_reason(error, limit=240):
  """"Type: message" in one line, keeping the end of long messages (where the OS error is)."""
  text = " ".join(str(error).split())
  if len(text) > limit:
    text = "..." + text[-limit:]
  return f"{type(error).__name__}: {text}"


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with the items ssljax saves."""

  def __init__(self, workdir, *, keep, async_save=True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self.directory = directory_of(workdir)
    self._pending_step = None  # the step of an async save not yet known to be final
    self._failed = False  # a write failed (CheckpointWriteError raised)
    self.unreadable_directory = self.directory + "_unreadable"
    self._manager = ocp.CheckpointManager(
        storage.path(self.directory), options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "data": ocp.JsonCheckpointHandler(),
                       "config": ocp.JsonCheckpointHandler(),
                       "checksums": ocp.JsonCheckpointHandler()})

  def latest_step(self):
    return self._manager.latest_step()

  def _write_failed(self, error):
    step, self._pending_step = self._pending_step, None
    self._failed = True
    try:  # let orbax's background threads finish with the failed save before removing it
      self._manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except  # the same failure, reported below
      pass
    if jax.process_index() == 0:  # the partial write is never a checkpoint: free its space
      for partial in storage.path(self.directory).glob(f"{step}.orbax-checkpoint-tmp*"):
        try:
          partial.rmtree()
        except OSError:
          pass
    self._manager.reload()
    return CheckpointWriteError(
        f"writing checkpoint step {step} in {self.directory} failed ({_short_reason(error)}): "
        f"free space or fix permissions there and rerun, which {self.resume_point()}")

  def resume_point(self):
    """What a rerun starts from, in words, for error messages."""
    latest = self._manager.latest_step()
    if latest is None:
      return "starts from the beginning (no checkpoint was written yet)"
    return f"resumes from the last good checkpoint, step {latest}"

  def save(self, step, state, data_state, config_json):
    """Starts an async save of `step` (the caller picks the steps).

    A failed write (of this step, or of the previous async one) raises CheckpointWriteError;
    older checkpoints are only deleted (keep-N) after a newer one is final.
    """
    try:
      self.wait()
      sums = checksums.record(state)
      self._pending_step = step
      self._manager.save(step, force=True, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          data=ocp.args.JsonSave(data_state),
          config=ocp.args.JsonSave({"config": config_json}),
          checksums=ocp.args.JsonSave(sums)))
    except CheckpointWriteError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # OS and tensorstore errors
      raise self._write_failed(e) from e

  def restore(self, step, abstract_state, shardings):
    """(state, data_state) of `step`, placed with `shardings`.

    Raises DamagedCheckpoint when an array does not match the checksum saved with it.
    """
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract_state, shardings)
    items = dict(state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore())
    has_checksums = (storage.path(self.directory) / str(step) / "checksums").exists()
    if has_checksums:  # checkpoints of ssljax before checksums have none
      items["checksums"] = ocp.args.JsonRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    if has_checksums:
      mismatch = checksums.first_mismatch(restored.checksums, checksums.of(restored.state))
      if mismatch:
        raise DamagedCheckpoint(mismatch)
    return restored.state, restored.data

  def saved_config(self, step):
    """The config dict saved with `step`, or None if it cannot be read."""
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore()))
      return json.loads(restored.config["config"])
    except Exception:  # pylint: disable=broad-except  # only used to explain a mismatch
      return None

  def config_changes(self, step, config_json):
    """["model.width: 64 -> 32", ...]: how `config_json` differs from the config saved with
    `step`, the fields that shape the state first (model, method, the method's section)."""
    saved = self.saved_config(step)
    if saved is None or config_json is None:
      return []
    method = saved.get("method", "")
    return sorted(loading.changed_fields(saved, json.loads(config_json)),
                  key=lambda c: not c.startswith(("model.", "method:", f"{method}.")))

  def _config_changes(self, step, config_json):
    changes = self.config_changes(step, config_json)
    if not changes:
      return ""
    more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
    return f" (config changed since: {'; '.join(changes[:3])}{more})"

  def restore_latest(self, abstract_state, shardings, config_json=None):
    """(step, state, data_state) of the newest readable checkpoint, or None if there is none.

    Raises CheckpointMismatch when the newest readable one does not fit `abstract_state`
    (naming the config fields that changed since, given the current `config_json`), and
    UserError when checkpoints exist but none can be read.
    """
    steps = sorted(self._manager.all_steps(), reverse=True)
    expected = _abstract_shapes(abstract_state)
    for step in steps:
      try:
        saved_tree = self._manager.item_metadata(step)["state"].tree
      except Exception as e:  # pylint: disable=broad-except  # damaged files fail many ways
        self._set_aside(step, e)
        continue
      mismatch = describe_mismatch(_saved_shapes(saved_tree), expected)
      if mismatch is None:
        try:
          return (step, *self.restore(step, abstract_state, shardings))
        except Exception as e:  # pylint: disable=broad-except
          self._set_aside(step, e)
          continue
      raise CheckpointMismatch(
          f"checkpoint step {step} in {self.directory} does not fit this config"
          f"{self._config_changes(step, config_json)}: {mismatch}; "
          f"run with the config it was written with (in {self.directory}/{step}/config) or "
          "pass a new --workdir")
    if steps:
      raise UserError(f"no checkpoint in {self.directory} is readable (steps {steps} were "
                      f"moved to {self.unreadable_directory}): restore their files, or "
                      "rerun to start from scratch")
    return None

  def _set_aside(self, step, error):
    """Moves a damaged checkpoint out of the way (kept, never deleted) and warns."""
    reason = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:200]}"
    log.warning("checkpoint step %d in %s is unreadable (%s): moved to %s, trying the previous "
                "one", step, self.directory, reason, self.unreadable_directory)
    if jax.process_index() == 0:
      aside = storage.path(self.unreadable_directory)
      aside.mkdir(parents=True, exist_ok=True)
      target = aside / str(step)
      while target.exists():
        target = aside / (target.name + "_")
      (storage.path(self.directory) / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"ssljax checkpoint {step} set aside")
    self._manager.reload()

  def wait(self):
    """Blocks until pending async saves are final; raises CheckpointWriteError if one failed."""
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      raise self._write_failed(e) from e
    self._pending_step = None

  def close(self):
    """Waits for pending async saves, then releases the manager. After a failed write, what
    orbax still reports about that save while closing is logged, not raised: the
    CheckpointWriteError already said it."""
    try:
      self.wait()
    finally:
      try:
        self._manager.close()
      except Exception as e:  # pylint: disable=broad-except
        if not self._failed:
          raise
        log.warning("closing the checkpoint manager after the failed write: %s",
                    _short_reason(e))
