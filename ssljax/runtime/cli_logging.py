"""Logging for the command-line entry points (`ssljax.main`, `ssljax.convert`)."""
import logging
import sys


class _NoItemMetadataWarning(logging.Filter):
  """Drops orbax's "Metadata file does not exist" for one item of a step (`pretrained.load`
  reads `checkpoints/N/state` on its own): that file is one level up, where the manager wrote
  it. A damaged item still fails to read, with its own one-line error."""

  def filter(self, record):
    return not record.getMessage().startswith("Metadata file does not exist")


def setup():
  """ssljax's own lines at INFO in a short format; other libraries' (orbax logs every file it
  writes) only from WARNING."""
  logging.getLogger().setLevel(logging.WARNING)
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
