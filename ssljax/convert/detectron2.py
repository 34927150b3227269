"""Backbones in the pickle layout detectron2's `DetectionCheckpointer` loads (`.pkl`).

The file is `{"model": {name: numpy array}, "__author__": "ssljax", "matching_heuristics":
True}`, as MoCo's `detection/convert-pretrain-to-detectron2.py` writes it.
  ResNet  torchvision's names renamed as that script does: the stem's `conv1`/`bn1` become
          `stem.conv1` / `stem.conv1.norm`, `layer1`-`layer4` become `res2`-`res5`, `bnK`
          becomes `convK.norm`, `downsample.0`/`.1` become `shortcut` / `shortcut.norm`
          (arrays in PyTorch's layout; BatchNorm statistics included, `num_batches_tracked`
          not: detectron2's FrozenBN and SyncBN do not read it).
  ViT     ViTDet (detectron2's projects/ViTDet) loads the MAE release's `.pth` as it is, with
          `?matching_heuristics=True`, which matches its `backbone.net.*` names by suffix: the
          file holds the encoder under the release's timm names (`patch_embed.proj`,
          `pos_embed`, `blocks.N.*`; `cls_token` and `norm` are left unused by ViTDet).
"""
import os
import pickle
import re

import numpy as np

AUTHOR = "ssljax"
# torchvision name -> detectron2 name, applied in order (MoCo's conversion rules).
_RESNET_RULES = [(r"^(?!layer)", "stem."), (r"layer([1-4])", lambda m: f"res{int(m[1]) + 1}"),
                 (r"bn([1-3])", r"conv\1.norm"), (r"downsample\.0", "shortcut"),
                 (r"downsample\.1", "shortcut.norm")]


def resnet_name(key):
  """"layer1.0.downsample.1.running_mean" -> "res2.0.shortcut.norm.running_mean"."""
  for pattern, replacement in _RESNET_RULES:
    key = re.sub(pattern, replacement, key)
  return key


def resnet_state_dict(state_dict):
  """{torchvision key: array} of a ResNet backbone -> {detectron2 key: array}."""
  return {resnet_name(k): np.asarray(v) for k, v in state_dict.items()
          if not k.endswith("num_batches_tracked")}


def vit_state_dict(state_dict):
  """{timm key: array} of an encoder -> the same, as ViTDet reads MAE's release."""
  return {k: np.asarray(v) for k, v in state_dict.items()}


def write(path, model):
  """Pickles {name: array} in detectron2's checkpoint layout."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "wb") as f:
    pickle.dump({"model": model, "__author__": AUTHOR, "matching_heuristics": True}, f)
