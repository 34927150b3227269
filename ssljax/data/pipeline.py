"""The training input pipeline: grain, sharded per host, seeded shuffle, checkpointable.

Global batch s holds elements [s*G, (s+1)*G) of an endless stream that reshuffles every epoch
(grain folds the epoch into the seed). Host p reads the contiguous slice [p*b, (p+1)*b) of it
(b = G / process_count), so the global batch, in order, is the same for any number of hosts.
The iterator's state (its position in the stream) is saved with checkpoints.
"""
import sys

import grain
import jax
import numpy as np

from ssljax.errors import ConfigError


class _HostSlice:
  """Random-access view of one host's slice of every global batch of `stream`."""

  def __init__(self, stream, global_batch, process_index, process_count):
    self._stream = stream
    self._global = global_batch
    self._local = global_batch // process_count
    self._offset = process_index * self._local

  def __len__(self):
    return sys.maxsize

  def __getitem__(self, index):
    step, j = divmod(index, self._local)
    return self._stream[step * self._global + self._offset + j]


def _keep_image_label(example):
  return {"image": np.asarray(example["image"], np.uint8),
          "label": np.asarray(example["label"], np.int32)}


def train_iterator(source, global_batch_size, seed, *, process_index=None, process_count=None,
                   num_threads=4):
  """Endless iterator of this host's batches {"image": [b, H, W, 3], "label": [b]}."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size % process_count:
    raise ConfigError(f"input.batch_size={global_batch_size} is not divisible by the "
                      f"{process_count} processes: use a multiple of {process_count}")
  if len(source) < global_batch_size:
    raise ConfigError(f"input.batch_size={global_batch_size} exceeds the {len(source)} "
                      f"examples of {getattr(source, 'name', 'the dataset')}: lower it")
  stream = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
  local = global_batch_size // process_count
  host = grain.MapDataset.source(_HostSlice(stream, global_batch_size, process_index,
                                            process_count))
  # Examples are read and decoded by `num_threads` threads, two batches ahead, then batched.
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * local)
  examples = host.map(_keep_image_label).to_iter_dataset(options)
  return iter(examples.batch(local, drop_remainder=True))


class ArrayBatches:
  """Endless batches {"feature": [b, ...], "label": [b]} of arrays every host holds in full
  (features cached from a frozen encoder): a seeded permutation per epoch, full batches only,
  this host's slice of each global batch; its position is checkpointed like `train_iterator`'s."""

  def __init__(self, features, labels, global_batch_size, seed):
    self._features, self._labels = features, labels
    self._batch, self._seed, self._next = global_batch_size, seed, 0

  def __iter__(self):
    return self

  def __next__(self):
    per_epoch = len(self._labels) // self._batch
    epoch, position = divmod(self._next, per_epoch)
    order = np.random.default_rng([self._seed, epoch]).permutation(len(self._labels))
    index = order[position * self._batch:(position + 1) * self._batch]
    index = np.array_split(index, jax.process_count())[jax.process_index()]
    self._next += 1
    return {"feature": self._features[index], "label": self._labels[index]}

  def get_state(self):
    return {"next_batch": self._next}

  def set_state(self, state):
    self._next = int(state["next_batch"])
