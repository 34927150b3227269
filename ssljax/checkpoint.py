"""Orbax checkpoints in `workdir/checkpoints`: async, keep the newest N, auto-resume.

A checkpoint holds the train state (params, optimizer state, step, method state), the data
iterator's position, and the config as JSON. Restores use abstract targets with the current
mesh's shardings, so a checkpoint written on 8 devices restores on 1 and vice versa.
"""
import os

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin wrapper over `ocp.CheckpointManager` with the items ssljax saves."""

  def __init__(self, workdir, *, keep, async_save=True):
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=async_save)
    self.directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self):
    return self._manager.latest_step()

  def save(self, step, state, data_state, config_json):
    """Starts an async save of `step` (the caller picks the steps)."""
    self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave({"config": config_json})))

  def restore(self, step, abstract_state, shardings):
    """(state, data_state) of `step`, placed with `shardings`."""
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abstract_state, shardings)
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
    return restored.state, restored.data

  def wait(self):
    """Blocks until pending async saves are final."""
    self._manager.wait_until_finished()

  def close(self):
    """Waits for pending async saves, then releases the manager."""
    self.wait()
    self._manager.close()
