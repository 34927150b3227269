"""Entry point: `python -m ssljax.main --config=configs/demo.py --workdir=/tmp/demo`.

Overrides: `--config.input.batch_size=64`; config variants: `--config=configs/x.py:runlocal`.
Bad input (config values, data, workdir) ends with one line naming the problem and the fix and
exit status 2; `--verbose` shows the traceback too.
"""
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, optionally `file.py:arg`.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
flags.DEFINE_bool("verbose", False, "Show tracebacks for input errors.")
flags.mark_flags_as_required(["config", "workdir"])

# Lets launch scripts and schedulers tell "saved, rerun me" from finished (0) and bad input (2).
PREEMPTED_EXIT_STATUS = 3


def format_summary(summary):
  """The demo's closing lines: final loss, kNN trained vs random init, where outputs are."""
  lines = [f"ssljax: finished step {summary['step']}/{summary['total_steps']} in "
           f"{summary['wall_time_s']:.0f}s"]
  if summary.get("final_loss") is not None:
    lines.append(f"  final loss            {summary['final_loss']:.4f}")
  evals = summary["evals"]
  for key, value in sorted(evals.items()):
    if key.startswith("random_init/"):
      continue
    baseline = evals.get(f"random_init/{key}")
    extra = f"   (random-init encoder: {baseline:.4f})" if baseline is not None else ""
    lines.append(f"  {key:<21} {value:.4f}{extra}")
  for path in summary["figures"][-1:]:
    lines.append(f"  reconstruction figure {path}")
  lines.append(f"  metrics               {summary['metrics_file']}")
  lines.append(f"  tensorboard           --logdir {summary['tensorboard_dir']}")
  return "\n".join(lines)


def _setup_logging():
  """ssljax's own lines at INFO in a short format; other libraries' (orbax logs every file it
  writes) only from WARNING."""
  logging.getLogger().setLevel(logging.WARNING)
  logger = logging.getLogger("ssljax")
  logger.setLevel(logging.INFO)
  logger.propagate = False
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  logger.addHandler(handler)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  _setup_logging()
  from ssljax import train  # pylint: disable=g-import-not-at-top
  from ssljax.errors import UserError  # pylint: disable=g-import-not-at-top
  try:
    summary = train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except UserError as e:
    if FLAGS.verbose:
      raise
    print(f"ssljax: error: {e}", file=sys.stderr)
    sys.exit(2)
  if summary["preempted"]:
    print(f"ssljax: preempted: saved step {summary['step']} in {summary['workdir']}; run the "
          "same command again to resume", file=sys.stderr)
    sys.exit(PREEMPTED_EXIT_STATUS)
  print(format_summary(summary))


if __name__ == "__main__":
  app.run(main)
