"""What every evaluation run (linear probe, kNN, fine-tuning) starts with and leaves behind:
checked config, mesh, metric writer and labelled splits; `results.json` and the summary
`main` prints.

results.json: protocol, encoder (a description naming the checkpoint), init_from, baseline,
feature, dataset, test_dataset, metric, value, epochs, wall_time_s, and protocol extras;
`python -m ssljax.report` collects them.
"""
import dataclasses
import json
import os
from typing import Any

import jax

from ssljax import config_lib, metrics, sharding
from ssljax.data import sources


@dataclasses.dataclass
class EvaluationRun:
  mesh: Any
  writer: metrics.Writer
  train_source: Any  # config.input.split
  test_source: Any
  num_classes: int


def start(config, workdir, devices, test_split):
  """Validates `config`, builds the mesh, opens the workdir's writer and the two splits."""
  config_lib.validate_probe(config)
  mesh = sharding.make_mesh(devices)
  sharding.check_batch_size(config.input.batch_size, mesh)
  os.makedirs(workdir, exist_ok=True)
  writer = metrics.Writer(workdir)
  train_source = sources.get_source(config.input, config.input.split)
  test_source = sources.get_source(config.input, test_split)
  return EvaluationRun(mesh, writer, train_source, test_source,
                       max(train_source.num_classes, test_source.num_classes))


def write(workdir, record):
  """Writes `record` as `workdir/results.json` (process 0 only)."""
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
      json.dump(record, f, indent=1)


def new_summary(workdir, writer):
  """The summary dict `train.train_and_evaluate` also returns, before the run fills it."""
  return {"workdir": os.path.abspath(workdir), "metrics_file": writer.jsonl_path,
          "tensorboard_dir": writer.tensorboard_dir, "figures": [], "evals": {},
          "preempted": False, "final_loss": None}
