"""`import_file`: a PyTorch checkpoint -> an ssljax checkpoint; `export_checkpoint`: back.

Which parts of a method's variables have a PyTorch layout (`model_parts`):
  mae      encoder (required) and decoder (optional: the official `mae_pretrain_vit_*.pth`
           files hold the encoder only; `mae_visualize_vit_large.pth` has the decoder too)
  simsiam, simclr, moco, byol, swav
           backbone: torchvision ResNet, or a timm ViT (MoCo v3)
Parts a file lacks keep their random init (reported); file keys nothing reads (a classifier
`fc`/`head`, SimSiam's projector in `fc`, the method's other parts such as SimSiam's
`predictor.*` or MoCo's `encoder_k.*` and `queue`) are reported as ignored.

Position embeddings: ssljax's are the fixed 2-D sin-cos ones of the MAE release, computed for
the grid of the config's image size. An imported `pos_embed` is checked to be that embedding
(for whatever grid the file was trained at) and is then resampled exactly by recomputing it for
the new grid; a learned one (e.g. a fine-tuned model) is refused. MoCo v3's table encodes the
row in its first half: such a ViT's residual-stream channels are rolled by D/2 on import
(`pos_embed_order`), so it computes with ssljax's table what it computed with its own (features
with their halves exchanged). Export writes ssljax's embedding for the run's grid, or for
`image_size`, with the parameters as they are.
"""
import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from ssljax import methods
from ssljax.config import validation
from ssljax.runtime import checkpoint, pretrained, storage
from ssljax.convert import layouts, pos_embed_order, state_dicts, torch_files
from ssljax.errors import UserError
from ssljax.models import posemb, vit

LAYOUT_KEYS = {"vit": layouts.vit_key, "resnet": layouts.resnet_key}


def model_parts(config):
  """[(part name, key function, required)] for `config.method` (its `torch_parts` hook)."""
  method = methods.get(config.method)
  if method.torch_parts is None:
    raise UserError(f"config.method={config.method!r} has no PyTorch layout: convert supports "
                    "the methods whose module defines torch_parts")
  return [(part, LAYOUT_KEYS[layout], required)
          for part, layout, required in method.torch_parts(config)]


def _pos_embed_key(part):
  return "decoder_pos_embed" if part == "decoder" else "pos_embed"


def fixed_pos_embed(width, grid):
  """[1, 1+g*g, D]: the official release's `pos_embed` (a zero row for the cls token)."""
  table = np.concatenate([np.zeros((1, width), np.float32), posemb.sincos_2d(width, grid)])
  return table[None]


def sincos_order(source, key, array):
  """"column_first" (ssljax's and MAE's table) or "row_first" (MoCo v3's) for a `pos_embed`
  [1, (1+)g*g, D] that is the fixed sin-cos embedding of its grid; a learned one is refused."""
  length, width = array.shape[-2:]
  has_cls = int(round((length - 1) ** 0.5)) ** 2 == length - 1
  grid = int(round((length - has_cls) ** 0.5))
  expected = fixed_pos_embed(width, grid)[0, 1 - has_cls:]
  if grid * grid == length - has_cls:
    table = np.asarray(array).reshape(expected.shape)
    for order, reference in (("column_first", expected),
                             ("row_first", pos_embed_order.halves_swapped(expected))):
      if np.allclose(table, reference, atol=1e-4):
        return order
  raise UserError(f"{source}: {key} is a learned position embedding, not the fixed 2-D sin-cos "
                  "one ssljax's ViT uses: import pre-training checkpoints (MAE "
                  "mae_pretrain_vit_*.pth, MoCo v3 vit-*.pth.tar), not fine-tuned ones")


def _part(variables, name):
  """{collection: the part's tree} for the collections that have the part."""
  return {c: tree[name] for c, tree in variables.items()
          if isinstance(tree, dict) and name in tree}


def _fresh_variables(config):
  method = methods.get(config.method)
  size = config.input.image_size
  variables = method.init(config, jax.random.key(config.seed), (1, size, size, 3))
  return jax.tree.map(np.asarray, jax.device_get(variables))


def _describe_model(config):
  """"model.variant=B/16 (width 768, depth 12, patch 16), decoder 512 x 8" and the like."""
  if config.model.variant.startswith("resnet"):
    return f"model.variant={config.model.variant}, model.resnet_width={config.model.resnet_width}"
  spec = vit.spec_from_config(config.model)
  text = (f"model.variant={config.model.variant} (width {spec['width']}, depth "
          f"{spec['depth']}, patch {spec['patch_size']})")
  return text + methods.get(config.method).describe_model(config)


def import_file(source, config, workdir):
  """Writes `workdir/checkpoints/0` with the weights of `source` in `config`'s model.

  Returns {"checkpoint", "loaded" (arrays read), "random_init" (parts), "ignored" (keys)}.
  """
  validation.validate(config)
  methods.get(config.method).validate(config)
  parts = model_parts(config)
  checkpoints_dir = storage.path(checkpoint.directory_of(workdir))
  if checkpoints_dir.exists():
    raise UserError(f"--workdir={workdir} already holds checkpoints: pass a new --workdir")
  state_dict, other_parts = torch_files.read(source)
  variables = _fresh_variables(config)
  used, random_init = set(), []
  for name, key_fn, required in parts:
    loaded = state_dicts.from_state_dict(state_dict, _part(variables, name), key_fn)
    if loaded.mismatched:
      key, got, want = loaded.mismatched[0]
      raise UserError(f"{source}: {key} has shape {got} there and {want} in the config's model "
                      f"({_describe_model(config)}): pass the config the checkpoint was "
                      "trained with")
    if loaded.missing and (required or loaded.used):
      raise UserError(f"{source} has no {loaded.missing[0]} ({len(loaded.missing)} of the "
                      f"{name}'s arrays are missing) for the config's model "
                      f"({_describe_model(config)}): pass the config the checkpoint was "
                      "trained with")
    if loaded.missing:
      random_init.append(name)
      continue
    for collection, tree in loaded.variables.items():
      variables[collection][name] = tree
    used.update(loaded.used)
    pos_key = _pos_embed_key(name)
    if key_fn is layouts.vit_key and pos_key in state_dict:
      if sincos_order(source, pos_key, state_dict[pos_key]) == "row_first":
        variables["params"][name] = pos_embed_order.row_first_to_column_first(
            variables["params"][name])
      used.add(pos_key)
  ignored = sorted(k for k in list(state_dict) + other_parts
                   if k not in used and not k.endswith("num_batches_tracked"))
  step_dir = checkpoints_dir / "0"
  _write(step_dir, config, variables)
  summary = {"checkpoint": os.fspath(step_dir), "source": os.path.abspath(source),
             "loaded": len(used), "random_init": random_init, "ignored": ignored}
  storage.write_atomic(storage.join(workdir, "imported_from.json"), json.dumps(summary, indent=1))
  return summary


def _write(step_dir, config, variables):
  """The checkpoint `ssljax.runtime.pretrained.load` reads: the state's step, params and other
  collections, and the config. There is no optimizer state: it initialises runs; it does not
  resume one."""
  state = {"step": np.zeros((), np.int32), "params": variables["params"]}
  model_state = {k: v for k, v in variables.items() if k != "params"}
  if model_state:
    state["model_state"] = model_state
  with ocp.StandardCheckpointer() as writer:
    writer.save(step_dir / "state", state)
  with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as writer:
    writer.save(step_dir / "config", {"config": config.to_json()})


def export_checkpoint(init_from, output, image_size=None):
  """Writes the pre-training checkpoint `init_from` as a PyTorch file at `output`.

  `image_size` sets the grid of the written position embeddings (default: the run's).
  Returns {"output", "keys", "step_dir"}.
  """
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  config, variables, step_dir = pretrained.load(init_from, device)
  if "method" not in config:
    raise UserError(f"init_from={init_from} is a {config.get('protocol', 'evaluation')} run: "
                    "export takes pre-training checkpoints")
  variables = jax.tree.map(np.asarray, jax.device_get(variables))
  patch_size = vit.spec_from_config(config.model)["patch_size"] \
      if not config.model.variant.startswith("resnet") else None
  grid = (image_size or config.input.image_size) // patch_size if patch_size else None
  state_dict = {}
  for name, key_fn, _ in model_parts(config):
    part = _part(variables, name)
    state_dict.update(state_dicts.to_state_dict(part, key_fn))
    if key_fn is layouts.vit_key:
      token = part["params"].get("cls_token", part["params"].get("mask_token"))
      state_dict[_pos_embed_key(name)] = fixed_pos_embed(token.shape[-1], grid)
  for key in [k for k in state_dict if k.endswith(".running_mean")]:
    state_dict[key.replace("running_mean", "num_batches_tracked")] = np.zeros((), np.int64)
  torch_files.write(output, state_dict, methods.get(config.method).torch_wrapper_key)
  return {"output": os.path.abspath(output), "keys": len(state_dict), "step_dir": step_dir}
