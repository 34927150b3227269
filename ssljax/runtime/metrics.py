"""Metric writers: TensorBoard event files and a JSONL file in the workdir; a progress line.

TensorBoard events are written with the `tensorboard` package's own writer and protos (clu's
writers import TensorFlow). Only process 0 writes.
"""
import io
import json
import os
import time

import jax
import numpy as np
from PIL import Image
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def png_bytes(image):
  """uint8 [H, W, 3] -> PNG file contents."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


class Writer:
  """Scalars to `workdir/metrics.jsonl` and TensorBoard; images to TensorBoard and PNG files."""

  def __init__(self, workdir, enabled=None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
    self.tensorboard_dir = os.path.join(workdir, "tensorboard")
    self.figures_dir = os.path.join(workdir, "figures")
    if self.enabled:
      os.makedirs(self.tensorboard_dir, exist_ok=True)
      self._events = EventFileWriter(self.tensorboard_dir)
      self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")

  def scalars(self, step, values):
    if not self.enabled:
      return
    values = {k: float(v) for k, v in values.items()}
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    self._jsonl.flush()
    summary = Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()])
    self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

  def image(self, step, name, image):
    """Writes uint8 [H, W, 3] `image`; returns the PNG path (None on other processes)."""
    if not self.enabled:
      return None
    data = png_bytes(image)
    h, w = np.asarray(image).shape[:2]
    summary = Summary(value=[Summary.Value(tag=name, image=Summary.Image(
        height=h, width=w, colorspace=3, encoded_image_string=data))])
    self._events.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))
    os.makedirs(self.figures_dir, exist_ok=True)
    path = os.path.join(self.figures_dir, f"{name.replace('/', '_')}_step{int(step):07d}.png")
    with open(path, "wb") as f:
      f.write(data)
    return path

  def close(self):
    if self.enabled:
      self._events.close()
      self._jsonl.close()


def read_jsonl(path):
  """All records of a metrics.jsonl file, in order."""
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


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
