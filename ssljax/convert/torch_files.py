"""Reading and writing PyTorch checkpoint files (`.pth`) as dicts of numpy arrays.

Needs the `torch` extra (`pip install -e '.[torch]'`); files are read with
`torch.load(weights_only=True)`, which never runs code stored in a checkpoint.
"""
import os

import numpy as np

from ssljax.errors import UserError

# Where official releases keep the weights (MAE: "model"; SimSiam, MoCo: "state_dict"), and
# the attribute their method wrapper gives the encoder (SimSiam `encoder`, MoCo v1/v2
# `encoder_q`, MoCo v3 `base_encoder`).
WRAPPER_KEYS = ("model", "state_dict")
ENCODER_PREFIXES = ("encoder.", "encoder_q.", "base_encoder.", "backbone.")


def torch_module():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("reading and writing PyTorch checkpoints needs torch: "
                    "pip install -e '.[torch]' (CPU wheel)") from None
  return torch


def _strip_prefixes(state_dict):
  """(the encoder's state dict, the keys left out): drops DistributedDataParallel's "module."
  and keeps the encoder of a method's wrapper (SimSiam's `encoder.*` beside `predictor.*`,
  MoCo's `encoder_q.*` beside `encoder_k.*` and `queue`), whose other keys are left out."""
  if all(k.startswith("module.") for k in state_dict):
    state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
  for prefix in ENCODER_PREFIXES:
    if any(k.startswith(prefix) for k in state_dict):
      return ({k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)},
              sorted(k for k in state_dict if not k.startswith(prefix)))
  return state_dict, []


def read(path):
  """A .pth file -> ({key: numpy array} of the encoder, unwrapped ("model"/"state_dict") and
  de-prefixed; the keys of the method's other parts, left out)."""
  torch = torch_module()
  if not os.path.isfile(path):
    raise UserError(f"--source={path} does not exist: pass a PyTorch checkpoint file (.pth)")
  try:
    content = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except  # truncated or foreign files
    reason = " ".join(str(e).split())[:200]
    raise UserError(f"--source={path} is not a readable PyTorch checkpoint ({type(e).__name__}: "
                    f"{reason}): pass a .pth file saved with torch.save") from None
  if isinstance(content, dict):
    content = next((content[k] for k in WRAPPER_KEYS if isinstance(content.get(k), dict)),
                   content)
  tensors = {k: v for k, v in content.items() if isinstance(v, torch.Tensor)} \
      if isinstance(content, dict) else {}
  if not tensors:
    raise UserError(f"--source={path} holds no state dict of tensors: pass a checkpoint with "
                    f"its weights at the top level or under one of {WRAPPER_KEYS}")
  return _strip_prefixes({k: v.detach().float().numpy() if v.is_floating_point()
                          else v.numpy() for k, v in tensors.items()})


def write(path, state_dict, wrapper_key=None):
  """Saves {key: numpy array} as torch tensors, under `wrapper_key` if given."""
  torch = torch_module()
  tensors = {k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}  # owned copies
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  torch.save({wrapper_key: tensors} if wrapper_key else tensors, path)
