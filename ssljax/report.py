"""Collects runs into a markdown table and PNG plots.

  python -m ssljax.report /tmp/runs/* --out=/tmp/report

Evaluation runs (a `results.json`, written by the evaluation run types of `ssljax.run`)
become rows of the table: one row per encoder, one column per protocol; two runs of one
protocol on one encoder (two recipes, say) get a row each, named by their run directory.
Pre-training runs (a `metrics.jsonl` with a loss) become curves: loss, kNN top-1 and the
collapse monitors (`*_std`) against the step; fine-tuning runs add their test top-1 curves.
Writes `OUT/report.md` and `OUT/curves.png`; prints the table. A resumed run's repeated steps
appear once (`metrics.curve`); a damaged results.json is skipped with a warning.

  python -m ssljax.report pictures --init_from=WORKDIR --out=DIR

draws what one pre-trained encoder learned (t-SNE, retrieval, ViT attention:
`ssljax.evals.draw_pictures`).
"""
import argparse
import json
import os
import sys

from ssljax.runtime import metrics, storage

# (column title, protocol, key in the record's "all" dict, or None for its "value")
COLUMNS = (
    ("kNN top-1 (k=20, T=0.07)", "knn", "knn/top1_k20_t0.07"),
    ("kNN top-1 (k=200, T=0.1)", "knn", "knn/top1_k200_t0.1"),
    ("linear probe top-1", "linear_probe", None),
    ("fine-tuning top-1", "finetune", None),
)


def encoder_label(record):
  """"pixels", "pca256", "mae (random init)", "simsiam /path/checkpoints/400"."""
  encoder = record["encoder"]
  if " encoder at random init" in encoder:
    return encoder.replace(" encoder at random init", " (random init)")
  return encoder.replace(" encoder of ", " ")


def run_name(run_dir):
  return os.path.basename(os.path.normpath(run_dir))


# What a results.json must hold to be a row (`ssljax.evals.run_record`).
RECORD_KEYS = ("protocol", "encoder", "value", "test_dataset", "wall_time_s")


def read_record(result_path):
  """The record in `result_path`, or (None, why it is not one) for an empty, damaged or
  foreign file."""
  try:
    record = json.loads(storage.path(result_path).read_text())
  except (OSError, ValueError) as e:
    return None, f"not readable as JSON ({type(e).__name__})"
  if not isinstance(record, dict):
    return None, "not a JSON object"
  missing = [k for k in RECORD_KEYS if k not in record]
  if missing:
    return None, f"no {', '.join(missing)}"
  if not isinstance(record["value"], (int, float)):
    return None, f"value {record['value']!r} is not a number"
  return record, None


def collect(run_dirs, warn=lambda line: print(line, file=sys.stderr)):
  """(evaluation records, {"pretraining" | "finetune": {run name: metric rows}}) of
  `run_dirs`; a results.json that is not a record is left out with a `warn`ing."""
  records, curves = [], {"pretraining": {}, "finetune": {}}
  for run_dir in run_dirs:
    result_path = storage.join(run_dir, "results.json")
    metrics_path = storage.join(run_dir, "metrics.jsonl")
    rows = (metrics.curve(metrics.read_jsonl(metrics_path))
            if storage.path(metrics_path).is_file() else [])
    if storage.path(result_path).is_file():
      record, why = read_record(result_path)
      if record is None:
        warn(f"ssljax.report: skipping {result_path}: {why} (rerun that evaluation to "
             "rewrite it)")
        continue
      records.append(dict(record, run_dir=run_dir))
      if record["protocol"] == "finetune" and any("finetune/top1" in r for r in rows):
        curves["finetune"][run_name(run_dir)] = rows
    elif any("loss" in r for r in rows):
      curves["pretraining"][run_name(run_dir)] = rows
  return records, curves


def markdown_table(records):
  """One row per encoder, one column per COLUMNS entry ("-" where no run measured it)."""
  rows = {}
  for record in records:
    label = encoder_label(record)
    measured = {}
    for title, protocol, key in COLUMNS:
      if record["protocol"] == protocol:
        value = record["value"] if key is None else record.get("all", {}).get(key)
        if value is not None:
          measured[title] = value
    if measured.keys() & rows.get(label, {}).keys():
      label = f"{label} ({run_name(record['run_dir'])})"
    rows.setdefault(label, {}).update(measured)
  lines = ["| encoder | " + " | ".join(t for t, _, _ in COLUMNS) + " |",
           "|---|" + "---|" * len(COLUMNS)]
  for label, cells in rows.items():
    lines.append(f"| {label} | " + " | ".join(
        f"{cells[t]:.3f}" if t in cells else "-" for t, _, _ in COLUMNS) + " |")
  return "\n".join(lines)


# (title, which runs, which metrics)
PANELS = (
    ("pre-training loss", "pretraining", lambda k: k == "loss"),
    ("kNN top-1", "pretraining", lambda k: "/top1_k" in k and not k.startswith("random_init/")),
    ("collapse monitors (std of l2-normalised outputs)", "pretraining",
     lambda k: k.endswith("_std")),
    ("fine-tuning test top-1", "finetune", lambda k: k == "finetune/top1"),
)


def plot_curves(curves, path):
  """Pre-training loss, kNN and collapse monitors, and fine-tuning top-1 against the step, a
  line per run and metric (panels no run has a metric for are left out: MAE has no collapse
  monitors); a PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  panels = [(title, runs, wanted) for title, runs, wanted in PANELS
            if any(wanted(k) for rows in curves[runs].values() for r in rows for k in r)]
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
  for ax, (title, runs, wanted) in zip(axes[0], panels):
    for name, rows in curves[runs].items():
      keys = sorted({k for r in rows for k in r if wanted(k)})
      for key in keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        ax.plot(*zip(*points), marker="o" if len(points) < 20 else None,
                label=f"{name} {key}" if len(keys) > 1 else name)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("step")
    if ax.has_data():
      ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["pictures"]:
    from ssljax.evals import draw_pictures  # pylint: disable=g-import-not-at-top  # methods, models
    return draw_pictures.main(argv[1:])
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("runs", nargs="+", help="run directories (workdirs)")
  parser.add_argument("--out", required=True, help="directory for report.md and curves.png")
  args = parser.parse_args(argv)
  records, curves = collect(args.runs)
  if not records and not any(curves.values()):
    print(f"ssljax.report: error: no results.json or metrics.jsonl with a loss in "
          f"{' '.join(args.runs)}: pass ssljax workdirs", file=sys.stderr)
    return 2
  if os.path.exists(args.out) and not os.path.isdir(args.out):
    print(f"ssljax.report: error: --out={args.out} is a file: pass a directory for report.md "
          "and curves.png", file=sys.stderr)
    return 2
  os.makedirs(args.out, exist_ok=True)
  table = markdown_table(records) if records else "(no evaluation runs)"
  runs = "\n".join(f"- `{r['run_dir']}`: {r['protocol']} of {r['encoder']} on "
                   f"{r['test_dataset']}, {r.get('epochs', 0):g} epochs, "
                   f"{r['wall_time_s']:.0f} s" for r in records)
  with open(os.path.join(args.out, "report.md"), "w", encoding="utf-8") as f:
    f.write(f"{table}\n\n{runs}\n")
  if any(curves.values()):
    plot_curves(curves, os.path.join(args.out, "curves.png"))
  print(table)
  return 0


if __name__ == "__main__":
  sys.exit(main())
