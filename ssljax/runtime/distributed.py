"""Multi-process start-up: `jax.distributed.initialize` where a run spans several processes.

Three cases, checked in order:
  explicit   `--coordinator_address=host:port --num_processes=N --process_id=i` (any cluster,
             or several processes on one machine); CPU processes talk through gloo.
  detected   TPU VM pods, SLURM jobs with several tasks, Open MPI: JAX finds the coordinator,
             the process count and this process's id itself.
  single     everything else: one process, nothing to initialise.
Must run before anything else touches JAX's backends.
"""
import logging
import os

import jax

log = logging.getLogger(__name__)


def detected_cluster():
  """The name of the multi-process environment this process runs in, or None."""
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return "SLURM"
  if len(os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",")) > 1:
    return "TPU pod"
  if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
    return "Open MPI"
  return None


def initialize(coordinator_address=None, num_processes=None, process_id=None):
  """Joins the run's processes (see module docstring); returns (process_index, count)."""
  if coordinator_address:
    if num_processes is None or process_id is None:
      from ssljax.errors import ConfigError  # pylint: disable=g-import-not-at-top
      raise ConfigError(f"--coordinator_address={coordinator_address} needs --num_processes "
                        "and --process_id too: pass all three")
    if jax.config.jax_platforms in (None, "", "cpu") and not os.environ.get("CUDA_VISIBLE_DEVICES"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
  elif detected_cluster():
    log.info("multi-process environment detected: %s", detected_cluster())
    jax.distributed.initialize()
  return jax.process_index(), jax.process_count()


def barrier(name, timeout_s=1800):
  """Waits until every process gets here, through the coordination service (not collectives).

  Call it before the first collective: gloo gives processes only 30 s to meet there, which
  slow or busy hosts (compiling, loading data) can miss; this barrier waits `timeout_s`.
  """
  if jax.process_count() > 1:
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    ocp.multihost.get_barrier_sync_fn()(key=name, timeout_ms=timeout_s * 1000)
