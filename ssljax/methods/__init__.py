"""Methods: one module of pure functions each, looked up by `config.method`.

A method module provides
  init(config, rng, image_shape) -> variables            # {"params": ..., other collections}
  loss(config, params, state, batch, rng) -> loss, (new_state, metrics)
  encode(config, variables, images) -> {name: [B, D]}    # features for evaluators
and optionally `reconstruct` (figures) and `after_update` (EMA/queue updates).
"""
import importlib

from ssljax.errors import ConfigError

KNOWN = ("mae", "simsiam")


def get(name):
  """The method module for `config.method`."""
  if name not in KNOWN:
    raise ConfigError(f"config.method={name!r} is unknown: use one of {', '.join(KNOWN)}")
  return importlib.import_module(f"ssljax.methods.{name}")
