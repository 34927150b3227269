"""A `jax.profiler` trace of a few train steps, written into the workdir's TensorBoard directory.

`config.profile.steps` > 0 traces that many steps, starting `config.profile.after_steps` steps
after this process's first step (compilation and warm-up left out), on every process (each
writes its host's file). The trace lands in `workdir/tensorboard/plugins/profile/<time>/`, where
TensorBoard's profile plugin (`pip install tensorboard-plugin-profile`) or XProf reads it. For an
object-store workdir it is written locally and copied there when the trace stops.
"""
import contextlib
import logging

import jax

from ssljax.runtime import storage

log = logging.getLogger(__name__)


class StepTrace:
  """Starts the trace before step `first_step + after_steps + 1` and stops it after `steps`
  steps, once their outputs are computed (dispatch is asynchronous)."""

  def __init__(self, tensorboard_dir, first_step, after_steps, steps):
    self.tensorboard_dir = tensorboard_dir
    self.start_step = first_step + after_steps + 1
    self.stop_step = self.start_step + steps - 1
    self.enabled = steps > 0
    self._staging = None

  def before(self, step):
    if self.enabled and step == self.start_step:
      self._staging = contextlib.ExitStack()
      local_dir = self._staging.enter_context(storage.local_staging(self.tensorboard_dir))
      jax.profiler.start_trace(local_dir)

  def after(self, step, outputs):
    if self._staging is not None and step == self.stop_step:
      jax.block_until_ready(outputs)
      self.close()
      log.info("profiled steps %d-%d into %s/plugins/profile", self.start_step, self.stop_step,
               self.tensorboard_dir)

  def close(self):
    """Stops a running trace (also when the run ends inside the traced steps)."""
    if self._staging is not None:
      staging, self._staging = self._staging, None
      with staging:
        jax.profiler.stop_trace()
