"""The lecture's paradigms on real CIFAR-10, one budget: every method and floor, one table.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python scripts/paradigms.py --root=/tmp/paradigms --epochs=5 [--dry_run] [--rows=mae,pca]
  python scripts/paradigms.py --root=/tmp/paradigms --tables_only   # the table from what ran
  python scripts/paradigms.py --root=/tmp/paradigms --epochs=2 \
    --record=docs/evidence/paradigms --rows=pca,rotation  # a few rows a session, kept in git

Every method of the lecture ("Paradigms of Self-Supervised Representation Learning in Vision",
../shared/seed/) pre-trains with its `configs/<method>_cifar10.py` (`:cpu` where the config has
that variant: the narrow ResNet-18 of width 16; MAE's ViT-Ti/4) for the same number of training
images, `--epochs` x 50,000 (steps = epochs x (50,000 // the recipe's batch); the recipe's
warm-up fraction kept; its in-training kNN monitor only at the end, on a 10k/2k subset), then
is evaluated by the kNN probe (k=200, t=0.1; results.json holds every k and t) and the linear
probe (`configs/probe_cifar10.py:cpu`, `recipe=simsiam` for a ResNet, `recipe=mae` for the ViT).
The floors (random init of each architecture, pixels, PCA, k-means) go through the same two
probes. mae, simsiam and rotation also run with seed 1. Each stage has its workdir under
`--root/<row>/`; a finished one is skipped, an unfinished one resumes from its checkpoint; the
wall seconds of each stage run add up in the row's `row.json`, under `--record` (default
`--root`), where a row recorded with both results at the same budget is not run again. Writes
`paradigms.md` (one table grouped as the lecture groups the methods, then every row's commands)
and `paradigms.png` (a bar chart of it) beside the records, from whatever rows have finished.
"""
import dataclasses
import os

import study_runs
from study_runs import read_result

CIFAR10_TRAIN = 50000
PROBE_CONFIG = "configs/probe_cifar10.py"
KNN_METRIC = "knn/top1_k200_t0.1"
RESNET, VIT = "ResNet-18, width 16", "ViT-Ti/4"

# The lecture's order: reconstructive (simplest, with a transformation, with masking /
# dropping, implicit: instance discrimination and contrastive), then non-reconstructive.
GROUPS = (
    ("floor", "No pre-training: the floors"),
    ("simplest", "Reconstructive, simplest form: autoencoding (x in, x out)"),
    ("transformation", "Reconstructive, augmented with a transformation t: predict t or x"),
    ("masking", "Reconstructive, augmented (special) form: masking / dropping"),
    ("implicit", "Reconstructive, implicit: instance discrimination / contrastive (predict i)"),
    ("non_reconstructive", "Non-reconstructive: predict similarity only"),
)


@dataclasses.dataclass(frozen=True)
class Row:
  name: str  # its workdirs: --root/<name>/
  group: str  # a key of GROUPS
  case: str  # what the table calls it
  encoder: str
  method: str = ""  # configs/<method>_cifar10.py; "" for a floor
  cpu: bool = False  # the config has a `:cpu` variant (the narrow encoder)
  seed: int = 0
  baseline: str = ""  # a floor: random_init | pixels | pca | kmeans
  encoder_config: str = ""  # random_init's architecture

  @property
  def recipe(self):
    """The linear-probe recipe: MAE's for the ViT, SimSiam's for a ResNet and the floors of
    pixel space (the probes the repository measured its floors with, docs/results.md)."""
    return "simsiam" if self.encoder == RESNET else "mae"


def _trained(name, group, case, encoder=RESNET, cpu=True):
  out = [Row(name, group, case, encoder, method=name, cpu=cpu)]
  if name in ("mae", "simsiam", "rotation"):  # two seeds: the noise of one row
    out.append(Row(f"{name}_seed1", group, f"{case}, seed 1", encoder, name, cpu, seed=1))
  return out


def rows():
  """Every row, in the table's order."""
  return [
      Row("random_init_resnet", "floor", "random init (ResNet-18)", RESNET, baseline="random_init",
          encoder_config="simsiam_cifar10:cpu"),
      Row("random_init_vit", "floor", "random init (ViT-Ti/4)", VIT, baseline="random_init",
          encoder_config="mae_cifar10"),
      Row("pixels", "floor", "pixels (the identity)", "-", baseline="pixels"),
      Row("pca", "simplest", "PCA (256 components)", "-", baseline="pca"),
      Row("kmeans", "simplest", "k-means (256 centroids of whitened 6x6 patches)", "-",
          baseline="kmeans"),
      *_trained("rotation", "transformation", "(t) rotation prediction", cpu=False),
      *_trained("relative_position", "transformation", "(t) relative position", cpu=False),
      *_trained("denoising", "transformation", "(x) denoising autoencoder"),
      *_trained("colorization", "masking", "channels: colorization"),
      *_trained("context_encoder", "masking", "centre patch: context encoder"),
      *_trained("mae", "masking", "random patches: MAE", VIT, cpu=False),
      *_trained("npid", "implicit", "fixed set: instance discrimination (NPID)"),
      *_trained("simclr", "implicit", "dynamic set: SimCLR"),
      *_trained("moco_v2", "implicit", "dynamic set: MoCo v2"),
      *_trained("swav", "implicit", "dynamic set of codes: SwAV"),
      *_trained("simsiam", "non_reconstructive", "SimSiam"),
      *_trained("byol", "non_reconstructive", "BYOL (no negatives)"),
  ]


def rows_by_name():
  return {row.name: row for row in rows()}


def _pretrain_spec(row, epochs=None):
  arg = ",".join((["cpu"] if row.cpu else []) + ([f"epochs={epochs}"] if epochs else []))
  return f"configs/{row.method}_cifar10.py" + (f":{arg}" if arg else "")


def pretrain_budget(row, epochs):
  """{field: value} of a row's pre-training on `epochs` x 50,000 images, and its budget
  {epochs, steps, batch_size, warmup_steps}: the recipe at its own length gives the batch and
  the warm-up's fraction of the run; evaluators run once, at the end."""
  from ssljax.config import durations, loading  # pylint: disable=g-import-not-at-top
  recipe = loading.load(_pretrain_spec(row))
  steps_per_epoch = CIFAR10_TRAIN // recipe.input.batch_size
  warmup = durations.steps(recipe.optim, "warmup", steps_per_epoch, default=0)
  steps = epochs * steps_per_epoch
  budget = {"epochs": epochs, "steps": steps, "batch_size": recipe.input.batch_size,
            "warmup_steps": round(steps * warmup / durations.steps(recipe, "total",
                                                                   steps_per_epoch))}
  fields = {"total_epochs": None, "total_steps": steps, "seed": row.seed,
            "optim.warmup_epochs": None, "optim.warmup_steps": budget["warmup_steps"],
            "checkpoint_every_steps": min(recipe.checkpoint_every_steps or 500, steps)}
  for name, evaluator in recipe.evals.items():
    if "every_epochs" in evaluator:
      fields[f"evals.{name}.every_epochs"] = None
    fields[f"evals.{name}.every_steps"] = steps
    if name == "knn":
      fields.update(study_runs.knn_monitor_fields())
      fields["evals.knn.random_init_baseline"] = False
  return _without_noops(loading.load(_pretrain_spec(row, epochs)), fields), budget


def _without_noops(config, fields):
  """`fields` less those that set None where `config` already has None: ml_collections
  cannot override a field whose value is None, not even with None."""
  def value(path):
    node = config
    for key in path.split("."):
      node = node[key]
    return node
  return {k: v for k, v in fields.items() if v is not None or value(k) is not None}


def commands(row, root, epochs):
  """([(stage, workdir, argv)], budget) of a row: its pre-training (none for a floor), the kNN
  probe and the linear probe; the budget is {} for a floor."""
  workdir = os.path.join(root, row.name)
  stages, budget, encoder = [], {}, {}
  if row.method:
    pre = os.path.join(workdir, "pretrain")
    fields, budget = pretrain_budget(row, epochs)
    stages.append(("pretrain", pre,
                   study_runs.command(_pretrain_spec(row, epochs), pre, fields)))
    encoder = {"init_from": pre}
  elif row.encoder_config:
    encoder = {"encoder_config": row.encoder_config}
  for protocol in ("knn", "linear_probe"):
    arg = f"cpu,protocol={protocol},recipe={row.recipe}" + (
        f",baseline={row.baseline}" if row.baseline else "")
    probe = os.path.join(workdir, protocol)
    stages.append((protocol, probe, study_runs.command(f"{PROBE_CONFIG}:{arg}", probe, encoder)))
  return stages, budget


def knn_top1(workdir):
  """kNN top-1 at k=200, t=0.1 of a kNN run's results.json (None if it has not finished)."""
  results = study_runs.read_results(workdir)
  return None if results is None else results["all"][KNN_METRIC]


def run_row(row, root, epochs, dry_run, records_dir=None):
  """Runs what is unfinished of a row, then writes its row.json under `records_dir` (default
  `root`): budget, wall seconds per stage (summed over the invocations that ran it), s/step,
  kNN and linear-probe top-1. A row recorded there with both at the same budget is skipped."""
  records_dir = records_dir or root
  stages, budget = commands(row, root, epochs)
  if study_runs.recorded(records_dir, row.name, budget, ("knn", "linear_probe")):
    print(f"[{row.name}] recorded in {records_dir} at this budget, skipped")
    return
  seconds = study_runs.run_stages(row.name, stages, budget.get("steps"), dry_run)
  if dry_run:
    return
  before = study_runs.read_records(records_dir, [row.name]).get(row.name, {})
  wall = dict(before.get("wall_s", {}))
  for stage, spent in seconds.items():
    wall[stage] = wall.get(stage, 0.0) + spent
  dirs = {stage: workdir for stage, workdir, _ in stages}
  record = dict(budget, name=row.name, wall_s=wall, knn=knn_top1(dirs["knn"]),
                linear_probe=read_result(dirs["linear_probe"]))
  if "pretrain" in dirs:
    record["seconds_per_step"] = study_runs.seconds_per_step(dirs["pretrain"],
                                                             budget["batch_size"])
  study_runs.write_record(records_dir, row.name, record)


def _cell(value):
  return "not run yet" if value is None else f"{100 * value:.1f}"


def _minutes(seconds):
  return "-" if seconds is None else f"{seconds / 60:.1f}"


def _shell(argv):
  return " ".join(["python", *argv[1:]] if argv[0] == study_runs.MAIN[0] else argv)


def tables(root, epochs_of, records_dir=None):
  """Markdown of the grouped table and every row's commands (workdirs under `root`), from the
  rows recorded under `records_dir` (default `root`; their row.json); `epochs_of` {row name:
  epochs} gives the unrecorded rows' budget."""
  records = study_runs.read_records(records_dir or root, rows_by_name())
  lines = ["| row | encoder | images seen (epochs) | steps x batch | pre-training (min) | "
           "kNN top-1 (k=200, t=0.1) | linear probe top-1 |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  listed = []
  for group, title in GROUPS:
    lines.append(f"| **{title}** | | | | | | |")
    for row in (r for r in rows() if r.group == group):
      stages, planned = commands(row, root, epochs_of[row.name])
      listed.append((row, stages))
      record = records.get(row.name, {})
      budget = {k: record.get(k, v) for k, v in planned.items()}
      images = (f"{budget['steps'] * budget['batch_size']:,} ({budget['epochs']})" if budget
                else "-")
      steps = f"{budget['steps']:,} x {budget['batch_size']}" if budget else "-"
      wall = _minutes(record.get("wall_s", {}).get("pretrain")) if budget else "-"
      lines.append(f"| {row.case} | {row.encoder} | {images} | {steps} | {wall} | "
                   f"{_cell(record.get('knn'))} | {_cell(record.get('linear_probe'))} |")
  lines += ["", "## Commands", ""]
  for row, stages in listed:
    lines += [f"{row.name}:", "```bash", *(_shell(argv) for _, _, argv in stages), "```", ""]
  return "\n".join(lines)


def plot(records_dir, out):
  """Bars of kNN and linear-probe top-1 of the recorded rows, in the table's order; False if
  none has finished."""
  records = study_runs.read_records(records_dir, rows_by_name())
  shown = [(row, records[row.name]) for row in rows() if row.name in records]
  if not shown:
    return False
  plt = study_runs.pyplot()
  fig, ax = plt.subplots(figsize=(10, 0.35 * len(shown) + 1.5))
  y = range(len(shown))
  for offset, key, label in ((-0.2, "knn", "kNN (k=200)"), (0.2, "linear_probe", "linear probe")):
    values = [float("nan") if r.get(key) is None else 100 * r[key] for _, r in shown]
    ax.barh([i + offset for i in y], values, height=0.4, label=label)
  ax.set_yticks(list(y), [f"{row.case} [{row.group}]" for row, _ in shown], fontsize=7)
  ax.invert_yaxis()
  ax.set_xlabel("CIFAR-10 test top-1 (%)")
  ax.set_title("The lecture's paradigms on CIFAR-10, one budget")
  ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over one
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  return True


def write_tables(root, epochs_of, records_dir=None):
  records_dir = records_dir or root
  os.makedirs(records_dir, exist_ok=True)
  path = os.path.join(records_dir, "paradigms.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(tables(root, epochs_of, records_dir) + "\n")
  chart = os.path.join(records_dir, "paradigms.png")
  return path, chart if plot(records_dir, chart) else None


def epochs_per_row(epochs, overrides):
  """{row name: epochs}: `epochs` for every row, `overrides` ("mae=10,rotation=3") where given."""
  out = {name: epochs for name in rows_by_name()}
  for item in filter(None, overrides.split(",")):
    name, _, value = item.partition("=")
    if name not in out or not value.isdigit() or int(value) < 1:
      raise SystemExit(f"--epochs_of: {item!r} is not row=epochs (epochs >= 1) of a row: use "
                       f"names among {', '.join(out)}")
    out[name] = int(value)
  return out


def main():
  parser = study_runs.parser(__doc__)
  parser.add_argument("--epochs", type=int, default=5,
                      help="pre-training budget of every row, in passes over the 50,000 images")
  parser.add_argument("--epochs_of", default="",
                      help="per-row budgets that override --epochs: name=epochs,...")
  args = parser.parse_args()
  if args.epochs < 1:
    raise SystemExit(f"--epochs={args.epochs}: use 1 or more")
  epochs_of = epochs_per_row(args.epochs, args.epochs_of)
  by_name = rows_by_name()
  if not args.tables_only:
    for name in study_runs.chosen(list(by_name), args.rows):
      run_row(by_name[name], args.root, epochs_of[name], args.dry_run, args.record)
  if not args.dry_run:
    path, chart = write_tables(args.root, epochs_of, args.record)
    print(f"table: {path}" + (f"; chart: {chart}" if chart else ""))


if __name__ == "__main__":
  main()
