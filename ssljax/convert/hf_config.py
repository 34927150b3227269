"""A Hugging Face `ViTMAEConfig` (config.json) <-> the fields of an ssljax MAE config.

`to_ssljax` sets the model, decoder, mask and image fields of an ssljax config from the HF
one and refuses, in one line, what ssljax's ViT cannot compute; `from_ssljax` writes the
config.json of an ssljax MAE run.

LayerNorm eps: ssljax's ViT uses the MAE release's 1e-6. The hub's MAE models were converted
from the release's weights (trained with 1e-6) and can carry transformers' default 1e-12; any eps
up to 1e-6 is accepted and computed as 1e-6 (a change of the normalised values below 1e-6
relative for tokens whose variance is ~1) and reported; a larger one is refused.
"""
import numpy as np

from ssljax.errors import UserError
from ssljax.methods import mae_targets
from ssljax.models import vit

EPS = 1e-6  # models.vit's LayerNorm epsilon
# HF fields with the only value ssljax's ViT computes, and why.
_FIXED = {"hidden_act": ("gelu", "ssljax's MLP uses the exact (erf) GELU"),
          "qkv_bias": (True, "ssljax's qkv projection has a bias"),
          "num_channels": (3, "ssljax's images are RGB"),
          "hidden_dropout_prob": (0.0, "ssljax's ViT has no dropout"),
          "attention_probs_dropout_prob": (0.0, "ssljax's ViT has no attention dropout")}
_HF_DEFAULTS = {"hidden_act": "gelu", "qkv_bias": True, "num_channels": 3,
                "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
                "layer_norm_eps": 1e-12, "mask_ratio": 0.75, "norm_pix_loss": False}


def _square(source, hf, name):
  value = hf[name]
  if isinstance(value, (list, tuple)):
    if len(set(value)) != 1:
      raise UserError(f"{source}: {name}={list(value)} is not square: ssljax's ViT takes "
                      f"square images and patches; re-save the model with one {name}")
    value = value[0]
  return int(value)


def _variant(width, depth, heads, mlp_dim, patch):
  """("B/16", {}) where the sizes are a table entry, else ("B/PATCH", the overriding fields)."""
  for name, sizes in vit.SIZES.items():
    if sizes == (width, depth, heads, mlp_dim):
      return f"{name}/{patch}", {}
  return f"B/{patch}", {"model.width": width, "model.depth": depth, "model.num_heads": heads,
                        "model.mlp_dim": mlp_dim}


def _ratio(mlp_dim, width):
  """The float r with int(width * r) == mlp_dim (the decoder's MLP is int(width * ratio))."""
  ratio = mlp_dim / width
  return ratio if int(width * ratio) == mlp_dim else float(np.nextafter(ratio, np.inf))


def to_ssljax(source, hf):
  """config.json's dict -> ({ssljax config field: value}, [notes for the import report]).

  Raises UserError naming the HF field and the fix for what ssljax cannot represent.
  """
  hf = {**_HF_DEFAULTS, **hf}
  if hf.get("model_type", "vit_mae") != "vit_mae":
    raise UserError(f"{source}: model_type={hf['model_type']!r} is not a ViTMAE model: pass "
                    "the save_pretrained directory of a ViTMAEForPreTraining or ViTMAEModel")
  for name, (value, why) in _FIXED.items():
    if hf[name] != value:
      raise UserError(f"{source}: {name}={hf[name]!r} cannot be imported ({why}): only "
                      f"{name}={value!r} models convert")
  notes = []
  if hf["layer_norm_eps"] > EPS:
    raise UserError(f"{source}: layer_norm_eps={hf['layer_norm_eps']} cannot be imported "
                    f"(ssljax's LayerNorms use {EPS}, the MAE release's): only models with "
                    f"layer_norm_eps <= {EPS} convert")
  if hf["layer_norm_eps"] != EPS:
    notes.append(f"layer_norm_eps={hf['layer_norm_eps']} computed as {EPS} (the MAE "
                 "release's, with which its weights were trained)")
  patch = _square(source, hf, "patch_size")
  width, dec_width = hf["hidden_size"], hf["decoder_hidden_size"]
  variant, sizes = _variant(width, hf["num_hidden_layers"], hf["num_attention_heads"],
                            hf["intermediate_size"], patch)
  fields = {"model.variant": variant, **sizes,
            "input.image_size": _square(source, hf, "image_size"),
            "mae.decoder_width": dec_width, "mae.decoder_depth": hf["decoder_num_hidden_layers"],
            "mae.decoder_heads": hf["decoder_num_attention_heads"],
            "mae.decoder_mlp_ratio": _ratio(hf["decoder_intermediate_size"], dec_width),
            "mae.mask_ratio": float(hf["mask_ratio"]),
            "mae.target": "norm_pixel" if hf["norm_pix_loss"] else "pixel",
            "mae.encoder_mask_tokens": False}
  return fields, notes


def _norm_pix_loss(config):
  """HF's norm_pix_loss of an ssljax MAE config; HF's ViTMAE predicts pixels only."""
  target = mae_targets.name(config)
  if target not in ("pixel", "norm_pixel"):
    raise UserError(f"mae.target={target!r} has no Hugging Face layout (ViTMAE's decoder "
                    "predicts pixels): export a run with mae.target='pixel' or 'norm_pixel'")
  return target == "norm_pixel"


def from_ssljax(config, image_size):
  """The config.json dict of a `ViTMAEForPreTraining` for an ssljax MAE config."""
  spec = vit.spec_from_config(config.model)
  mae = config.mae
  return {
      "architectures": ["ViTMAEForPreTraining"], "model_type": "vit_mae",
      "hidden_size": spec["width"], "num_hidden_layers": spec["depth"],
      "num_attention_heads": spec["num_heads"], "intermediate_size": spec["mlp_dim"],
      "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
      "initializer_range": 0.02, "layer_norm_eps": EPS, "image_size": image_size,
      "patch_size": spec["patch_size"], "num_channels": 3, "qkv_bias": True,
      "decoder_num_attention_heads": mae.decoder_heads, "decoder_hidden_size": mae.decoder_width,
      "decoder_num_hidden_layers": mae.decoder_depth,
      "decoder_intermediate_size": int(mae.decoder_width * mae.decoder_mlp_ratio),
      "mask_ratio": mae.mask_ratio, "norm_pix_loss": _norm_pix_loss(config),
      "dtype": "float32",
  }
