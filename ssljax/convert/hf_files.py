"""Reading and writing Hugging Face `save_pretrained` directories (config.json plus
model.safetensors, or pytorch_model.bin) as a dict and a state dict of numpy arrays.

Needs the `hf` extra for safetensors (`pip install -e '.[hf]'`) and `torch` for
pytorch_model.bin (read with `torch.load(weights_only=True)`); transformers itself is not
needed. Sharded checkpoints (model-0000N-of-M.safetensors) are refused.
"""
import json
import os

import numpy as np

from ssljax.errors import UserError

WEIGHTS = "model.safetensors"
TORCH_WEIGHTS = "pytorch_model.bin"


def is_hf_directory(path):
  return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))


def _safetensors_numpy():
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("Hugging Face checkpoints need safetensors: pip install -e '.[hf]'") \
        from None
  return safetensors_numpy


def read(directory):
  """A save_pretrained directory -> (config.json's dict, {key: float32/int numpy array})."""
  with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
    config = json.load(f)
  weights = os.path.join(directory, WEIGHTS)
  if os.path.isfile(weights):
    return config, dict(_safetensors_numpy().load_file(weights))
  torch_weights = os.path.join(directory, TORCH_WEIGHTS)
  if os.path.isfile(torch_weights):
    from ssljax.convert import torch_files  # pylint: disable=g-import-not-at-top
    torch = torch_files.torch_module()
    content = torch.load(torch_weights, map_location="cpu", weights_only=True)
    return config, {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
                    for k, v in content.items()}
  raise UserError(f"--source={directory} has config.json but no {WEIGHTS} or {TORCH_WEIGHTS}: "
                  "pass a directory written by save_pretrained (one shard)")


def write(directory, config, state_dict):
  """Writes config.json and model.safetensors (the layout `from_pretrained` reads)."""
  os.makedirs(directory, exist_ok=True)
  with open(os.path.join(directory, "config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  tensors = {k: np.ascontiguousarray(v) for k, v in state_dict.items()}
  _safetensors_numpy().save_file(tensors, os.path.join(directory, WEIGHTS),
                                 metadata={"format": "pt"})
