"""A Weights & Biases run beside TensorBoard and metrics.jsonl (`config.wandb`, off while
`wandb.project` is ""), fed by `metrics.Writer` with the same scalars and images at the same
steps, on process 0 only.

`wandb` is imported only when a run turns it on. The run's id is kept in `workdir/wandb_run_id`
(through `runtime.storage`), so a resumed run continues the same W&B run (`resume="allow"`).
W&B keeps one value per step and refuses steps below its last one: rows a resumed run
recomputes (steps after its checkpoint that the killed run had logged) keep their first
values there, while metrics.jsonl has both (`metrics.curve` picks the newer).
"""
import json
import os
import secrets

import numpy as np

from ssljax.errors import UserError
from ssljax.runtime import storage

RUN_ID_FILE = "wandb_run_id"


def default_tags(config):
  """(method or protocol, model variant, dataset) of `config`, those it has."""
  model = config.get("model") or {}
  data = config.get("input") or {}
  tags = (config.get("method") or config.get("protocol"), model.get("variant"),
          data.get("name") or data.get("source"))
  return tuple(t for t in tags if t)


def run_name(config, workdir):
  """`config.wandb.name`, else the workdir's basename ("run1" for gs://bucket/run1/)."""
  return config.wandb.name or os.path.basename(os.path.normpath(os.fspath(workdir)))


def run_id(workdir):
  """The W&B run id saved in `workdir`, else a new random one, saved there for the runs that
  resume this one."""
  location = storage.join(workdir, RUN_ID_FILE)
  if storage.path(location).exists():
    return storage.path(location).read_text().strip()
  chosen = secrets.token_hex(4)  # W&B's own ids are 8 characters too
  storage.write_atomic(location, chosen)
  return chosen


class WandbWriter:
  """One W&B run for `workdir`: the config as its config, `scalars` and `image` as history."""

  def __init__(self, config, workdir):
    try:
      import wandb  # pylint: disable=g-import-not-at-top  # only where a run turns it on
    except ImportError as e:
      raise UserError("wandb.project is set but wandb is not installed: pip install "
                      "'ssljax[wandb]' (or --config.wandb.project='' to run without W&B)") from e
    self._wandb = wandb
    # Local workdirs keep W&B's files (the offline runs to sync) in workdir/wandb unless
    # WANDB_DIR says where; wandb cannot write into an object store.
    local_dir = None if storage.is_remote(workdir) or os.environ.get("WANDB_DIR") else (
        os.fspath(storage.path(workdir)))
    c = config.wandb
    try:
      self._run = wandb.init(
          project=c.project, entity=c.entity or None, name=run_name(config, workdir),
          tags=list(c.tags or default_tags(config)), config=json.loads(config.to_json()),
          id=run_id(workdir), resume="allow", dir=local_dir)
    except wandb.errors.Error as e:
      raise UserError(f"wandb.init failed ({' '.join(str(e).split())[:200]}): run `wandb "
                      "login`, set WANDB_MODE=offline, or --config.wandb.project='' to run "
                      "without W&B") from e

  def scalars(self, step, values):
    self._run.log(dict(values), step=int(step))

  def image(self, step, name, image):
    """uint8 [H, W, 3] `image`."""
    self._run.log({name: self._wandb.Image(np.asarray(image, np.uint8))}, step=int(step))

  def close(self):
    self._run.finish()
