"""The SimSiam stop-gradient ablation on real CIFAR-10: a results table and curves.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python benchmarks/simsiam_collapse.py --out=/tmp/simsiam_collapse --steps=500 --batch=128

Trains `configs/simsiam_cifar10.py:cpu` with the same seed, data and budget as in the paper
(stop-gradient) and without stop-gradient, the seed's collapsing ablation ("w/o stop-grad":
67.7 -> 0.1 top-1); `--variants` adds "no-sg-no-pred" (neither stop-gradient nor predictor).
Writes `results.md` (final loss, the std of l2-normalised p and z, kNN top-1 of the trained and
of the random-init encoder) and `curves.png` (loss, both stds and kNN vs step) into --out;
each run's own workdir (checkpoints, metrics.jsonl, TensorBoard) is under it too.

The seed's collapse monitor is the std of p, the predictor output: a collapsed run's predictor
emits a constant vector and the std goes to 0. z ends in BatchNorm without affine (as in the
official code), so in training mode each of its channels keeps unit variance over the batch;
its std is held up and falls less far.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from ssljax.run import run_types  # pylint: disable=wrong-import-position
from ssljax.config import loading
from ssljax.runtime import metrics

VARIANTS = {"sg": ("stop-gradient (SimSiam)", dict(stop_gradient=True, predictor=True)),
            "no-sg": ("no stop-gradient", dict(stop_gradient=False, predictor=True)),
            "no-sg-no-pred": ("no stop-gradient, no predictor",
                              dict(stop_gradient=False, predictor=False))}


def load_config(steps, batch_size, blr):
  config = loading.load("simsiam_cifar10:cpu")
  with config.unlocked():
    config.total_steps = steps
    config.input.batch_size = batch_size
    config.optim.blr = blr
    config.log_every_steps = max(steps // 40, 1)
    config.evals.knn.every_steps = max(steps // 4, 1)
  return config


def run_variant(config, switches, workdir):
  with config.unlocked():
    config.simsiam.update(switches)
  summary = run_types.run(config, workdir)
  return summary, metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))


def series(records, key):
  points = [(r["step"], r[key]) for r in records if key in r]
  return [p[0] for p in points], [p[1] for p in points]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--steps", type=int, default=800)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--blr", type=float, default=0.2,
                      help="base lr (x batch / 256); the paper's CIFAR 0.03 collapses slower")
  parser.add_argument("--variants", default="sg,no-sg", help=f"of {', '.join(VARIANTS)}")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  knn_key = "knn/top1_k200_t0.1"
  rows, curves = [], {}
  for variant in args.variants.split(","):
    name, switches = VARIANTS[variant]
    config = load_config(args.steps, args.batch, args.blr)
    summary, records = run_variant(config, switches, os.path.join(args.out, variant))
    curves[name] = records
    last_p_std = series(records, "prediction_std")[1][-1]
    last_z_std = series(records, "output_std")[1][-1]
    rows.append(f"| {name} | {summary['final_loss']:.3f} | {last_p_std:.4f} | {last_z_std:.4f} | "
                f"{summary['evals'][knn_key]:.3f} | "
                f"{summary['evals']['random_init/' + knn_key]:.3f} | "
                f"{summary['wall_time_s'] / 60:.1f} |")
  dim = config.simsiam.dim
  table = "\n".join([
      f"SimSiam stop-gradient ablation, CIFAR-10, `simsiam_cifar10.py:cpu`, {args.steps} steps "
      f"x batch {args.batch}, base lr {args.blr} (healthy std ~ 1/sqrt({dim}) = "
      f"{dim ** -0.5:.4f}, collapse 0):", "",
      "| variant | final loss | std of p | std of z | kNN top-1 (k=200) | random-init kNN | "
      "minutes |", "| --- | --- | --- | --- | --- | --- | --- |", *rows])
  with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  keys = ("loss", "prediction_std", "output_std", knn_key)
  fig, axes = plt.subplots(1, len(keys), figsize=(17, 3.6))
  for name, records in curves.items():
    for ax, key in zip(axes, keys):
      ax.plot(*series(records, key), marker="o" if key == knn_key else None, label=name)
      ax.set_title(key)
      ax.set_xlabel("step")
  for ax in axes[1:3]:
    ax.axhline(dim ** -0.5, color="grey", linestyle=":", label="1/sqrt(dim)")
    ax.set_ylim(bottom=0)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "curves.png"), dpi=100)
  print(table)
  print(f"curves: {os.path.join(args.out, 'curves.png')}")


if __name__ == "__main__":
  main()
