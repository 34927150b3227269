"""Methods: one module of pure functions each, looked up by `config.method`.

The contract a module follows (required functions, optional hooks and their defaults) is
`ssljax.methods.contract`; `get` returns the bound `contract.Method`, so no caller tests for
attributes. `recipes` holds the papers' settings the configs in `configs/` share.
"""
import importlib

from ssljax.errors import ConfigError
from ssljax.methods import contract

KNOWN = ("mae", "simsiam", "simclr", "moco", "byol", "swav", "npid", "denoising",
         "context_encoder", "colorization", "rotation", "relative_position")


def module(name):
  """The method module for `config.method`."""
  if name not in KNOWN:
    raise ConfigError(f"config.method={name!r} is unknown: use one of {', '.join(KNOWN)}")
  return importlib.import_module(f"ssljax.methods.{name}")


def get(name):
  """The `contract.Method` for `config.method` (read from its module at the time of the call)."""
  return contract.bind(name, module(name))
