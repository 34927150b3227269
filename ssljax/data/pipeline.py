"""The training input pipeline: grain, sharded per host, seeded shuffle, worker processes,
checkpointable.

Global batch s holds elements [s*G, (s+1)*G) of an endless stream that reshuffles every epoch
(grain folds the epoch into the seed). Host p reads the contiguous slice [p*b, (p+1)*b) of it
(b = G / process_count), so the global batch, in order, is the same for any number of hosts.
Batches are read in chunks of consecutive examples by `num_workers` processes (grain's
`mp_prefetch`; chunks come back in order), each of which reads `num_threads` chunks at once;
neither count changes a batch. The iterator's state is the index of the next batch, saved
with checkpoints. Every batch carries each example's position in the source, "index" int32 [b]
(NPID's memory-bank rows; other methods ignore it).
"""
import os
import signal
import sys

from absl import flags
import grain
import jax
import numpy as np

from ssljax.data import decode, sources
from ssljax.errors import ConfigError, DataError


CHUNK = 64  # examples a worker reads as one unit (at most); bounds its memory


def chunk_size(local_batch, limit=CHUNK):
  """The largest divisor of `local_batch` that is at most `limit`."""
  return max(d for d in range(1, min(local_batch, limit) + 1) if local_batch % d == 0)


class _HostChunks:
  """Random access to this host's examples in chunks: chunk c holds examples
  [c*n, (c+1)*n) of this host's sequence, whose batch k is this host's slice of global batch k
  of `stream`; collated ({"image", "label", "index", "skipped", and with a `canvas` side the
  images in canvases [n, C, C, 3] with their "extent" [n, 2])."""

  def __init__(self, stream, global_batch, process_index, process_count, chunk, canvas):
    self._stream = stream
    self._global = global_batch
    self._local = global_batch // process_count
    self._offset = process_index * self._local
    self._chunk, self._canvas = chunk, canvas

  def __len__(self):
    return sys.maxsize // self._global

  def __getitem__(self, c):
    examples = []
    for i in range(c * self._chunk, (c + 1) * self._chunk):
      step, j = divmod(i, self._local)
      examples.append(self._stream[step * self._global + self._offset + j])
    chunk = {"label": np.asarray([e["label"] for e in examples], np.int32),
             "index": np.asarray([e["index"] for e in examples], np.int32)}
    images = [np.asarray(e["image"], np.uint8) for e in examples]
    if self._canvas:
      chunk["image"], chunk["extent"] = decode.canvas_batch(images, self._canvas)
    else:
      chunk["image"] = np.stack(images)
    chunk["skipped"] = tuple(p for e in examples for p in e.get("skipped", ()))
    return chunk


def default_workers(source, num_workers=None):
  """`input.num_workers` resolved: in-memory arrays are read in this process; decoded files
  by one process per host core unless the config sets a count."""
  if num_workers is not None:
    return num_workers
  return 0 if isinstance(source, sources.ArraySource) else os.cpu_count() or 1


def _ignore_stop_signals(worker_index, worker_count):
  """In each decoding worker: SIGTERM and Ctrl-C are the main process's to act on (it saves at
  the next step, which needs these workers, then closes them). Schedulers and terminals send
  them to every process of the job."""
  del worker_index, worker_count
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Indexed:
  """`source` whose examples also carry their position in it, "index" (grain's shuffle and
  repeat hand the source positions in [0, len))."""

  def __init__(self, source):
    self._source = source

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    return dict(self._source[index], index=index)


class TrainIterator:
  """Endless iterator of this host's batches {"image": uint8 [b, H, W, 3], "label": [b],
  "index": [b] (positions in `source`), and "extent": [b, 2] for canvases};
  `get_state`/`set_state` for checkpoints.

  Workers read chunks of at most `CHUNK` examples (so their memory does not grow with the
  batch), `num_threads` chunks at a time each; this process joins a batch's chunks in order.
  """

  def __init__(self, source, global_batch_size, seed, process_index, process_count,
               num_workers, num_threads):
    local = global_batch_size // process_count
    self._chunk = chunk_size(local) if num_workers else local
    stream = grain.MapDataset.source(_Indexed(source)).shuffle(seed=seed).repeat()
    host = _HostChunks(stream, global_batch_size, process_index, process_count, self._chunk,
                       getattr(source, "canvas", None))
    self._chunks = grain.MapDataset.source(host)
    self._per_batch = local // self._chunk
    self._source, self._workers, self._threads = source, num_workers, num_threads
    self._next, self._iterator = 0, None

  def __iter__(self):
    return self

  def _start(self):
    options = grain.ReadOptions(num_threads=self._threads,
                                prefetch_buffer_size=max(2, self._threads))
    dataset = self._chunks[self._next * self._per_batch:].to_iter_dataset(options)
    if self._workers:
      if not flags.FLAGS.is_parsed():  # grain reads absl flags; scripts may not parse them
        flags.FLAGS.mark_as_parsed()
      dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=self._workers, per_worker_buffer_size=2),
                                    worker_init_fn=_ignore_stop_signals)
    self._iterator = iter(dataset)

  def __next__(self):
    if self._iterator is None:
      self._start()
    chunks = [next(self._iterator) for _ in range(self._per_batch)]
    self._next += 1
    skipped = sum((c.pop("skipped", ()) for c in chunks), ())
    if skipped:
      self._source.note_skipped(skipped)
    if len(chunks) == 1:
      return chunks[0]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}

  def get_state(self):
    return {"next_batch": self._next}

  def set_state(self, state):
    if "next_batch" not in state:
      raise DataError(f"the checkpoint's input-pipeline state {sorted(state)} is from another "
                      "ssljax version: resume with that version, or start a new workdir")
    self.close()
    self._next = int(state["next_batch"])

  def close(self):
    """Stops the worker processes (a later `next` starts them again)."""
    if self._iterator is not None and hasattr(self._iterator, "close"):
      self._iterator.close()
    self._iterator = None


def train_iterator(source, global_batch_size, seed, *, process_index=None, process_count=None,
                   num_threads=4, num_workers=0):
  """Endless `TrainIterator` of this host's batches of `source`."""
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size % process_count:
    raise ConfigError(f"input.batch_size={global_batch_size} is not divisible by the "
                      f"{process_count} processes: use a multiple of {process_count}")
  check_batch_fits(global_batch_size, source)
  return TrainIterator(source, global_batch_size, seed, process_index, process_count,
                       num_workers, num_threads)


def check_batch_fits(global_batch_size, source):
  """A ConfigError when `source` holds fewer examples than one batch (no full batch)."""
  if len(source) < global_batch_size:
    raise ConfigError(f"input.batch_size={global_batch_size} exceeds the {len(source)} "
                      f"examples of {getattr(source, 'name', 'the dataset')}: lower it")


def from_config(source, config):
  """`train_iterator` of `source` with `config`'s batch size, seed, workers and threads."""
  return train_iterator(source, config.input.batch_size, config.seed,
                        num_threads=config.input.num_threads,
                        num_workers=default_workers(source, config.input.get("num_workers")))


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

  def close(self):
    pass
