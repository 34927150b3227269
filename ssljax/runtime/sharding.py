"""Mesh and shardings: global arrays under `jax.jit` with `NamedSharding`, no pmap.

Pure data parallelism by default: a 1-D `data` mesh, the batch split over it, the train state
replicated. With `config.mesh.fsdp` = F > 1 the mesh is 2-D, `data` x `fsdp` (devices / F
by F): the batch is split over both axes, and every state array of at least
`mesh.fsdp_min_size` elements (parameters, optimizer moments, EMA targets) is split over `fsdp`
along its largest dimension that F divides (ZeRO-3 / FSDP); smaller ones stay replicated. XLA
inserts the all-gathers and reduce-scatters. BatchNorm-style reductions over a sharded global
batch are global either way, so results do not depend on the device count or the layout.
"""
import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from ssljax.errors import ConfigError

DATA_AXIS = "data"
FSDP_AXIS = "fsdp"


def make_mesh(devices=None, fsdp=1):
  """Mesh over `devices` (all by default): 1-D `data`, or `data` x `fsdp` when `fsdp` > 1.

  Axis type Auto: the Explicit default rejects ops such as concatenating a replicated cls token
  onto a batch-sharded sequence.
  """
  devices = list(devices) if devices is not None else jax.devices()
  if fsdp < 1 or len(devices) % fsdp:
    raise ConfigError(f"mesh.fsdp={fsdp} does not divide the {len(devices)} devices: use a "
                      f"divisor of {len(devices)} (1 = pure data parallelism)")
  if fsdp == 1:
    return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                         devices=devices)
  return jax.make_mesh((len(devices) // fsdp, fsdp), (DATA_AXIS, FSDP_AXIS),
                       axis_types=(AxisType.Auto,) * 2, devices=devices)


def batch_sharding(mesh):
  """Leading (batch) dimension split over every mesh axis."""
  axes = tuple(mesh.axis_names)
  return NamedSharding(mesh, P(axes[0] if len(axes) == 1 else axes))


def replicated(mesh):
  return NamedSharding(mesh, P())


def state_shardings(abstract_state, mesh, sharded_names=(), fsdp_min_size=2**16):
  """Sharding for every leaf of a (possibly abstract) train state.

  Leaves whose last key is in `sharded_names` (a method's queues) are split over the batch
  axes along their first dimension when it divides evenly; on an FSDP mesh, leaves of at least
  `fsdp_min_size` elements are split over `fsdp` along their largest divisible dimension;
  everything else is replicated.
  """
  fsdp = mesh.shape.get(FSDP_AXIS, 1)

  def leaf_sharding(path, leaf):
    name = str(getattr(path[-1], "key", getattr(path[-1], "name", ""))) if path else ""
    if name in sharded_names and leaf.shape and leaf.shape[0] % mesh.devices.size == 0:
      return batch_sharding(mesh)
    if fsdp > 1 and leaf.shape and np.prod(leaf.shape) >= fsdp_min_size:
      divisible = [d for d in np.argsort(leaf.shape)[::-1] if leaf.shape[d] % fsdp == 0]
      if divisible:
        spec = [None] * len(leaf.shape)
        spec[divisible[0]] = FSDP_AXIS
        return NamedSharding(mesh, P(*spec))
    return replicated(mesh)
  return jax.tree_util.tree_map_with_path(leaf_sharding, abstract_state)


def replicated_bytes(abstract_state, shardings):
  """(bytes every device holds in full, bytes of the whole state) for a train state."""
  leaves = jax.tree.leaves(abstract_state)
  specs = jax.tree.leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
  size = lambda leaf: int(np.prod(leaf.shape)) * np.dtype(leaf.dtype).itemsize
  full = sum(size(leaf) for leaf, s in zip(leaves, specs) if s.is_fully_replicated)
  return full, sum(size(leaf) for leaf in leaves)


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
