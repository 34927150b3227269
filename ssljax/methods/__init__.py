"""Methods: one module of pure functions each, looked up by `config.method`.

A method module provides
  init(config, rng, image_shape) -> variables            # {"params": ..., other collections}
  loss(config, params, state, batch, rng) -> loss, (new_state, metrics)
  encode(config, variables, images) -> {name: [B, D]}    # features for evaluators
and optionally
  after_update(config, params, model_state, step, total_steps) -> params, model_state
                                                         # EMA targets, prototypes
  validate(config)                                       # raises ConfigError
  SHARDED_STATE = ("queue",)   # model_state leaves sharded over the batch axis, not replicated
  reconstruct(config, variables, images, rng)            # figures
"""
import importlib

from ssljax.errors import ConfigError

KNOWN = ("mae", "simsiam", "simclr", "moco", "byol", "swav")


def get(name):
  """The method module for `config.method`."""
  if name not in KNOWN:
    raise ConfigError(f"config.method={name!r} is unknown: use one of {', '.join(KNOWN)}")
  return importlib.import_module(f"ssljax.methods.{name}")
