"""Preemption: SIGTERM (what TPU VMs, SLURM and Kubernetes send before they kill a job) makes
the trainer save a checkpoint at the next step boundary and stop cleanly.

One process: a SIGTERM handler records the notice. Several processes (`jax.distributed`): JAX's
preemption service catches the signal on any host, and `reached_preemption_sync_point` agrees
on one step at which every host saves, so all hosts checkpoint the same step.
"""
import signal
import threading

import jax
from jax.experimental import multihost_utils


class Watch:
  """Context manager; `reached(step)` is True at the step where a preempted run must save.

  Call `reached` at every step, on every host, with the same steps.
  """

  def __init__(self, signals=(signal.SIGTERM,)):
    self._signals = signals
    self._previous = {}
    self.received = None  # the signal number, once one arrived

  def _handle(self, signum, frame):
    del frame
    self.received = signum

  def __enter__(self):
    # Handlers can only be installed from the main thread; elsewhere (a notebook worker,
    # a test runner thread) the default behaviour stays.
    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      for sig in self._signals:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous.clear()
    return False

  def reached(self, step):
    if jax.process_count() > 1:
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received is not None
