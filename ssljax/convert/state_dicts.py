"""Flax variables of one model part <-> a flat PyTorch-style state dict of numpy arrays.

A part's variables are `{collection: tree}` (e.g. `{"params": encoder_params}` or
`{"params": ..., "batch_stats": ...}` for a ResNet); `key_fn(collection, path)` names each
leaf in the PyTorch layout (`ssljax.convert.layouts`).
"""
import dataclasses

from flax import traverse_util
import numpy as np

from ssljax.convert import layouts


def to_state_dict(variables, key_fn):
  """{collection: tree} -> {torch key: array in the torch layout}."""
  state_dict = {}
  for collection, tree in variables.items():
    for path, array in traverse_util.flatten_dict(tree).items():
      state_dict[key_fn(collection, path)] = layouts.to_torch(path, array)
  return state_dict


@dataclasses.dataclass
class Loaded:
  """What `from_state_dict` found: the filled variables and which keys matched or not."""
  variables: dict
  used: list  # torch keys that were read
  missing: list  # torch keys the target needs but the state dict lacks (target kept there)
  mismatched: list  # (torch key, shape in the file (torch layout), shape expected (torch layout))


def from_state_dict(state_dict, target, key_fn):
  """Fills `target` ({collection: tree} of arrays, e.g. a fresh init) from `state_dict`."""
  variables, used, missing, mismatched = {}, [], [], []
  for collection, tree in target.items():
    flat = {}
    for path, array in traverse_util.flatten_dict(tree).items():
      key = key_fn(collection, path)
      flat[path] = np.asarray(array)
      if key not in state_dict:
        missing.append(key)
        continue
      value = layouts.from_torch(path, state_dict[key])
      if value.shape != flat[path].shape:
        mismatched.append((key, tuple(np.shape(state_dict[key])),
                           layouts.to_torch(path, flat[path]).shape))
        continue
      flat[path] = value.astype(flat[path].dtype)
      used.append(key)
    variables[collection] = traverse_util.unflatten_dict(flat)
  return Loaded(variables, used, missing, mismatched)
