"""Encoders from pre-training checkpoints, for evaluation runs (`config.init_from`).

`init_from` is a pre-training workdir (its newest checkpoint is used), its `checkpoints/`
directory, or one step directory `checkpoints/N`. What is loaded: the pre-training config saved
with the checkpoint (it says which method and model to build) and the model variables
(`params` and non-trainable collections such as BatchNorm statistics); the optimizer state and
the decoder/projector are read but only the method's `encode` uses what it needs. Arrays are
verified against the checksums saved with them (`runtime.checksums`).
"""
import json

import jax
import ml_collections
import orbax.checkpoint as ocp

from ssljax.errors import UserError
from ssljax.runtime import checksums, storage


def _step_directory(location):
  """The checkpoint step directory `location` names (a workdir, its checkpoints/, or a step),
  as an epath.Path (local or an object store)."""
  given = storage.path(location)
  for candidate in (given, given / "checkpoints"):
    if (candidate / "state").is_dir():
      return candidate
    if candidate.is_dir():
      steps = [int(d.name) for d in candidate.iterdir()
               if d.name.isdigit() and (d / "state").is_dir()]
      if steps:
        return candidate / str(max(steps))
  raise UserError(f"init_from={given} holds no checkpoint: pass a pre-training workdir, its "
                  "checkpoints/ directory or a checkpoints/N step directory")


def load(init_from, sharding):
  """(pretraining config, variables {"params": ..., other collections}, step directory).

  Arrays are placed with `sharding` (e.g. replicated over the evaluation mesh), whatever the
  device count of the run that wrote them.
  """
  step_dir = _step_directory(init_from)
  try:
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
      saved_config = json.loads(reader.restore(step_dir / "config")["config"])
    if not saved_config.get("method"):  # an evaluation run's own checkpoint
      encoder = saved_config.get("init_from") or saved_config.get("baseline") or "?"
      raise UserError(f"init_from={init_from} is a {saved_config.get('protocol', 'evaluation')} "
                      f"run's workdir, not a pre-training one: pass the pre-training workdir "
                      f"it evaluated (its init_from, {encoder})")
    with ocp.StandardCheckpointer() as reader:
      metadata = reader.metadata(step_dir / "state").item_metadata.tree
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding),
                            metadata)
      state = reader.restore(step_dir / "state", target)  # the whole train state
    saved_sums = None
    if (step_dir / "checksums").is_dir():  # checkpoints since checksums
      with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as reader:
        saved_sums = reader.restore(step_dir / "checksums")
  except UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # damaged files fail many ways
    raise UserError(f"init_from checkpoint {step_dir} cannot be read ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200] if str(e) else ''}): pass another "
                    "checkpoint") from e
  mismatch = saved_sums and checksums.first_mismatch(saved_sums, checksums.of(state))
  if mismatch:
    raise UserError(f"init_from checkpoint {step_dir} is damaged ({mismatch}): pass another "
                    f"checkpoint, e.g. an earlier step in {step_dir.parent}")
  config = ml_collections.ConfigDict(saved_config)
  config.lock()
  return (config, {"params": state["params"], **(state.get("model_state") or {})},
          str(step_dir))
