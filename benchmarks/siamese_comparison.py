"""SimSiam, SimCLR, MoCo v2, BYOL and SwAV on real CIFAR-10 with one budget: a table and curves.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python benchmarks/siamese_comparison.py --out=/tmp/siamese_comparison --steps=400 --batch=128

Every method runs its `configs/<method>_cifar10.py:cpu` config (narrow ResNet-18, width 16,
512-d hidden layers) with the same seed, data order, batch, augmentation (SimSiam's CIFAR
recipe), optimizer (SGD momentum 0.9, `--blr` x batch / 256, cosine, wd 5e-4) and number of
steps: only the objective and what it needs (negatives, a momentum encoder, prototypes) differ.
Writes `results.md` (the seed's comparison-table columns plus kNN top-1, the collapse monitor
and throughput) and `curves.png` (loss relative to its start, kNN and output std vs step) into
--out, each run's workdir under it.
"""
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from ssljax.run import run_types  # pylint: disable=wrong-import-position
from ssljax.config import loading
from ssljax.runtime import metrics

# name: (config, needs negative pairs, has a momentum encoder)
METHODS = {"simsiam": ("simsiam_cifar10", False, False),
           "simclr": ("simclr_cifar10", True, False),
           "moco_v2": ("moco_v2_cifar10", True, True),
           "byol": ("byol_cifar10", False, True),
           "swav": ("swav_cifar10", False, False)}
KNN = "knn/top1_k200_t0.1"


def load_config(name, steps, batch_size, blr, random_init_baseline):
  config = loading.load(METHODS[name][0] + ":cpu")
  with config.unlocked():
    config.total_steps = steps
    config.input.batch_size = batch_size
    config.optim.blr = blr
    config.log_every_steps = max(steps // 40, 1)
    config.checkpoint_every_steps = steps
    config.evals.knn.every_steps = max(steps // 4, 1)
    config.evals.knn.random_init_baseline = random_init_baseline
  return config


def series(records, key):
  points = [(r["step"], r[key]) for r in records if key in r]
  return np.array([p[0] for p in points]), np.array([p[1] for p in points])


def run(name, args, first):
  config = load_config(name, args.steps, args.batch, args.blr, first)
  workdir = os.path.join(args.out, name)
  summary = run_types.run(config, workdir)
  records = metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  dim = config[config.method].dim
  _, std = series(records, "output_std")
  _, rate = series(records, "img_per_s")
  return {"summary": summary, "records": records, "dim": dim, "std": std[-1],
          "img_per_s": float(np.median(rate)) if rate.size else float("nan")}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--blr", type=float, default=0.2)
  parser.add_argument("--methods", default=",".join(METHODS), help=f"of {', '.join(METHODS)}")
  args = parser.parse_args()
  os.makedirs(args.out, exist_ok=True)
  results = {}
  for i, name in enumerate(args.methods.split(",")):
    results[name] = run(name, args, first=i == 0)
  floor = next(iter(results.values()))["summary"]["evals"].get("random_init/" + KNN)
  mark = lambda flag: "✓" if flag else ""
  rows = [f"| {name} | {args.batch} | {mark(METHODS[name][1])} | {mark(METHODS[name][2])} | "
          f"{r['summary']['evals'][KNN]:.3f} | {r['std']:.4f} ({r['std'] * r['dim'] ** 0.5:.2f}) "
          f"| {r['summary']['final_loss']:.3f} | {r['img_per_s']:.0f} | "
          f"{r['summary']['wall_time_s'] / 60:.1f} |" for name, r in results.items()]
  table = "\n".join([
      f"Real CIFAR-10, narrow ResNet-18 (width 16), {args.steps} steps x batch {args.batch}, SGD "
      f"blr {args.blr}, same augmentation and seed; kNN top-1 (k=200, t=0.1) of the backbone on "
      f"2,000 test images against 10,000 train images" + (f"; random-init encoder: {floor:.3f}"
                                                            if floor is not None else "") + ".",
      "Output std: the std of the l2-normalised projection z over the batch (collapse: 0; in "
      "brackets x sqrt(dim), about 1 when healthy).", "",
      "| method | batch size | negative pairs | momentum encoder | kNN top-1 | output std | "
      "final loss | img/s | minutes |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |", *rows])
  with open(os.path.join(args.out, "results.md"), "w", encoding="utf-8") as f:
    f.write(table + "\n")
  fig, axes = plt.subplots(1, 3, figsize=(16, 3.8))
  for name, r in results.items():
    steps, loss = series(r["records"], "loss")
    axes[0].plot(steps, loss - loss[0], label=name)
    axes[1].plot(*series(r["records"], KNN), marker="o", label=name)
    steps, std = series(r["records"], "output_std")
    axes[2].plot(steps, std * r["dim"] ** 0.5, label=name)
  if floor is not None:
    axes[1].axhline(floor, color="grey", linestyle=":", label="random init")
  for ax, title in zip(axes, ("loss - initial loss", "kNN top-1 (k=200)",
                              "output std x sqrt(dim)")):
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "curves.png"), dpi=100)
  print(table)
  print(f"curves: {os.path.join(args.out, 'curves.png')}")


if __name__ == "__main__":
  main()
