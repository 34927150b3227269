"""`python -m ssljax.convert import|export ...`: checkpoint interop (see the package).

  import  --config=CONFIG --source=FILE.pth --workdir=DIR   (config overrides: --config.a.b=v)
  import  --source=HF_DIR --workdir=DIR [--config=CONFIG]   (a save_pretrained ViTMAE directory)
  export  --init_from=WORKDIR|checkpoints/N --output=FILE.pth|HF_DIR|FILE.pkl
          [--format=pth|hf|detectron2] [--image_size=224]

Bad input ends with one line naming the problem and the fix and exit status 2.
"""
import sys

from absl import app, flags
from ml_collections import config_flags

from ssljax.runtime import cli_logging
from ssljax.errors import UserError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "import: the ssljax config of the model the "
                                "checkpoint holds (e.g. configs/mae_vitb.py); for a Hugging "
                                "Face directory the recipe its config.json is applied to "
                                "(default configs/mae_vitb.py).", lock_config=True)
flags.DEFINE_string("source", None, "import: the PyTorch checkpoint (.pth) or a Hugging Face "
                    "save_pretrained directory of a ViTMAEForPreTraining / ViTMAEModel.")
flags.DEFINE_string("workdir", None, "import: a new directory for the ssljax checkpoint.")
flags.DEFINE_string("init_from", None, "export: an ssljax pre-training workdir or checkpoint.")
flags.DEFINE_string("output", None, "export: the file (pth, detectron2) or directory (hf) to "
                    "write.")
flags.DEFINE_string("format", "pth", "export: pth (PyTorch, the official releases' layout), hf "
                    "(a transformers ViTMAEForPreTraining directory) or detectron2 (the "
                    "backbone as a .pkl).")
flags.DEFINE_integer("image_size", None, "export: image size of the written position "
                     "embeddings (default: the run's).")
flags.DEFINE_bool("verbose", False, "Show tracebacks for input errors.")

_REQUIRED = {"import": ("source", "workdir"), "export": ("init_from", "output")}


def _run(command):
  # pylint: disable=g-import-not-at-top  # JAX and orbax only once the flags are good
  from ssljax.convert import checkpoints
  if command == "import":
    summary = checkpoints.import_file(FLAGS.source, FLAGS.config, FLAGS.workdir)
    lines = [f"ssljax.convert: {summary['loaded']} arrays from {summary['source']} -> "
             f"{summary['checkpoint']}",
             f"  use it with --config.init_from={FLAGS.workdir}"]
    lines += [f"  config: {change}" for change in summary["config_changes"]]
    for part in summary["random_init"]:
      lines.append(f"  {part}: not in the file, left at random init")
    if summary["ignored"]:
      shown = ", ".join(summary["ignored"][:6])
      more = f" and {len(summary['ignored']) - 6} more" if len(summary["ignored"]) > 6 else ""
      lines.append(f"  ignored keys: {shown}{more}")
    return "\n".join(lines)
  summary = checkpoints.export_checkpoint(FLAGS.init_from, FLAGS.output, FLAGS.image_size,
                                          FLAGS.format)
  return (f"ssljax.convert: {summary['keys']} tensors from {summary['step_dir']} -> "
          f"{summary['output']}")


def main(argv):
  cli_logging.setup(FLAGS.verbose)
  command = argv[1] if len(argv) == 2 else None
  try:
    if command not in _REQUIRED:
      raise UserError(f"expected one command, import or export, got {argv[1:]}: see "
                      "python -m ssljax.convert --help")
    missing = [f"--{name}" for name in _REQUIRED[command] if getattr(FLAGS, name) is None]
    if missing:
      raise UserError(f"{command} needs {', '.join(missing)}: see python -m ssljax.convert "
                      "--help")
    print(_run(command))
  except UserError as e:
    if FLAGS.verbose:
      raise
    print(f"ssljax.convert: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
