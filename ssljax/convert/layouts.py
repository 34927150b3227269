"""Parameter names and array layouts of the PyTorch models ssljax interoperates with.

A key function maps a Flax variable (its collection and path inside one model part) to the
PyTorch state-dict key: `vit_key` for the timm ViT layout of the official MAE release
(encoder and decoder), `resnet_key` for torchvision's ResNet. `to_torch` / `from_torch` convert
the arrays: Dense kernels [in, out] <-> weights [out, in], conv kernels HWIO <-> OIHW.
"""
import re

import numpy as np

_PARAM_LEAVES = {"kernel": "weight", "scale": "weight", "bias": "bias"}
_STAT_LEAVES = {"mean": "running_mean", "var": "running_var"}


def _module_names(modules, renames):
  """Flax module names -> torch dotted components ("blocks_3" -> "blocks", "3")."""
  names = []
  for module in modules:
    if module in renames:
      names.extend(renames[module])
      continue
    numbered = re.fullmatch(r"(.+)_(\d+)", module)  # a list element ("layer1_0")
    names.extend(numbered.groups() if numbered else [module])
  return names


def vit_key(collection, path):
  """("params", ("blocks_0", "attn", "qkv", "kernel")) -> "blocks.0.attn.qkv.weight"."""
  if collection != "params":
    raise ValueError(f"the ViT layout has no {collection!r} collection")
  *modules, leaf = path
  if not modules:  # cls_token, mask_token: stored as they are
    return leaf
  return ".".join(_module_names(modules, {"patch_embed": ("patch_embed", "proj")})
                  + [_PARAM_LEAVES[leaf]])


def resnet_key(collection, path):
  """("params", ("layer1_0", "downsample_conv", "kernel")) -> "layer1.0.downsample.0.weight";
  BatchNorm statistics ("batch_stats", (..., "bn1", "mean")) -> "...bn1.running_mean"."""
  *modules, leaf = path
  leaves = _PARAM_LEAVES if collection == "params" else _STAT_LEAVES
  names = _module_names(modules, {"downsample_conv": ("downsample", "0"),
                                  "downsample_bn": ("downsample", "1")})
  return ".".join(names + [leaves[leaf]])


# Kernel axes, Flax -> PyTorch: Dense [in, out] -> [out, in], conv HWIO -> OIHW.
_TO_TORCH_AXES = {2: (1, 0), 4: (3, 2, 0, 1)}


def to_torch(path, array):
  """A Flax array -> the PyTorch layout of the same parameter."""
  array = np.asarray(array)
  if path[-1] == "kernel" and array.ndim in _TO_TORCH_AXES:
    return array.transpose(_TO_TORCH_AXES[array.ndim])
  return array


def from_torch(path, array):
  """Inverse of `to_torch`."""
  array = np.asarray(array)
  if path[-1] == "kernel" and array.ndim in _TO_TORCH_AXES:
    return array.transpose(np.argsort(_TO_TORCH_AXES[array.ndim]))
  return array
