"""Logging for the command-line entry points (`ssljax.main`, `ssljax.convert`)."""
import logging
import sys
import threading


class _NoItemMetadataWarning(logging.Filter):
  """Drops orbax's "Metadata file does not exist" for one item of a step (`pretrained.load`
  reads `checkpoints/N/state` on its own): that file is one level up, where the manager wrote
  it. A damaged item still fails to read, with its own one-line error."""

  def filter(self, record):
    return not record.getMessage().startswith("Metadata file does not exist")


class _NoOrbaxErrorTracebacks(logging.Filter):
  """Drops orbax's ERROR records (a failed async write logs one traceback per thread and
  operation, hundreds of lines): every such failure reaches ssljax as an exception that ends
  in one line (`CheckpointWriteError`, a damaged checkpoint set aside)."""

  def filter(self, record):
    return not (record.levelno >= logging.ERROR and "orbax" in record.pathname)


def _closed_event_loop(error):
  """orbax's threads and tensorstore's callbacks calling into the event loop of a save that
  failed and shut down: an echo of that failure, which the main thread reports."""
  return isinstance(error, RuntimeError) and "loop is closed" in str(error)


def _one_line_thread_errors():
  """threading.excepthook printing one line per distinct error instead of a traceback: library
  threads (orbax's savers, TensorBoard's writer) that die after a full disk report the same
  failure to the main thread, which ends the run with one line."""
  seen = set()

  def hook(args):
    if args.exc_type is SystemExit or _closed_event_loop(args.exc_value):
      return
    line = f"{args.exc_type.__name__}: {(str(args.exc_value).splitlines() or [''])[0][:200]}"
    if line in seen:
      return
    seen.add(line)
    name = args.thread.name if args.thread is not None else "?"
    print(f"ssljax: background thread {name} failed ({line})", file=sys.stderr)

  return hook


def setup(verbose=False):
  """ssljax's own lines at INFO in a short format; other libraries' (orbax logs every file it
  writes) only from WARNING. Unless `verbose`, orbax's error tracebacks are left out and a
  failing library thread prints one line."""
  logging.getLogger().setLevel(logging.WARNING)
  if not verbose:
    logging.getLogger("absl").addFilter(_NoOrbaxErrorTracebacks())
    threading.excepthook = _one_line_thread_errors()
    previous = sys.unraisablehook

    def unraisable(args):
      if not _closed_event_loop(args.exc_value):
        previous(args)

    sys.unraisablehook = unraisable
  # orbax's failed async writes also surface as "Task exception was never retrieved" at exit;
  # the trainer reports them (CheckpointWriteError) in one line instead.
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
  logging.getLogger("absl").addFilter(_NoItemMetadataWarning())
  logger = logging.getLogger("ssljax")
  logger.setLevel(logging.INFO)
  logger.propagate = False
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
  logger.addHandler(handler)
