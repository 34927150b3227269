"""Hugging Face interop (`ssljax.convert`, the `hf` extra): a tiny random transformers
`ViTMAEForPreTraining` saved with `save_pretrained`, imported, compared in float32 with the
same noise, exported and reloaded; config.json fields ssljax cannot compute are refused."""
import re

import jax
import numpy as np
import pytest

from ssljax.convert import checkpoints, hf_config, hf_layout
from ssljax.errors import UserError
from ssljax.methods import mae
from ssljax.runtime import pretrained

CPU = jax.sharding.SingleDeviceSharding(jax.devices()[0])
# ViT mu/4 on 32x32 images (an 8x8 grid), a 32-wide one-block decoder.
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
            image_size=32, patch_size=4, decoder_hidden_size=32, decoder_num_hidden_layers=1,
            decoder_num_attention_heads=2, decoder_intermediate_size=128, layer_norm_eps=1e-6,
            norm_pix_loss=True, mask_ratio=0.75)


@pytest.fixture(scope="module")
def hf_model(tmp_path_factory):
  """(the model, its save_pretrained directory): every parameter random, the position
  embeddings the release's fixed table (transformers 5 leaves a fresh model's at zero)."""
  torch = pytest.importorskip("torch", reason="the torch extra is not installed")
  transformers = pytest.importorskip("transformers", reason="the hf extra is not installed")
  torch.manual_seed(0)
  model = transformers.ViTMAEForPreTraining(transformers.ViTMAEConfig(**TINY)).eval()
  with torch.no_grad():
    for name, tensor in model.state_dict().items():
      tensor.add_(torch.randn(tensor.shape) * 0.1)
    model.vit.embeddings.position_embeddings.copy_(
        torch.from_numpy(checkpoints.fixed_pos_embed(32, 8)))
    model.decoder.decoder_pos_embed.copy_(torch.from_numpy(checkpoints.fixed_pos_embed(32, 8)))
  directory = tmp_path_factory.mktemp("hf") / "tiny"
  model.save_pretrained(directory)
  return model, str(directory)


def test_import_matches_transformers_mask_logits_and_loss_with_the_same_noise(hf_model,
                                                                               tmp_path):
  import torch  # pylint: disable=g-import-not-at-top
  model, directory = hf_model
  summary = checkpoints.import_file(directory, None, str(tmp_path / "imported"))
  assert summary["random_init"] == [] and summary["ignored"] == []
  assert "model.variant: 'B/16' -> 'mu/4'" in summary["config_changes"]
  config, variables, _ = pretrained.load(str(tmp_path / "imported"), CPU)
  with config.unlocked():
    config.model.dtype = "float32"  # the mae_vitb recipe computes in bfloat16
  x = np.random.default_rng(1).normal(size=(3, 32, 32, 3)).astype(np.float32)
  noise = np.random.default_rng(2).uniform(size=(3, 64)).astype(np.float32)
  with torch.no_grad():
    out = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), noise=torch.from_numpy(noise))
  pred, mask = jax.jit(lambda p: mae.forward(config, p, x, noise=noise))(variables["params"])
  np.testing.assert_array_equal(np.asarray(mask), out.mask.numpy())
  np.testing.assert_allclose(np.asarray(pred), out.logits.numpy(), rtol=1e-5, atol=1e-5)
  target = mae.patch_targets(x, 4, mae.targets.name(config) == "norm_pixel")
  loss = mae.masked_mse(pred, target, mask)
  np.testing.assert_allclose(float(loss), out.loss.item(), rtol=1e-5)


def test_export_loads_into_transformers_with_no_missing_keys_and_round_trips_exactly(hf_model,
                                                                                     tmp_path):
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  model, directory = hf_model
  encoder_only = tmp_path / "encoder_only"
  model.vit.save_pretrained(encoder_only)  # a ViTMAEModel: no decoder
  summary = checkpoints.import_file(str(encoder_only), None, str(tmp_path / "encoder"))
  assert summary["random_init"] == ["decoder"]
  checkpoints.import_file(directory, None, str(tmp_path / "imported"))
  out = tmp_path / "exported"
  checkpoints.export_checkpoint(str(tmp_path / "imported"), str(out), format="hf")
  reloaded, info = transformers.ViTMAEForPreTraining.from_pretrained(out,
                                                                     output_loading_info=True)
  assert all(not keys for keys in info.values()), info
  original = model.state_dict()
  for key, value in reloaded.state_dict().items():
    assert torch.equal(value, original[key]), key
  _, encoder, _ = pretrained.load(str(tmp_path / "encoder"), CPU)
  _, both, _ = pretrained.load(str(tmp_path / "imported"), CPU)
  jax.tree.map(np.testing.assert_array_equal, encoder["params"]["encoder"],
               both["params"]["encoder"])


def test_layout_fuses_q_k_v_in_order_and_reads_transformers_5_names():
  rng = np.random.default_rng(0)
  hub = {f"vit.encoder.layer.0.attention.attention.{n}.weight": rng.normal(size=(4, 4))
         for n in ("query", "key", "value")}
  hub["vit.layernorm.bias"] = rng.normal(size=4)
  timm, unknown = hf_layout.hf_to_timm(hub)
  assert unknown == [] and sorted(timm) == ["blocks.0.attn.qkv.weight", "norm.bias"]
  np.testing.assert_array_equal(timm["blocks.0.attn.qkv.weight"][4:8],
                                hub["vit.encoder.layer.0.attention.attention.key.weight"])
  assert hf_layout.timm_to_hf(timm).keys() == hub.keys()
  v5 = {"layers.0.attention.k_proj.bias": np.ones(4), "layers.0.mlp.fc1.weight": np.ones(2),
        "decoder.decoder_encoder.layer.0.attention.o_proj.bias": np.ones(2),
        "classifier.weight": np.ones(2)}
  timm, unknown = hf_layout.hf_to_timm({k: v for k, v in v5.items() if "decoder" not in k})
  assert sorted(timm) == ["blocks.0.mlp.fc1.weight"] and unknown == ["classifier.weight"]
  timm, _ = hf_layout.hf_to_timm(v5)
  assert "decoder_blocks.0.attn.proj.bias" in timm


@pytest.mark.parametrize("field,value,message", [
    ("hidden_act", "gelu_new", "hidden_act='gelu_new' cannot be imported (ssljax's MLP uses "
     "the exact (erf) GELU): only hidden_act='gelu' models convert"),
    ("qkv_bias", False, "qkv_bias=False cannot be imported"),
    ("layer_norm_eps", 1e-5, "layer_norm_eps=1e-05 cannot be imported (ssljax's LayerNorms "
     "use 1e-06, the MAE release's): only models with layer_norm_eps <= 1e-06 convert"),
    ("image_size", [32, 48], "image_size=[32, 48] is not square"),
])
def test_config_json_fields_ssljax_cannot_compute_are_refused_in_one_line(field, value,
                                                                          message):
  with pytest.raises(UserError, match=re.escape(message)):
    hf_config.to_ssljax("dir", dict(TINY, **{field: value}))


def test_config_json_maps_onto_the_ssljax_fields_and_back():
  fields, notes = hf_config.to_ssljax("dir", dict(TINY, layer_norm_eps=1e-12))
  assert notes == ["layer_norm_eps=1e-12 computed as 1e-06 (the MAE release's, with which its "
                   "weights were trained)"]
  assert fields["model.variant"] == "mu/4" and fields["mae.decoder_mlp_ratio"] == 4.0
  base = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
              intermediate_size=3072, patch_size=16, image_size=224)
  assert hf_config.to_ssljax("dir", dict(TINY, **base))[0]["model.variant"] == "B/16"
  odd, _ = hf_config.to_ssljax("dir", dict(TINY, hidden_size=48, num_attention_heads=3))
  assert (odd["model.width"], odd["model.num_heads"], odd["model.mlp_dim"]) == (48, 3, 128)
  inexact, _ = hf_config.to_ssljax("dir", dict(TINY, decoder_hidden_size=28,
                                               decoder_intermediate_size=61))  # 28 * (61/28) < 61
  assert int(28 * inexact["mae.decoder_mlp_ratio"]) == 61
  from conftest import load_config_with  # pylint: disable=g-import-not-at-top
  config = load_config_with("demo", "runlocal", mae__decoder_heads=2, mae__norm_pix_loss=True)
  written = hf_config.from_ssljax(config, 32)
  assert {k: written[k] for k in TINY} == TINY
