"""Metric writers: TensorBoard event files and a JSONL file in the workdir; a progress line.

TensorBoard events are the `tensorboard` package's protos in its record format (clu's writers
import TensorFlow), written like every workdir file through `runtime.storage`, so a gs://
workdir works. Only process 0 writes. `Writer` also feeds a Weights & Biases run where
`config.wandb.project` is set (`runtime.wandb_writer`).
"""
import contextlib
import io
import itertools
import json
import logging
import os
import socket
import time

import jax
import numpy as np
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

from ssljax.errors import UserError
from ssljax.runtime import storage, wandb_writer


def png_bytes(image):
  """uint8 [H, W, 3] -> PNG file contents."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


@contextlib.contextmanager
def _reporting_write_errors(path):
  """A full disk or lost permissions while writing metrics: one line, not a traceback (the
  run's checkpoints are untouched; a rerun resumes from the last one)."""
  try:
    yield
  except OSError as e:
    raise UserError(f"writing {path} failed ({e.strerror or e}): free space or fix permissions "
                    "there and rerun, which resumes from the last checkpoint") from e


class EventFile:
  """A TensorBoard event file in `directory`: records of serialised `Event` protos, the first
  one the file version, named as TensorBoard's own writer names them."""

  _opened = itertools.count()  # files opened by this process (two in the same second differ)

  def __init__(self, directory):
    name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(EventFile._opened)}")
    self.path = storage.join(directory, name)
    self._file = storage.AppendFile(self.path, binary=True)
    self._records = RecordWriter(self._file)
    self.add(Event(wall_time=time.time(), file_version="brain.Event:2"))

  def add(self, event):
    self._records.write(event.SerializeToString())
    self._file.flush()

  def close(self):
    self._file.close()


class Writer:
  """Scalars to `workdir/metrics.jsonl` and TensorBoard; images to TensorBoard and PNG files;
  both to W&B too where `config.wandb.project` is set."""

  def __init__(self, workdir, enabled=None, config=None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.jsonl_path = storage.join(workdir, "metrics.jsonl")
    self.tensorboard_dir = storage.join(workdir, "tensorboard")
    self.figures_dir = storage.join(workdir, "figures")
    if self.enabled:
      with _reporting_write_errors(workdir):
        self._events = EventFile(self.tensorboard_dir)
        self._jsonl = storage.AppendFile(self.jsonl_path)
        if not self._jsonl.ends_with_newline():
          self._jsonl.write("\n")  # a kill mid-line left a partial record: start a new line
    wandb_on = self.enabled and config is not None and (config.get("wandb") or {}).get("project")
    self._mirrors = [wandb_writer.WandbWriter(config, workdir)] if wandb_on else []

  def _append(self, row):
    with _reporting_write_errors(self.jsonl_path):
      self._jsonl.write(json.dumps(row) + "\n")
      self._jsonl.flush()

  def resumed(self, step):
    """Marks that the run resumed from the checkpoint of `step`: rows of later steps written
    before are superseded (`curve`)."""
    if self.enabled:
      self._append({"step": int(step), RESUMED: int(step)})

  def scalars(self, step, values):
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    self._append({"step": int(step), **values})
    summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
    with _reporting_write_errors(self.tensorboard_dir):
      self._events.add(Event(wall_time=time.time(), step=int(step), summary=summary))
    for mirror in self._mirrors:
      mirror.scalars(step, values)

  def image(self, step, name, image):
    """Writes uint8 [H, W, 3] `image`; returns the PNG path (None on other processes)."""
    if not self.enabled:
      return None
    data = png_bytes(image)
    h, w = np.asarray(image).shape[:2]
    summary = Summary(value=[Summary.Value(tag=name, image=Summary.Image(
        height=h, width=w, colorspace=3, encoded_image_string=data))])
    path = storage.join(self.figures_dir, f"{name.replace('/', '_')}_step{int(step):07d}.png")
    with _reporting_write_errors(path):
      self._events.add(Event(wall_time=time.time(), step=int(step), summary=summary))
      storage.write_atomic(path, data)
    for mirror in self._mirrors:
      mirror.image(step, name, image)
    return path

  def close(self):
    """Closes the files; every row is already flushed, so a failure here (the disk that
    stopped a write) loses nothing and does not hide the error being reported."""
    for mirror in self._mirrors:
      mirror.close()
    if self.enabled:
      for f in (self._events, self._jsonl):
        try:
          f.close()
        except OSError as e:
          logging.getLogger(__name__).warning("closing %s: %s", self.jsonl_path, e)


RESUMED = "resumed_from_step"  # the key of `Writer.resumed`'s marker rows


def read_jsonl(path):
  """All records of a metrics.jsonl file, in order (a resumed run repeats steps: `curve`).
  A line that is not a JSON record (what a kill mid-write leaves) is left out."""
  rows = []
  with storage.path(path).open("rb") as binary, io.TextIOWrapper(
      binary, encoding="utf-8", errors="replace") as f:
    for line in f:
      try:
        row = json.loads(line)
      except ValueError:
        continue
      if isinstance(row, dict) and isinstance(row.get("step"), int):
        rows.append(row)
  return rows


def curve(rows):
  """One record per step, in step order, as the run's final history: at a resume marker
  (`Writer.resumed`) the rows of later steps, which the resumed run recomputes, are dropped,
  and a step's rows written twice (a baseline evaluated again at every start) merge, the newer
  value winning."""
  by_step = {}
  for row in rows:
    if RESUMED in row:
      by_step = {s: r for s, r in by_step.items() if s <= row[RESUMED]}
      continue
    by_step.setdefault(row["step"], {}).update(row)
  return [by_step[s] for s in sorted(by_step)]


def format_duration(seconds):
  seconds = int(max(seconds, 0))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
  """Throughput and ETA between calls of `line`; time before `start` (compilation) excluded."""

  def __init__(self, total_steps, batch_size):
    self.total_steps, self.batch_size = total_steps, batch_size
    self._step = self._time = None

  def start(self, step):
    self._step, self._time = step, time.perf_counter()

  def line(self, step, values):
    now = time.perf_counter()
    rate = (step - self._step) / max(now - self._time, 1e-9)
    self._step, self._time = step, now
    eta = format_duration((self.total_steps - step) / max(rate, 1e-9))
    shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    return (f"step {step}/{self.total_steps} {shown} img/s {rate * self.batch_size:.1f} "
            f"ETA {eta}"), rate * self.batch_size
