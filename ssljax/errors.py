"""Errors caused by the user's input (config values, data, workdir).

They carry a one-line message that names the problem and the fix; `ssljax.main` prints that
line and exits with status 2 instead of a traceback.
"""


class UserError(Exception):
  """A problem with the user's input, not a bug in ssljax."""

  def __str__(self):
    # The message is one line; libraries that re-raise it from worker threads (grain) append
    # their own notes to the arguments, which a user does not need.
    return str(self.args[0]).split("\n", 1)[0] if self.args else ""


class ConfigError(UserError, ValueError):
  """A config value is invalid: the message names the field, the value and the fix."""


class DataError(UserError):
  """Data is missing, unprepared or malformed: the message names the path and the fix."""
