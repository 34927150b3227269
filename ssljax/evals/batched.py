"""One batched pass of a jitted function over arrays every host holds in full: batches of
`batch_size` examples sharded over the mesh, each padded to one compiled shape (a multiple of
the device count), padding dropped from the outputs.

Used by every evaluator: kNN features, test top-1 of a probe head or a fine-tuned model.
"""
import numpy as np

from ssljax.runtime import sharding


def map_batches(fn, variables, inputs, batch_size, mesh):
  """inputs [N, ...] -> np.ndarray [N, ...] of `fn(variables, batch)`."""
  devices = mesh.devices.size
  padded_size = -(-batch_size // devices) * devices
  batch_sharding = sharding.batch_sharding(mesh)
  outputs = []
  for start in range(0, len(inputs), batch_size):
    chunk = inputs[start:start + batch_size]
    real = len(chunk)
    chunk = np.concatenate([chunk, np.zeros((padded_size - real,) + chunk.shape[1:],
                                            chunk.dtype)])
    outputs.append(np.asarray(fn(variables, sharding.from_full_host_copy(chunk,
                                                                         batch_sharding)))[:real])
  return np.concatenate(outputs)
