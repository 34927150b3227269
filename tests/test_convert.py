"""PyTorch interop (`ssljax.convert`): PyTorch reference models written here with the official
key names (benchmarks/torch_mae.py, benchmarks/torch_resnet.py), random weights saved as
state dicts, imported into ssljax and compared in float32; export and re-import round-trip."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import REPO, load_config_with

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import torch_mae  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch_resnet  # pylint: disable=g-import-not-at-top,wrong-import-position

from ssljax.runtime import pretrained  # pylint: disable=g-import-not-at-top,wrong-import-position
from ssljax.convert import checkpoints, pos_embed_order  # pylint: disable=wrong-import-position
from ssljax.errors import UserError  # pylint: disable=wrong-import-position
from ssljax.methods import mae, simsiam  # pylint: disable=wrong-import-position
from ssljax.models import vit  # pylint: disable=wrong-import-position

TOL = dict(rtol=1e-5, atol=1e-5)  # float32 on both sides
CPU = jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _randomize(module, seed=0):
  """Non-trivial values for every parameter and BatchNorm statistic (init has ones/zeros)."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, tensor in module.state_dict().items():
      if "pos_embed" in name or "num_batches_tracked" in name:
        continue
      noise = torch.randn(tensor.shape, generator=generator) * 0.1
      if name.endswith("running_var"):
        tensor.copy_(1 + noise.abs())
      elif "norm" in name or ".bn" in name or name.startswith("bn") or "downsample.1" in name:
        tensor.add_(noise)
      else:
        tensor.copy_(tensor + noise * tensor.std().clamp(min=0.02))
  return module.eval()


def _mae_config(**fields):
  """demo:runlocal (ViT mu/4 on 32x32, one 32-wide decoder block) with `fields` set."""
  return load_config_with("demo", "runlocal", mae__decoder_heads=2, **fields)


def _torch_mae(config, img_size=None, seed=0):
  spec = vit.spec_from_config(config.model)
  return _randomize(torch_mae.MaskedAutoencoderViT(
      img_size=img_size or config.input.image_size, patch_size=spec["patch_size"],
      embed_dim=spec["width"], depth=spec["depth"], num_heads=spec["num_heads"],
      decoder_embed_dim=config.mae.decoder_width, decoder_depth=config.mae.decoder_depth,
      decoder_num_heads=config.mae.decoder_heads,
      norm_pix_loss=mae.targets.name(config) == "norm_pixel"), seed)


def _save(tmp_path, state_dict, name="weights.pth", wrapper=None):
  path = str(tmp_path / name)
  torch.save({wrapper: state_dict} if wrapper else state_dict, path)
  return path


def _images(shape, seed=1):
  """Normalised float images [B, H, W, C] and the same as a torch [B, C, H, W] tensor."""
  x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
  return x, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


def _import(tmp_path, path, config, name="imported"):
  summary = checkpoints.import_file(path, config, str(tmp_path / name))
  loaded_config, variables, _ = pretrained.load(str(tmp_path / name), CPU)
  return summary, loaded_config, variables


def test_mae_import_matches_pytorch_encoder_and_reconstruction_with_the_same_mask(tmp_path):
  config = _mae_config()
  model = _torch_mae(config)
  path = _save(tmp_path, model.state_dict(), wrapper="model")
  summary, config, variables = _import(tmp_path, path, config)
  assert summary["random_init"] == [] and summary["ignored"] == []
  x, xt = _images((3, 32, 32, 3))
  with torch.no_grad():  # the whole encoder: no masking, identity order
    tokens_t, _, _ = model.forward_encoder(xt, 0.0, torch.arange(64.).expand(3, 64))
  encoder, _ = mae.build_models(config)
  tokens, _ = encoder.apply({"params": variables["params"]["encoder"]}, x)
  np.testing.assert_allclose(np.asarray(tokens), tokens_t.numpy(), **TOL)
  noise = np.random.default_rng(2).uniform(size=(3, 64)).astype(np.float32)
  with torch.no_grad():
    loss_t, pred_t, mask_t = model(xt, 0.75, torch.from_numpy(noise))
  pred, mask = mae.forward(config, variables["params"], x, noise=noise)
  np.testing.assert_array_equal(np.asarray(mask), mask_t.numpy())
  np.testing.assert_allclose(np.asarray(pred), pred_t.numpy(), **TOL)
  target = mae.patch_targets(x, 4, mae.targets.name(config) == "norm_pixel")
  np.testing.assert_allclose(float(mae.masked_mse(pred, target, mask)), loss_t.item(), rtol=1e-5)


def test_export_loads_strictly_into_pytorch_and_round_trips_exactly(tmp_path):
  config = _mae_config()
  model = _torch_mae(config)
  original = {k: v.clone() for k, v in model.state_dict().items()}
  _, config, variables = _import(tmp_path, _save(tmp_path, original), config)
  out = tmp_path / "exported.pth"
  subprocess.run([sys.executable, "-m", "ssljax.convert", "export",
                  f"--init_from={tmp_path / 'imported'}", f"--output={out}"], check=True,
                 capture_output=True, text=True, timeout=300)
  exported = torch.load(out, weights_only=True)["model"]  # the official file's wrapper key
  fresh = torch_mae.MaskedAutoencoderViT(img_size=32, patch_size=4, embed_dim=32, depth=2,
                                         num_heads=2, decoder_embed_dim=32, decoder_depth=1,
                                         decoder_num_heads=2)
  fresh.load_state_dict(exported, strict=True)
  for key, value in original.items():
    assert torch.equal(exported[key], value) or "pos_embed" in key, key
    if "pos_embed" in key:
      torch.testing.assert_close(exported[key], value, rtol=0, atol=1e-6)
  _, _, again = _import(tmp_path, str(out), config, name="reimported")
  jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_sincos_position_embeddings_are_resampled_for_another_image_size(tmp_path):
  config = _mae_config()
  at_64 = _torch_mae(config, img_size=64)  # trained at 64x64: a 16x16 grid
  path = _save(tmp_path, at_64.state_dict())
  _, config, variables = _import(tmp_path, path, config)  # used at 32x32: an 8x8 grid
  at_32 = _torch_mae(config, img_size=32)
  state = {k: v for k, v in at_64.state_dict().items() if "pos_embed" not in k}
  at_32.load_state_dict(state, strict=False)
  x, xt = _images((2, 32, 32, 3))
  with torch.no_grad():
    tokens_t, _, _ = at_32.forward_encoder(xt, 0.0, torch.arange(64.).expand(2, 64))
  encoder, _ = mae.build_models(config)
  tokens, _ = encoder.apply({"params": variables["params"]["encoder"]}, x)
  np.testing.assert_allclose(np.asarray(tokens), tokens_t.numpy(), **TOL)


def test_encoder_only_release_gets_a_random_decoder_and_learned_pos_embed_is_refused(tmp_path):
  config = _mae_config()
  state = _torch_mae(config).state_dict()
  encoder_only = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}
  encoder_only["head.weight"] = torch.zeros(10, 32)  # a classifier nothing reads
  summary, _, _ = _import(tmp_path, _save(tmp_path, encoder_only), config)
  assert summary["random_init"] == ["decoder"] and summary["ignored"] == ["head.weight"]
  learned = dict(encoder_only, pos_embed=encoder_only["pos_embed"] + 0.01)
  with pytest.raises(UserError, match="learned position embedding"):
    checkpoints.import_file(_save(tmp_path, learned, "learned.pth"), config,
                            str(tmp_path / "learned"))


def _moco_v3_pos_embed(width, grid):
  """[1, 1+g*g, D]: MoCo v3's vits.py table re-derived: meshgrid(w, h) with 'ij' indexing,
  [sin(w), cos(w), sin(h), cos(h)] (so the row first), omega = 1/10000^(k/(D/4)), a zero cls
  row."""
  grid_w, grid_h = np.meshgrid(np.arange(grid, dtype=np.float32),
                               np.arange(grid, dtype=np.float32), indexing="ij")
  omega = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float32) / (width // 4))
  out_w, out_h = grid_w.reshape(-1, 1) * omega, grid_h.reshape(-1, 1) * omega
  table = np.concatenate([np.sin(out_w), np.cos(out_w), np.sin(out_h), np.cos(out_h)], axis=1)
  return np.concatenate([np.zeros((1, width), np.float32), table])[None]


def test_a_moco_v3_vit_computes_with_ssljaxs_table_what_it_computed_with_its_own():
  """A ViT whose table is MoCo v3's (the release's network: the table as a parameter), rolled
  by D/2 on its residual axes, gives with ssljax's table the same tokens, halves exchanged."""
  width, grid, patch = 8, 3, 4
  release_table = _moco_v3_pos_embed(width, grid)
  order = lambda table: checkpoints.sincos_order("file", "pos_embed", table)
  assert order(release_table) == "row_first"
  assert order(checkpoints.fixed_pos_embed(width, grid)) == "column_first"
  spec = dict(width=width, depth=2, num_heads=2, mlp_dim=16, patch_size=patch)
  images, _ = _images((2, grid * patch, grid * patch, 3))
  release = vit.ViT(**spec, learned_pos_embed=True)
  shapes = jax.eval_shape(release.init, jax.random.key(0), images)["params"]
  rng = np.random.default_rng(0)  # every parameter random: no init symmetry hides an axis
  params = jax.tree.map(lambda leaf: rng.normal(size=leaf.shape).astype(np.float32) * 0.3,
                        shapes)
  params = dict(params, pos_embed=release_table)
  expected, _ = jax.jit(release.apply)({"params": params}, images)
  converted = pos_embed_order.row_first_to_column_first(
      {k: v for k, v in params.items() if k != "pos_embed"})
  got, _ = jax.jit(vit.ViT(**spec).apply)({"params": converted}, images)
  np.testing.assert_allclose(got, pos_embed_order.halves_swapped(np.asarray(expected)), **TOL)


def test_import_rolls_the_residual_axes_of_a_vit_with_moco_v3s_table(tmp_path):
  config = _mae_config()
  state = {k: v for k, v in _torch_mae(config).state_dict().items()
           if not k.startswith(("decoder", "mask_token"))}
  width, length = state["pos_embed"].shape[-1], state["pos_embed"].shape[1]
  state["pos_embed"] = torch.from_numpy(_moco_v3_pos_embed(width, round((length - 1) ** 0.5)))
  _, _, variables = _import(tmp_path, _save(tmp_path, state), config)
  encoder, roll = variables["params"]["encoder"], pos_embed_order.halves_swapped
  np.testing.assert_array_equal(encoder["patch_embed"]["bias"],
                                roll(state["patch_embed.proj.bias"].numpy()))
  np.testing.assert_array_equal(encoder["blocks_0"]["attn"]["qkv"]["kernel"],  # [D, 3D]: rows
                                roll(state["blocks.0.attn.qkv.weight"].numpy()).T)
  np.testing.assert_array_equal(encoder["blocks_0"]["mlp"]["fc2"]["kernel"],  # [4D, D]: columns
                                roll(state["blocks.0.mlp.fc2.weight"].numpy().T))


def test_import_errors_name_the_problem_and_never_overwrite(tmp_path):
  config = _mae_config()
  path = _save(tmp_path, _torch_mae(config).state_dict())
  wider = load_config_with("demo", "runlocal", mae__decoder_heads=2, model__width=64)
  with pytest.raises(UserError, match=r"has shape \(32,\) there and \(64,\) in the config's "
                     r"model \(model.variant=mu/4 \(width 64, depth 2, patch 4\), decoder 32 x 1\): "
                     r"pass the config the checkpoint was trained with"):
    checkpoints.import_file(path, wider, str(tmp_path / "wider"))
  checkpoints.import_file(path, config, str(tmp_path / "once"))
  with pytest.raises(UserError, match="already holds checkpoints"):
    checkpoints.import_file(path, config, str(tmp_path / "once"))
  (tmp_path / "truncated.pth").write_bytes(open(path, "rb").read()[:300])
  with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
    checkpoints.import_file(str(tmp_path / "truncated.pth"), config, str(tmp_path / "bad"))


def _simsiam_config(variant, cifar_stem):
  return load_config_with("simsiam_cifar10", "runlocal", model__variant=variant,
                          model__resnet_width=8, model__cifar_stem=cifar_stem)


@pytest.mark.parametrize("variant,cifar_stem,size,layout", [
    # SimSiam's CIFAR variant, its file layout (slow: the bottleneck ResNet-50 covers the mapping)
    pytest.param("resnet18", True, 32, "simsiam", marks=pytest.mark.slow),
    ("resnet50", False, 64, "moco"),  # ImageNet stem and bottlenecks, MoCo v2's layout
])
def test_resnet_import_matches_pytorch_and_export_loads_back(tmp_path, variant, cifar_stem,
                                                             size, layout):
  model = _randomize(torch_resnet.ResNet(variant, width=8, cifar_stem=cifar_stem))
  weights = model.state_dict()
  if layout == "simsiam":  # the encoder with its projector in fc, beside the predictor
    state = {f"module.encoder.{k}": v for k, v in weights.items()}
    state["module.predictor.0.weight"] = torch.zeros(4, 4)
  else:  # query and key encoders and the queue
    state = {f"module.encoder_{q}.{k}": v for k, v in weights.items() for q in "qk"}
    state["module.queue"] = torch.zeros(4, 8)
  config = load_config_with("simsiam_cifar10", "runlocal", model__variant=variant,
                            model__resnet_width=8, model__cifar_stem=cifar_stem,
                            input__image_size=size)
  summary, config, variables = _import(tmp_path, _save(tmp_path, state, wrapper="state_dict"),
                                       config)
  # the encoder's unused projector (fc), and the method's other parts by their own names
  if layout == "simsiam":
    assert summary["ignored"] == ["fc.bias", "fc.weight", "predictor.0.weight"]
  else:
    assert summary["ignored"] == sorted(["fc.bias", "fc.weight", "queue"] + [
        f"encoder_k.{k}" for k in weights if not k.endswith("num_batches_tracked")])
  x, xt = _images((2, size, size, 3))
  with torch.no_grad():
    expected = model(xt).numpy()
  features, _ = simsiam.forward(config, variables["params"], variables["batch_stats"], x,
                                train=False)
  np.testing.assert_allclose(np.asarray(features["backbone"]), expected, **TOL)
  out = str(tmp_path / "exported.pth")
  checkpoints.export_checkpoint(str(tmp_path / "imported"), out)
  fresh = torch_resnet.ResNet(variant, width=8, cifar_stem=cifar_stem)
  missing, unexpected = fresh.load_state_dict(torch.load(out, weights_only=True), strict=False)
  assert sorted(missing) == ["fc.bias", "fc.weight"] and not unexpected
  with torch.no_grad():
    np.testing.assert_array_equal(fresh.eval()(xt).numpy(), expected)


def test_cli_reports_what_it_imported_and_bad_input_in_one_line(tmp_path):
  config_path = os.path.join(REPO, "configs", "demo.py")
  path = _save(tmp_path, _torch_mae(_mae_config()).state_dict(), wrapper="model")
  command = [sys.executable, "-m", "ssljax.convert", "import", f"--config={config_path}:runlocal",
             "--config.mae.decoder_heads=2", f"--source={path}", f"--workdir={tmp_path / 'w'}"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert f"use it with --config.init_from={tmp_path / 'w'}" in result.stdout
  bad = [c.replace(path, str(tmp_path / "missing.pth")) for c in command]
  bad[-1] = f"--workdir={tmp_path / 'w2'}"
  result = subprocess.run(bad, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines() == [
      f"ssljax.convert: error: --source={tmp_path / 'missing.pth'} does not exist: pass a "
      "PyTorch checkpoint file (.pth)"]


def test_an_exported_then_imported_run_evaluates_exactly_like_the_original(pretrained_workdir,
                                                                           tmp_path):
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  exported = str(tmp_path / "demo.pth")
  checkpoints.export_checkpoint(pretrained_workdir, exported)
  saved_config, _, _ = pretrained.load(pretrained_workdir, CPU)
  checkpoints.import_file(exported, saved_config, str(tmp_path / "imported"))
  values = []
  for name, init_from in (("original", pretrained_workdir), ("round_trip", tmp_path / "imported")):
    config = load_config_with("probe_demo", "runlocal,protocol=knn", init_from=str(init_from))
    values.append(run_types.run(config, str(tmp_path / name))["evals"])
  assert values[0] == values[1] and min(values[0].values()) > 0.3
