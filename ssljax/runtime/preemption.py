"""Preemption: SIGTERM (what TPU VMs, SLURM and Kubernetes send before they kill a job) makes
the run save a checkpoint at the next step boundary and stop cleanly; Ctrl-C (SIGINT) does the
same for a user at a terminal.

A run holds the watch from its first line of work to its last, in two modes:
  deferred   while training steps run that are not saved yet: the notice is recorded and the
             loop saves at the next step boundary (`reached`), then stops;
  immediate  everywhere else (start-up: data loading, feature extraction, restoring, baseline
             evaluations; evaluation-only runs; after the last step is saved): there is nothing
             to save, so the notice raises `Preempted` at once and the run stops within
             seconds instead of being killed by the scheduler's grace-period SIGKILL.
A second notice always raises at once.

Several processes (`jax.distributed`): JAX's preemption service catches SIGTERM on any host,
and `reached_preemption_sync_point` agrees on one step at which every host saves, so all hosts
checkpoint the same step. No handler is installed then, so a notice during start-up is acted on
at the first step.
"""
import signal
import threading

import jax
from jax.experimental import multihost_utils


class Preempted(BaseException):
  """A stop notice arrived where the run had nothing unsaved; `ssljax.main` exits 3 (SIGTERM:
  the launcher reruns it) or 130 (Ctrl-C). A BaseException, like KeyboardInterrupt, so that no
  `except Exception` on the way (e.g. around a checkpoint restore) mistakes it for an error."""

  def __init__(self, signum):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum


class Watch:
  """Context manager; `reached(step)` is True at the step where a preempted run must save.

  Call `reached` at every step, on every host, with the same steps. Starts immediate; `defer()`
  while unsaved steps run, `immediate()` once there is nothing left to save.
  """

  def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
    self._signals = signals
    self._previous = {}
    self._deferred = False
    self.received = None  # the signal number, once one arrived

  def _handle(self, signum, frame):
    del frame
    first = self.received is None
    self.received = signum
    if not (self._deferred and first):
      raise Preempted(signum)

  def defer(self):
    """From now on a (first) notice is only recorded: the loop saves, then stops."""
    self._deferred = True

  def immediate(self):
    """From now on a notice raises Preempted; raises at once if one is already recorded."""
    self._deferred = False
    if self.received is not None and self._previous:
      raise Preempted(self.received)

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
