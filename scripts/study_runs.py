"""Running a resumable study of ssljax commands, and reading what its runs leave behind.

A study is rows; a row is stages `(stage, workdir, argv)`, each argv a `python -m ssljax.main`
command with its own workdir. A finished stage (a pre-training's final checkpoint, an
evaluation's results.json) is skipped; an unfinished one reruns the same command, which resumes
from its checkpoint. What a row's runs measured goes into a `row.json` beside its workdirs, from
which the study's tables are written, so a table can be made from whatever rows have finished.
Used by scripts/mae_ablations.py and scripts/paradigms.py.
"""
import argparse
import ast
import json
import os
import subprocess
import sys
import time

MAIN = (sys.executable, "-m", "ssljax.main")
ROW_RECORD = "row.json"
# A pre-training's own kNN monitor, run once at its end, on a subset: the studies' numbers
# come from their separate evaluations, and the full 50k x 10k monitor costs minutes a row.
KNN_MONITOR_CAP = {"max_train_examples": 10000, "max_test_examples": 2000}


def flag(field, value):
  """`--config.<field>=<value>`, a tuple as `(a,b)`."""
  if isinstance(value, tuple):
    value = "(" + ",".join(repr(v) for v in value) + ")"
  return f"--config.{field}={value}"


def knn_monitor_fields():
  """{field: value} that cap a pre-training's kNN monitor at KNN_MONITOR_CAP."""
  return {f"evals.knn.{k}": v for k, v in KNN_MONITOR_CAP.items()}


def command(config, workdir, fields=None):
  """argv of `python -m ssljax.main --config=<config> --workdir=<workdir>` with `fields`
  {config field: value} as `--config.*` flags."""
  return [*MAIN, f"--config={config}", f"--workdir={workdir}",
          *(flag(k, v) for k, v in (fields or {}).items())]


def config_of(argv):
  """The config a command's --config and --config.* flags give (for tests and FLOPs)."""
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  spec = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
  config = loading.load(spec)
  with config.unlocked():
    for arg in argv:
      if arg.startswith("--config."):
        field, text = arg.removeprefix("--config.").split("=", 1)
        try:
          value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
          value = text
        loading.set_field(config, field, value)
  return config


def finished(stage, workdir, steps):
  """Whether a stage's run has finished: a pre-training's checkpoint at `steps`, or an
  evaluation's results.json."""
  if stage == "pretrain":
    return os.path.isdir(os.path.join(workdir, "checkpoints", str(steps)))
  return os.path.isfile(os.path.join(workdir, "results.json"))


def run_stages(label, stages, steps, dry_run):
  """Runs (or with `dry_run` prints) the unfinished `stages` of row `label` in order;
  {stage: wall seconds} of those run now."""
  seconds = {}
  for stage, workdir, argv in stages:
    if finished(stage, workdir, steps):
      print(f"[{label}] {stage}: finished, skipped")
      continue
    print(" ".join(argv), flush=True)
    if not dry_run:
      start = time.time()
      subprocess.run(argv, check=True)
      seconds[stage] = time.time() - start
      print(f"[{label}] {stage}: {seconds[stage]:.0f} s", flush=True)
  return seconds


def seconds_per_step(pretrain_dir, batch_size):
  """Median wall seconds per pre-training step of metrics.jsonl's img/s (None if none)."""
  path = os.path.join(pretrain_dir, "metrics.jsonl")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    rates = sorted(r["img_per_s"] for r in map(json.loads, filter(str.strip, f))
                   if "img_per_s" in r)
  return batch_size / rates[len(rates) // 2] if rates else None


def read_results(workdir):
  """An evaluation run's results.json as a dict (None if it has not finished)."""
  path = os.path.join(workdir, "results.json")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def read_result(workdir):
  """The value (top-1) of an evaluation run's results.json (None if it has not finished)."""
  results = read_results(workdir)
  return None if results is None else results["value"]


def write_record(root, name, record):
  os.makedirs(os.path.join(root, name), exist_ok=True)
  with open(os.path.join(root, name, ROW_RECORD), "w", encoding="utf-8") as f:
    json.dump(record, f, indent=1, sort_keys=True)
    f.write("\n")


def recorded(records_dir, name, budget, results):
  """Whether row `name` has a row.json under `records_dir` with every one of `results` (keys
  of measured values) set, at the same `budget` {field: value}: such a row is not run again."""
  record = read_records(records_dir, [name]).get(name)
  return (record is not None and all(record.get(k) is not None for k in results)
          and all(record.get(k) == v for k, v in budget.items()))


def read_records(root, names):
  """{name: row.json} of the rows among `names` that have one under `root`."""
  records = {}
  for name in names:
    path = os.path.join(root, name, ROW_RECORD)
    if os.path.isfile(path):
      with open(path, encoding="utf-8") as f:
        records[name] = json.load(f)
  return records


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def parser(doc):
  """The arguments every study takes: --root, --rows, --dry_run, --tables_only."""
  p = argparse.ArgumentParser(description=doc.splitlines()[0])
  p.add_argument("--root", required=True, help="one workdir per row and stage under it")
  p.add_argument("--rows", default="", help="comma-separated row names (default: all)")
  p.add_argument("--record", default=None,
                 help="folder of the rows' row.json and the tables (default: --root); a row "
                 "recorded there with its results at the same budget is not run again")
  p.add_argument("--dry_run", action="store_true", help="print the commands only")
  p.add_argument("--tables_only", action="store_true", help="write the tables, run nothing")
  return p


def chosen(names, rows_arg):
  """The names selected by --rows (all when it is empty); an unknown name is an error."""
  wanted = [n for n in rows_arg.split(",") if n]
  unknown = sorted(set(wanted) - set(names))
  if unknown:
    raise SystemExit(f"--rows: unknown row(s) {', '.join(unknown)}: use some of "
                     f"{', '.join(names)}")
  return [n for n in names if not wanted or n in wanted]
