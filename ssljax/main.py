"""Entry point: `python -m ssljax.main --config=configs/demo.py --workdir=/tmp/demo`.

Overrides: `--config.input.batch_size=64`; config variants: `--config=configs/x.py:runlocal`.
Bad input (config values, data, workdir) ends with one line naming the problem and the fix and
exit status 2; `--verbose` shows the traceback too.
"""
import logging
import os
import re
import signal
import sys
import traceback

from absl import app, flags
from ml_collections import config_flags

from ssljax.config import loading
from ssljax.errors import UserError
from ssljax.runtime import cli_logging

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file, optionally `file.py:arg`.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
flags.DEFINE_bool("verbose", False, "Show tracebacks for input errors.")
flags.DEFINE_string("coordinator_address", None,
                    "host:port of process 0, for multi-process runs outside TPU pods and SLURM "
                    "(which are detected); with --num_processes and --process_id.")
flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")
flags.mark_flags_as_required(["config", "workdir"])

# Lets launch scripts and schedulers tell "saved, rerun me" from finished (0) and bad input (2).
PREEMPTED_EXIT_STATUS = 3
INTERRUPTED_EXIT_STATUS = 130  # Ctrl-C: the shell's 128 + SIGINT


def format_summary(summary):
  """The demo's closing lines: final loss, kNN trained vs random init, where outputs are."""
  lines = [f"ssljax: finished step {summary['step']}/{summary['total_steps']} in "
           f"{summary['wall_time_s']:.0f}s"]
  if summary.get("final_loss") is not None:
    lines.append(f"  final loss            {summary['final_loss']:.4f}")
  evals = summary["evals"]
  for key, value in evals.items():  # in the order the evaluators report them
    if key.startswith("random_init/"):
      continue
    baseline = evals.get(f"random_init/{key}")
    extra = f"   (random-init encoder: {baseline:.4f})" if baseline is not None else ""
    lines.append(f"  {key:<21} {value:.4f}{extra}")
  if summary.get("skipped_images"):
    lines.append(f"  skipped images        {len(summary['skipped_images'])} undecodable files, "
                 "each replaced by the next readable one (listed in the log)")
  if summary.get("record"):
    lines.append(f"  results record        {summary['workdir']}/results.json")
  for path in summary["figures"][-1:]:
    lines.append(f"  reconstruction figure {path}")
  lines.append(f"  metrics               {summary['metrics_file']}")
  lines.append(f"  tensorboard           --logdir {summary['tensorboard_dir']}")
  return "\n".join(lines)


def flag_error_line(error, argv):
  """One line for a command-line error: a typo in an override, a bad value, a missing file."""
  # The original UserError (e.g. raised by a config file's get_config), which ml_collections
  # re-raises as a new exception of the same type with a traceback in its message.
  original, cause = None, error
  while cause is not None:
    original = cause if isinstance(cause, UserError) else original
    cause = cause.__cause__ or cause.__context__
  if original is not None:
    return str(original)
  raw = str(error)
  if isinstance(error, (AttributeError, KeyError)):
    # ml_collections reports an unknown field as the repr of a KeyError in an AttributeError.
    field = (re.findall(r"[A-Za-z_]\w*", raw) or ["?"])[0]
    flag = next((a.split("=")[0] for a in argv
                 if a.startswith("--config.") and a.split("=")[0].endswith(f".{field}")),
                "--config")
    suggestion = re.search(r'Did you mean "(\w+)"', raw)
    fix = (f"did you mean {suggestion.group(1)!r}?" if suggestion else
           "check the spelling against the config file")
    return f"{flag}: the config has no field {field!r}: {fix}"
  if "Failed loading config file" in raw:
    path = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "?")
    reason = next((l.strip() for l in raw.splitlines() if "Errno" in l), "cannot be imported")
    return f"config file {path} cannot be loaded ({reason}): pass an existing configs/*.py"
  lines = [l.strip() for l in raw.splitlines() if l.strip()]
  if "Traceback" in raw:  # an error raised while running the config file's get_config
    return re.sub(r"^[\w.]+: ", "", lines[-1])
  text = " ".join(lines).removeprefix("FATAL Flags parsing error: ").rstrip(".")
  return f"{text} (see --helpfull for the flags)"


def parse_flags(argv):
  """absl's flag parsing, with errors as one line and exit status 2 (--verbose: traceback)."""
  # ml_collections cannot parse "None"; `--config.a.b=None` unsets an optional field here.
  unset = [a for a in argv if re.fullmatch(r"--config(\.\w+)+=(None|none)", a)]
  try:
    args = FLAGS([a for a in argv if a not in unset])
    if FLAGS.config is not None:
      FLAGS.config.keys()  # a config file that failed to load raises only when first used
      for arg in unset:
        loading.set_field(FLAGS.config, arg.split("=")[0].removeprefix("--config."), None)
      loading.check_overrides_are_used(
          FLAGS.config, [a.split("=")[0].removeprefix("--config.") for a in argv
                         if a.startswith("--config.")])
    return args
  except Exception as e:  # pylint: disable=broad-except
    if "--verbose" in argv:
      raise
    in_file = _config_file_error(e, argv)
    line = config_file_error_line(in_file, argv) if in_file else flag_error_line(e, argv)
    print(f"ssljax: error: {line}", file=sys.stderr)
    sys.exit(2)


def _config_path(argv):
  """The config file's path as given in `--config=path.py:arg`."""
  return next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")),
              "?").split(":")[0]


def _config_file_error(error, argv):
  """The exception raised by the config file's own code (or its missing get_config) in the
  chain of `error`; None for flag errors and ssljax's UserErrors (already one line)."""
  path = os.path.abspath(_config_path(argv))
  cause = error
  while cause is not None:
    if isinstance(cause, UserError):
      return None
    if isinstance(cause, AttributeError) and "attribute 'get_config'" in str(cause):
      return cause
    if isinstance(cause, SyntaxError) and cause.filename and os.path.abspath(
        cause.filename) == path:
      return cause
    if any(os.path.abspath(f.filename) == path
           for f in traceback.extract_tb(cause.__traceback__)):
      return cause
    cause = cause.__cause__ or cause.__context__
  return None


def config_file_error_line(error, argv):
  """One line for a config file that fails while it loads: no get_config, or an exception
  (a syntax error included) inside it, named with the file and line."""
  path = _config_path(argv)
  if isinstance(error, AttributeError) and "get_config" in str(error):
    return (f"config file {path} has no get_config: define get_config(arg=None) returning an "
            "ml_collections.ConfigDict")
  if isinstance(error, SyntaxError):
    line, message = error.lineno, error.msg
  else:
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    line = frames[-1].lineno if frames else None
    message = (str(error).splitlines() or [""])[0]
  at = f", line {line}" if line else ""
  return (f"config file {path}{at} raised {type(error).__name__} ({message}) while loading: "
          "fix the file or pass another --config")


def exit_now(status):
  """Exits with `status` even while library threads live on: after a failed checkpoint write
  orbax's non-daemon threads wait forever, which would hold a batch job's accelerators. The
  run has already closed its checkpointer and released its workdir."""
  sys.stdout.flush()
  sys.stderr.flush()
  logging.shutdown()
  os._exit(status)  # pylint: disable=protected-access


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  cli_logging.setup(FLAGS.verbose)
  # pylint: disable=g-import-not-at-top  # JAX starts after the flags, the runs after JAX
  from ssljax.runtime import distributed, preemption
  try:
    distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
    from ssljax.run import run_types
    summary = run_types.run(FLAGS.config, FLAGS.workdir)
  except UserError as e:
    if FLAGS.verbose:
      raise
    print(f"ssljax: error: {e}", file=sys.stderr)
    exit_now(2)
  except preemption.Preempted as notice:  # nothing was left unsaved
    print(f"ssljax: {_stopped_by(notice.signum)} before any unsaved step ({notice}): run the "
          f"same command again to resume", file=sys.stderr)
    exit_now(_stop_status(notice.signum))
  if summary["preempted"]:
    signum = summary.get("stop_signal") or signal.SIGTERM
    print(f"ssljax: {_stopped_by(signum)}: saved step {summary['step']} in "
          f"{summary['workdir']}; run the same command again to resume", file=sys.stderr)
    sys.exit(_stop_status(signum))
  print(format_summary(summary))


def _stopped_by(signum):
  return "interrupted" if signum == signal.SIGINT else "preempted"


def _stop_status(signum):
  """3 after SIGTERM (launch scripts rerun on 3); 130 after Ctrl-C, which a user meant."""
  return INTERRUPTED_EXIT_STATUS if signum == signal.SIGINT else PREEMPTED_EXIT_STATUS


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
