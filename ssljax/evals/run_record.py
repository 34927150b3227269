"""What every evaluation run (linear probe, kNN, fine-tuning) reads and leaves behind: its
labelled splits, and `results.json`.

results.json: protocol, encoder (a description naming the checkpoint), init_from, baseline,
feature, dataset, test_dataset, metric, value, epochs, steps, batch_size, wall_time_s, and
protocol extras; `python -m ssljax.report` collects them. A linear probe's value is the last
evaluation's top-1; best_top1 and best_top1_step are the best evaluation's, which the
official probes report (choosing it on the test split is optimistic).
"""
import json

import jax

from ssljax.data import sources
from ssljax.runtime import storage


def splits(config, section):
  """(train source `config.input.split` in the training view, test source
  `config[section].test_split` in the evaluation view, number of classes); both must be
  labelled."""
  train_source = sources.get_source(config.input, config.input.split)
  test_source = sources.get_source(config.input, config[section].test_split, "eval",
                                   f"{section}.test_split")
  for source in (train_source, test_source):
    sources.require_labels(source, f"a {config.protocol} run")
  return train_source, test_source, max(train_source.num_classes, test_source.num_classes)


def base_record(config, encoder, feature, train_source, test_source):
  """The fields of results.json known before the run trains."""
  return {"protocol": config.protocol, "encoder": encoder,
          "init_from": config.init_from or None, "baseline": config.baseline or None,
          "feature": feature, "dataset": train_source.name, "test_dataset": test_source.name}


def write(workdir, record):
  """Writes `record` as `workdir/results.json` (process 0 only)."""
  if jax.process_index() == 0:  # whole or not at all: a kill mid-write keeps the old file
    storage.write_atomic(storage.join(workdir, "results.json"), json.dumps(record, indent=1))


def best_evaluation(rows, name):
  """{"best_<metric>": the highest value of evaluation scalar `name` (e.g. "linear_probe/top1",
  metric "top1") in metric rows (`metrics.curve`), "best_<metric>_step": the first step that
  reached it}; {} where `name` was never evaluated."""
  evaluated = [(row[name], -row["step"]) for row in rows if name in row]
  if not evaluated:
    return {}
  value, negative_step = max(evaluated)
  metric = name.rsplit("/", 1)[-1]
  return {f"best_{metric}": value, f"best_{metric}_step": -negative_step}
