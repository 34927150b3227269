"""The bad-input catalogue: every case ends in one line naming what is wrong and the fix."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "scripts"))
import bad_input_catalogue  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_the_catalogue_has_at_least_20_distinct_cases():
  names = [case[0] for case in bad_input_catalogue.CASES]
  assert len(names) >= 20 and len(set(names)) == len(names)


# checkpoint_vs_config trains a run first (slow): test_checkpoint.py's changed-config resume
# covers the same refusal in the default suite.
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow)
                                  if c[0] == "checkpoint_vs_config" else c
                                  for c in bad_input_catalogue.CASES], ids=lambda case: case[0])
def test_bad_input_is_one_line_naming_the_value_and_the_fix(case, tmp_path):
  message = bad_input_catalogue.error_message(case, str(tmp_path))
  assert "\n" not in message and len(message) < 600, message
  for expected in case[3]:
    assert expected in message, f"{expected!r} not in {message!r}"
  # "<what is wrong>: <what to do>": the fix follows the last colon-space.
  fix = message.rsplit(": ", 1)[-1]
  assert ": " in message and len(fix.split()) >= 2, message
  if case[0] == "checkpoint_vs_config":  # the checkpoint is kept, untouched
    assert os.listdir(tmp_path / "run" / "checkpoints") == ["1"]


def _cli(*args):
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  return subprocess.run([sys.executable, "-m", "ssljax.main", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,line", [
    (["--config=configs/demo.py", "--config.input.batch_sise=8"],
     "--config.input.batch_sise: the config has no field 'batch_sise': did you mean "
     "'batch_size'?"),
    (["--config=configs/demo.py:runlokal"],
     "config argument 'runlokal' is unknown: use one of runlocal"),
    (["--config=configs/nosuch.py"],
     "config file configs/nosuch.py cannot be loaded ([Errno 2] No such file or directory: "
     "'configs/nosuch.py'): pass an existing configs/*.py"),
    (["--config=configs/demo.py", "--config.input.batch_size=abc"],
     "flag --config.input.batch_size=abc: invalid literal for int() with base 10: 'abc' (see "
     "--helpfull for the flags)"),
    (["--config=configs/demo.py:runlocal=5"],
     "config argument runlocal=5 is not true or false: write runlocal (true), runlocal=true or "
     "runlocal=false"),
    (["--config=configs/mae_vitb.py:epochs=abc"],
     "config argument epochs=abc is not an integer: write e.g. epochs=800"),
    (["--config=configs/probe_demo.py:runlocal", "--config.optim.blr=1e6"],
     "--config.optim.blr has no effect: this config sets optim.lr=6.4, which takes precedence; "
     "override --config.optim.lr instead, or unset it with --config.optim.lr=None to scale "
     "optim.blr by the batch size"),
    (["--config=TMP/no_get_config.py"],
     "config file TMP/no_get_config.py has no get_config: define get_config(arg=None) "
     "returning an ml_collections.ConfigDict"),
    (["--config=TMP/raises.py"],
     "config file TMP/raises.py, line 3 raised KeyError ('image_size') while loading: fix the "
     "file or pass another --config"),
    (["--config=TMP/syntax_error.py"],
     "config file TMP/syntax_error.py, line 2 raised SyntaxError ('(' was never closed) while "
     "loading: fix the file or pass another --config"),
])
def test_command_line_errors_are_one_line_with_status_2(args, line, tmp_path):
  (tmp_path / "no_get_config.py").write_text("CONFIG = {}\n")
  (tmp_path / "raises.py").write_text("def get_config(arg=None):\n  sizes = {}\n"
                                      "  return sizes['image_size']\n")
  (tmp_path / "syntax_error.py").write_text("def get_config(arg=None):\n  return dict(\n")
  args = [a.replace("TMP", str(tmp_path)) for a in args]
  line = line.replace("TMP", str(tmp_path))
  result = _cli(*args, f"--workdir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [f"ssljax: error: {line}"]


def test_verbose_shows_the_traceback(tmp_path):
  result = _cli("--config=configs/demo.py:runlokal", f"--workdir={tmp_path}", "--verbose")
  assert result.returncode != 0 and "Traceback" in result.stderr
