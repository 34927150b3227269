"""Hugging Face `ViTMAEForPreTraining` / `ViTMAEModel` parameter names <-> the MAE release's
timm names (`layouts.vit_key`), as flat state dicts of numpy arrays in PyTorch layout.

HF keeps q, k and v as three Linear layers [D, D]; timm fuses them into `attn.qkv` [3D, D]
whose output rows are (q, k, v) x heads x head_dim, and HF's rows are heads x head_dim too, so
the fused weight is the three stacked in that order. Every other array is the same tensor
under another name. Names are written in the layout of the hub's files (transformers 4),
which transformers 5 still loads; on import the names transformers 5 writes and uses are
read as well (`decoder.decoder_encoder.layer.N`, `layers.N`, `q_proj`, `o_proj`, `mlp.fc1`).
"""
import re

import numpy as np

_QKV = ("query", "key", "value")
# timm name inside a block -> HF name inside a layer (the hub's layout).
_BLOCK = {"norm1": "layernorm_before", "attn.proj": "attention.output.dense",
          "norm2": "layernorm_after", "mlp.fc1": "intermediate.dense",
          "mlp.fc2": "output.dense"}
# timm top-level name -> HF name.
_TOP = {"cls_token": "vit.embeddings.cls_token",
        "pos_embed": "vit.embeddings.position_embeddings",
        "patch_embed.proj": "vit.embeddings.patch_embeddings.projection",
        "norm": "vit.layernorm",
        "decoder_embed": "decoder.decoder_embed", "mask_token": "decoder.mask_token",
        "decoder_pos_embed": "decoder.decoder_pos_embed", "decoder_norm": "decoder.decoder_norm",
        "decoder_pred": "decoder.decoder_pred"}
_STACKS = {"blocks": "vit.encoder.layer", "decoder_blocks": "decoder.decoder_layers"}
# transformers 5's names (what it writes and what its modules are called) -> the hub's.
_HUB_NAMES = [(r"^vit\.layers\.", "vit.encoder.layer."),
              (r"^decoder\.decoder_encoder\.layer\.", "decoder.decoder_layers."),
              (r"\.attention\.([qkv])_proj\.",
               lambda m: f".attention.attention.{_QKV['qkv'.index(m.group(1))]}."),
              (r"\.attention\.o_proj\.", ".attention.output.dense."),
              (r"\.mlp\.fc1\.", ".intermediate.dense."), (r"\.mlp\.fc2\.", ".output.dense.")]


def _hub_name(key, base_model):
  """A key of any HF MAE file -> the hub's name; `base_model`: a ViTMAEModel's file (no
  "vit." prefix)."""
  if base_model:
    key = "vit." + key
  for pattern, replacement in _HUB_NAMES:
    key = re.sub(pattern, replacement, key)
  return key


def _timm_to_hf_name(key):
  """"blocks.3.mlp.fc1.weight" -> "vit.encoder.layer.3.intermediate.dense.weight"; the fused
  "blocks.3.attn.qkv.weight" -> "vit.encoder.layer.3.attention.attention.{}.weight" (to
  format with query, key, value)."""
  stack = re.fullmatch(r"(blocks|decoder_blocks)\.(\d+)\.(.+)\.(weight|bias)", key)
  if stack:
    name, index, module, leaf = stack.groups()
    inner = "attention.attention.{}" if module == "attn.qkv" else _BLOCK[module]
    return f"{_STACKS[name]}.{index}.{inner}.{leaf}"
  module, _, leaf = key.rpartition(".")
  return f"{_TOP[module]}.{leaf}" if module else _TOP[key]


def timm_to_hf(state_dict):
  """{timm key: array} (an MAE encoder and decoder) -> {HF key: array}, qkv split in three."""
  out = {}
  for key, value in state_dict.items():
    name = _timm_to_hf_name(key)
    if ".attn.qkv." in key:
      out.update(zip(map(name.format, _QKV), np.split(np.asarray(value), 3, axis=0)))
    else:
      out[name] = np.asarray(value)
  return out


_FROM_BLOCK = {v: k for k, v in _BLOCK.items()}
_FROM_TOP = {v: k for k, v in _TOP.items()}
_FROM_STACKS = {v: k for k, v in _STACKS.items()}


def _hf_to_timm_name(key):
  """A hub name -> (timm name, None), (the fused qkv's timm name, "query"|"key"|"value") or
  (None, None) where timm has no such array."""
  layer = re.fullmatch(r"(vit\.encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)",
                       key)
  if layer:
    stack, index, module, leaf = layer.groups()
    block = f"{_FROM_STACKS[stack]}.{index}"
    attention = re.fullmatch(r"attention\.attention\.(query|key|value)", module)
    if attention:
      return f"{block}.attn.qkv.{leaf}", attention.group(1)
    return (f"{block}.{_FROM_BLOCK[module]}.{leaf}" if module in _FROM_BLOCK else None), None
  if key in _FROM_TOP:
    return _FROM_TOP[key], None
  module, _, leaf = key.rpartition(".")
  return (f"{_FROM_TOP[module]}.{leaf}" if module in _FROM_TOP else None), None


def hf_to_timm(state_dict):
  """{HF key: array} of a ViTMAEForPreTraining or ViTMAEModel file -> ({timm key: array},
  [HF keys with no timm name, e.g. a classifier]). A fused qkv needs all three of q, k, v:
  an incomplete one is left out, so the import reports its block as missing."""
  base_model = not any(k.startswith(("vit.", "decoder.")) for k in state_dict)
  out, unknown, qkv = {}, [], {}
  for original, value in state_dict.items():
    name, part = _hf_to_timm_name(_hub_name(original, base_model))
    if name is None:
      unknown.append(original)
    elif part:
      qkv.setdefault(name, {})[part] = np.asarray(value)
    else:
      out[name] = np.asarray(value)
  for name, parts in qkv.items():
    if len(parts) == 3:
      out[name] = np.concatenate([parts[p] for p in _QKV], axis=0)
  return out, sorted(unknown)
