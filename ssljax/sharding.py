"""Mesh and shardings: global arrays under `jax.jit` with `NamedSharding`, no pmap.

The batch is split over the `data` axis; parameters and optimizer state are replicated
(pure data parallelism). BatchNorm-style reductions over a sharded global batch are therefore
global, and results do not depend on the device count.
"""
import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from ssljax.errors import ConfigError

DATA_AXIS = "data"


def make_mesh(devices=None):
  """1-D mesh over `devices` (all devices by default) with one `data` axis.

  Axis type Auto: the Explicit default rejects ops such as concatenating a replicated cls token
  onto a batch-sharded sequence.
  """
  devices = list(devices) if devices is not None else jax.devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=devices)


def batch_sharding(mesh):
  """Leading (batch) dimension split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh):
  return NamedSharding(mesh, P())


def state_shardings(abstract_state, mesh, sharded_names=()):
  """Sharding for every leaf of a (possibly abstract) train state: replicated, except leaves
  whose last key is in `sharded_names` (a method's queues), split over the batch axis along
  their first dimension when it divides evenly."""
  def leaf_sharding(path, leaf):
    name = str(getattr(path[-1], "key", getattr(path[-1], "name", ""))) if path else ""
    if name in sharded_names and leaf.shape and leaf.shape[0] % mesh.devices.size == 0:
      return NamedSharding(mesh, P(DATA_AXIS))
    return replicated(mesh)
  return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def check_batch_size(batch_size, mesh, field="input.batch_size"):
  n = mesh.devices.size
  if batch_size % n:
    raise ConfigError(f"{field}={batch_size} is not divisible by the {n} devices: use a "
                      f"multiple of {n}")


def global_batch(local_batch, mesh):
  """This host's batch (numpy pytree, [b, ...] leaves) -> global arrays sharded over `data`."""
  sharding = batch_sharding(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)




def from_full_host_copy(array, sharding):
  """Global array from a numpy array that every process holds in full."""
  array = np.asarray(array)
  return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])
