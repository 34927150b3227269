"""detectron2 backbones (`export --format=detectron2`): the pickle's key names, shapes and
values against detectron2's ResNet naming written out here (detectron2 is not on the package
index), and a ViT encoder in the MAE release's names that ViTDet loads."""
import pickle
import re

import jax
import numpy as np

from conftest import load_config_with
from ssljax import methods
from ssljax.convert import checkpoints, layouts, state_dicts

BLOCKS_R50 = {"res2": 3, "res3": 4, "res4": 6, "res5": 3}
BN = ("weight", "bias", "running_mean", "running_var")


def _expected_r50(width):
  """{detectron2 key: shape} of a ResNet-50 backbone (stem and res2-res5, bottlenecks with
  the stride in the 3x3 conv, a projection shortcut in each stage's first block)."""
  shapes = {"stem.conv1.weight": (width, 3, 7, 7)}
  shapes.update({f"stem.conv1.norm.{leaf}": (width,) for leaf in BN})
  channels = width
  for stage, (name, blocks) in enumerate(BLOCKS_R50.items()):
    planes = width * 2 ** stage
    for i in range(blocks):
      convs = {"conv1": (planes, channels, 1, 1), "conv2": (planes, planes, 3, 3),
               "conv3": (4 * planes, planes, 1, 1)}
      if i == 0:
        convs["shortcut"] = (4 * planes, channels, 1, 1)
      for conv, shape in convs.items():
        shapes[f"{name}.{i}.{conv}.weight"] = shape
        shapes.update({f"{name}.{i}.{conv}.norm.{leaf}": (shape[0],) for leaf in BN})
      channels = 4 * planes
  return shapes


def _torchvision_name(key):
  """detectron2's name -> torchvision's, read the other way round from MoCo's conversion."""
  key = re.sub(r"^stem\.", "", key)
  key = re.sub(r"res([2-5])", lambda m: f"layer{int(m[1]) - 1}", key)
  key = re.sub(r"conv([1-3])\.norm", r"bn\1", key)
  return key.replace("shortcut.norm", "downsample.1").replace("shortcut", "downsample.0")


def _checkpoint(tmp_path, config):
  """A pre-training checkpoint of `config` with random numpy values (no init compilation)."""
  size = config.input.image_size
  shapes = jax.eval_shape(lambda key: methods.get(config.method).init(
      config, key, (1, size, size, 3)), jax.random.key(0))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)
  # pylint: disable-next=protected-access  # the importer's writer, without a file to import
  checkpoints._write(tmp_path / "run" / "checkpoints" / "0", config, variables)
  return str(tmp_path / "run"), variables


def _export(tmp_path, workdir, **kwargs):
  out = tmp_path / "backbone.pkl"
  checkpoints.export_checkpoint(workdir, str(out), format="detectron2", **kwargs)
  with open(out, "rb") as f:
    return pickle.load(f, encoding="latin1")  # as detectron2's DetectionCheckpointer reads it


def test_resnet50_has_every_detectron2_key_with_its_shape_and_the_ssljax_values(tmp_path):
  config = load_config_with("simsiam_cifar10", "runlocal", model__variant="resnet50",
                            model__resnet_width=8, model__cifar_stem=False,
                            input__image_size=64)
  workdir, variables = _checkpoint(tmp_path, config)
  content = _export(tmp_path, workdir)
  assert content["__author__"] == "ssljax" and content["matching_heuristics"] is True
  expected = _expected_r50(8)
  model = content["model"]
  assert {k: v.shape for k, v in model.items()} == expected and len(expected) == 265
  assert all(isinstance(v, np.ndarray) for v in model.values())
  backbone = {c: variables[c]["backbone"] for c in ("params", "batch_stats")}
  torchvision = state_dicts.to_state_dict(backbone, layouts.resnet_key)  # OIHW, running_*
  for key, value in model.items():
    np.testing.assert_array_equal(value, torchvision[_torchvision_name(key)], err_msg=key)
  np.testing.assert_array_equal(model["res3.0.shortcut.weight"],  # the layout change: HWIO
                                np.transpose(variables["params"]["backbone"]["layer2_0"][
                                    "downsample_conv"]["kernel"], (3, 2, 0, 1)))


def test_vit_encoder_is_written_in_the_mae_release_names_vitdet_loads(tmp_path):
  config = load_config_with("demo", "runlocal", mae__decoder_heads=2)
  workdir, variables = _checkpoint(tmp_path, config)
  model = _export(tmp_path, workdir, image_size=64)["model"]
  blocks = [f"blocks.{i}.{m}.{leaf}" for i in range(2) for m in
            ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
            for leaf in ("weight", "bias")]
  assert sorted(model) == sorted(["cls_token", "pos_embed", "patch_embed.proj.weight",
                                  "patch_embed.proj.bias", "norm.weight", "norm.bias"] + blocks)
  # ViTDet's pos_embed is [1, 1 + (pretrain_img_size / patch)^2, D]: the export's image size
  assert model["pos_embed"].shape == (1, 1 + 16 * 16, 32)
  encoder = {"params": variables["params"]["encoder"]}
  loaded = state_dicts.from_state_dict(model, encoder, layouts.vit_key)
  assert not loaded.missing and not loaded.mismatched
  jax.tree.map(np.testing.assert_array_equal, loaded.variables, encoder)
