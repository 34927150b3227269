"""The MAE paper's ablations (He et al. 2022, Table 1 and Figure 5) on real CIFAR-10, one budget.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python scripts/mae_ablations.py --root=/tmp/mae_ablations --steps=2000 [--finetune] [--dry_run]
  python scripts/mae_ablations.py --root=/tmp/mae_ablations --tables_only   # tables from what ran
  python scripts/mae_ablations.py --root=/tmp/mae_ablations --steps=500 \
    --record=docs/evidence/mae_ablations --rows=base,mask_25  # a few rows a session, kept in git

Every row is `configs/mae_cifar10.py` (ViT-Ti/4, 4 x 128 decoder) pre-trained for `--steps`
steps with one or two fields changed, then linear-probed (`configs/probe_cifar10.py:cpu,
protocol=linear_probe,recipe=mae`) and, with `--finetune`, fine-tuned (`finetune_cifar10.py:cpu`)
at three mask ratios. The base row is the paper's ablation baseline (75% masking, no mask
tokens in the encoder, pixels without per-patch normalisation, random-size crop), run with two
seeds; rows that equal it share its runs. Each row has its workdirs under `--root/<row>/`
(pretrain, linear_probe, finetune); a finished step (final checkpoint, results.json) is skipped
and an unfinished one reruns the same command, which resumes from its checkpoint. Each finished
row's `row.json` (budget, FLOPs, s/step, results) goes under `--record` (default `--root`), and
a row recorded there with its results at the same `--steps` is not run again. Writes
`results.md` (the lecture's tables: case / lin / ft / FLOPs, the paper's ImageNet numbers
beside them) and `mask_ratio.png` beside the records, from whatever rows have finished.
"""
import dataclasses
import os

import study_runs
from study_runs import config_of, read_result

PRETRAIN_CONFIG = "configs/mae_cifar10.py"
PROBE_CONFIG = "configs/probe_cifar10.py:cpu,protocol=linear_probe,recipe=mae"
FINETUNE_CONFIG = "configs/finetune_cifar10.py:cpu"
FINETUNE_ROWS = ("mask_25", "base", "mask_95")
BASE = {"mae.target": "pixel"}  # the paper's ablation baseline: pixels without normalisation
FIXED_CROP = {"aug.crop_scale": (0.765625, 0.765625), "input.crop_ratio": (1.0, 1.0)}


@dataclasses.dataclass(frozen=True)
class Row:
  name: str
  table: str
  case: str
  fields: tuple = ()  # ((config field, value), ...) on top of BASE
  seed: int = 0
  paper: tuple = (None, None)  # the paper's ImageNet (ft, lin) of this case, ViT-L/16


def rows():
  """Every row of the study, the base row first (once per table it appears in)."""
  out = [Row("base", "base", "baseline (seed 0)", paper=(84.9, 73.5)),
         Row("base_seed1", "base", "baseline (seed 1)", seed=1, paper=(84.9, 73.5))]
  for ratio in (10, 25, 50, 75, 85, 95):
    name = "base" if ratio == 75 else f"mask_{ratio}"
    out.append(Row(name, "mask_ratio", f"{ratio}%", (("mae.mask_ratio", ratio / 100),)))
  out += [Row("mask_tokens", "mask_tokens", "encoder w/ [M]",
              (("mae.encoder_mask_tokens", True),), paper=(84.2, 59.6)),
          Row("base", "mask_tokens", "encoder w/o [M]", paper=(84.9, 73.5))]
  for target, case, paper in (("pixel", "pixel (w/o norm)", (84.9, 73.5)),
                              ("norm_pixel", "pixel (w/ norm)", (85.4, 73.9)),
                              ("pca", "PCA", (84.6, 72.3)),
                              ("tokens", "k-means tokens (paper: dVAE token)", (85.3, 71.6))):
    name = "base" if target == "pixel" else f"target_{target}"
    out.append(Row(name, "target", case, (("mae.target", target),), paper=paper))
  out += [Row("aug_none", "augmentation", "none", (("aug.crop", False), ("aug.flip", False)),
              paper=(84.0, 65.7)),
          Row("aug_fixed", "augmentation", "crop, fixed size", tuple(FIXED_CROP.items()),
              paper=(84.7, 73.1)),
          Row("base", "augmentation", "crop, rand size", paper=(84.9, 73.5)),
          Row("aug_jitter", "augmentation", "crop + color jit",
              (("aug.color_jitter_prob", 0.8),), paper=(84.3, 71.9))]
  for depth, paper in ((1, (84.8, 65.5)), (2, (84.9, 70.0)), (4, (84.9, 71.9)),
                       (8, (84.9, 73.5))):
    name = "base" if depth == 4 else f"decoder_depth_{depth}"
    case = f"{depth} block" + "s" * (depth > 1)
    out.append(Row(name, "decoder_depth", case, (("mae.decoder_depth", depth),), paper=paper))
  for width, paper in ((128, (84.9, 69.1)), (256, (84.8, 71.3))):
    name = "base" if width == 128 else f"decoder_width_{width}"
    out.append(Row(name, "decoder_width", f"{width}", (("mae.decoder_width", width),),
                   paper=paper))
  return out


def unique_runs():
  """{row name: Row} of the distinct pre-trainings (a row that equals the base shares it)."""
  runs = {}
  for row in rows():
    runs.setdefault(row.name, row)
  return runs


def pretrain_fields(row, steps):
  """{field: value} of a row's pre-training at `steps` steps (warm-up 5%, monitors once at
  the end, the kNN one on study_runs.KNN_MONITOR_CAP's subset)."""
  fields = {"total_epochs": None, "total_steps": steps, "seed": row.seed,
            "optim.warmup_epochs": None, "optim.warmup_steps": max(steps // 20, 1),
            "checkpoint_every_steps": min(500, steps), "evals.knn.every_steps": steps,
            "evals.recon.every_steps": steps, **study_runs.knn_monitor_fields(), **BASE,
            **dict(row.fields)}
  return fields


def commands(row, root, steps, finetune):
  """[(stage, workdir, argv)] of a row: pre-training, linear probe, fine-tuning (optional)."""
  workdir = os.path.join(root, row.name)
  pre = os.path.join(workdir, "pretrain")
  out = [("pretrain", pre, study_runs.command(PRETRAIN_CONFIG, pre, pretrain_fields(row, steps)))]
  probe = os.path.join(workdir, "linear_probe")
  out.append(("linear_probe", probe,
              study_runs.command(PROBE_CONFIG, probe, {"init_from": pre})))
  if finetune and row.name in FINETUNE_ROWS:
    tune = os.path.join(workdir, "finetune")
    out.append(("finetune", tune, study_runs.command(FINETUNE_CONFIG, tune, {"init_from": pre})))
  return out


def row_record(row, argv):
  """What the tables need of a row beyond its runs' results: FLOPs per training image."""
  from ssljax.methods import mae  # pylint: disable=g-import-not-at-top
  config = config_of(argv)
  return {"name": row.name, "flops_per_example": mae.flops_per_example(config),
          "mask_token_flops_ratio": mae.mask_token_flops_ratio(config),
          "batch_size": config.input.batch_size}


TABLES = (("base", "Baseline, two seeds (the noise)"),
          ("mask_ratio", "Mask ratio (paper: Figure 5)"),
          ("mask_tokens", "Mask token in the encoder (paper: Table 1c)"),
          ("target", "Reconstruction target (paper: Table 1d)"),
          ("augmentation", "Data augmentation (paper: Table 1e)"),
          ("decoder_depth", "Decoder depth (paper: Table 1a)"),
          ("decoder_width", "Decoder width (paper: Table 1b)"))


def _cell(value, scale=100.0):
  return "not run yet" if value is None else f"{value * scale:.1f}"


def tables(records_dir):
  """Markdown of every table from the rows recorded under `records_dir` (their row.json)."""
  records = study_runs.read_records(records_dir, unique_runs())
  base_flops = records.get("base", {}).get("flops_per_example")
  lines = []
  for table, title in TABLES:
    lines += [f"### {title}", "", "| case | lin | ft | FLOPs | s/step | paper ft | paper lin |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in (r for r in rows() if r.table == table):
      record = records.get(row.name, {})
      lin, ft = record.get("linear_probe"), record.get("finetune")
      flops = record.get("flops_per_example")
      ratio = f"{flops / base_flops:.2f}x" if flops and base_flops else "-"
      step = record.get("seconds_per_step")
      paper = [("-" if v is None else f"{v}") for v in row.paper]
      ft_cell = _cell(ft) if row.name in FINETUNE_ROWS else "-"
      step_cell = "-" if step is None else f"{step:.3f}"
      lines.append(f"| {row.case} | {_cell(lin)} | {ft_cell} | {ratio} | {step_cell} | "
                   f"{paper[0]} | {paper[1]} |")
    lines.append("")
  return "\n".join(lines)


def plot_mask_ratio(records_dir, out):
  """Linear-probe accuracy vs mask ratio of the recorded rows; False if none has finished."""
  records = study_runs.read_records(records_dir, unique_runs())
  points = []
  for row in (r for r in rows() if r.table == "mask_ratio"):
    value = records.get(row.name, {}).get("linear_probe")
    if value is not None:
      points.append((float(row.case.rstrip("%")), 100 * value))
  if not points:
    return False
  plt = study_runs.pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot(*zip(*sorted(points)), marker="o", label="seed 0")
  other_seed = records.get("base_seed1", {}).get("linear_probe")
  if other_seed is not None:  # the base row's second seed: the noise of one point
    ax.plot([75.0], [100 * other_seed], marker="x", linestyle="none", color="black",
            label="75%, seed 1")
    ax.legend()
  ax.set_xlim(0, 100)
  ax.set_xlabel("mask ratio (%)")
  ax.set_ylabel("linear probe top-1 (%)")
  ax.set_title("MAE on CIFAR-10: linear probe vs mask ratio")
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  return True


def results_of(row, finetune):
  """The measured values a finished row's row.json holds."""
  return ("linear_probe",) + (("finetune",) if finetune and row.name in FINETUNE_ROWS else ())


def run_row(row, root, steps, finetune, dry_run, records_dir=None):
  """Runs what is unfinished of a row, then writes its row.json (steps, FLOPs, results, s/step)
  under `records_dir` (default `root`); a row recorded there at `steps` is skipped."""
  records_dir = records_dir or root
  if study_runs.recorded(records_dir, row.name, {"steps": steps}, results_of(row, finetune)):
    print(f"[{row.name}] recorded in {records_dir} at {steps} steps, skipped")
    return
  stages = commands(row, root, steps, finetune)
  study_runs.run_stages(row.name, stages, steps, dry_run)
  if dry_run:
    return
  record = row_record(row, stages[0][2])
  record["steps"] = steps
  record["seconds_per_step"] = study_runs.seconds_per_step(stages[0][1], record["batch_size"])
  for stage, workdir, _ in stages[1:]:
    record[stage] = read_result(workdir)
  study_runs.write_record(records_dir, row.name, record)


def write_tables(records_dir):
  os.makedirs(records_dir, exist_ok=True)
  path = os.path.join(records_dir, "results.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(tables(records_dir) + "\n")
  plot = os.path.join(records_dir, "mask_ratio.png")
  return path, plot if plot_mask_ratio(records_dir, plot) else None


def main():
  parser = study_runs.parser(__doc__)
  parser.add_argument("--steps", type=int, default=2000)
  parser.add_argument("--finetune", action="store_true",
                      help=f"also fine-tune rows {', '.join(FINETUNE_ROWS)}")
  args = parser.parse_args()
  runs = unique_runs()
  if not args.tables_only:
    for name in study_runs.chosen(list(runs), args.rows):
      run_row(runs[name], args.root, args.steps, args.finetune, args.dry_run, args.record)
  if not args.dry_run:
    path, plot = write_tables(args.record or args.root)
    print(f"tables: {path}" + (f"; plot: {plot}" if plot else ""))


if __name__ == "__main__":
  main()
