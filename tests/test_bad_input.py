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


@pytest.mark.parametrize("case", bad_input_catalogue.CASES, ids=lambda case: case[0])
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
])
def test_command_line_errors_are_one_line_with_status_2(args, line, tmp_path):
  result = _cli(*args, f"--workdir={tmp_path}")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [f"ssljax: error: {line}"]


def test_verbose_shows_the_traceback(tmp_path):
  result = _cli("--config=configs/demo.py:runlokal", f"--workdir={tmp_path}", "--verbose")
  assert result.returncode != 0 and "Traceback" in result.stderr
