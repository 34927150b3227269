"""`import_file`: a PyTorch checkpoint or a Hugging Face MAE directory -> an ssljax checkpoint;
`export_checkpoint`: back, as a PyTorch file, a Hugging Face directory or a detectron2 backbone.

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

Hugging Face (`hf_layout`, `hf_config`, `hf_files`): a `save_pretrained` directory of a
`ViTMAEForPreTraining` / `ViTMAEModel` is renamed to the release's timm layout and imported as
above; its config.json sets the model, decoder, mask and image fields of the ssljax config
(`--config`, default configs/mae_vitb.py). HF's stored `position_embeddings` are the release's
column-first table (transformers 5 builds [sin_h, cos_h, sin_w, cos_w] and swaps the halves to
keep it), checked like a `.pth`'s. detectron2 (`detectron2`): the backbone (ResNet or ViT
encoder) as the `.pkl` its checkpointer loads.
"""
import json
import os

import jax
import numpy as np
import orbax.checkpoint as ocp

from ssljax import methods
from ssljax.config import loading, validation
from ssljax.runtime import checkpoint, pretrained, storage
from ssljax.convert import (detectron2, hf_config, hf_files, hf_layout, layouts, pos_embed_order,
                            state_dicts, torch_files)
from ssljax.errors import UserError
from ssljax.models import posemb, vit

LAYOUT_KEYS = {"vit": layouts.vit_key, "resnet": layouts.resnet_key}
FORMATS = ("pth", "hf", "detectron2")
HF_BASE_CONFIG = "mae_vitb"  # the recipe an HF model's config.json is applied to by default


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


def _fresh_variables(config, shapes_only=False):
  """The method's initial variables as numpy arrays; `shapes_only`: zeros of their shapes (no
  compilation), for a file that fills every one of them."""
  method = methods.get(config.method)
  size = config.input.image_size
  init = lambda key: method.init(config, key, (1, size, size, 3))
  if shapes_only:
    shapes = jax.eval_shape(init, jax.random.key(config.seed))
    return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  # One compiled init: run op by op, even a tiny model's init compiles for seconds on CPU.
  return jax.tree.map(np.asarray, jax.device_get(jax.jit(init)(jax.random.key(config.seed))))


def _fill_the_rest(config, variables, loaded_parts):
  """Sets every variable outside `loaded_parts` to its initial value (in place)."""
  fresh = None
  for collection, tree in variables.items():
    for name in list(tree) if isinstance(tree, dict) else [None]:
      if name in loaded_parts:
        continue
      fresh = fresh or _fresh_variables(config)
      if name is None:  # a collection that is one array
        variables[collection] = fresh[collection]
      else:
        variables[collection][name] = fresh[collection][name]


def _describe_model(config):
  """"model.variant=B/16 (width 768, depth 12, patch 16), decoder 512 x 8" and the like."""
  if config.model.variant.startswith("resnet"):
    return f"model.variant={config.model.variant}, model.resnet_width={config.model.resnet_width}"
  spec = vit.spec_from_config(config.model)
  text = (f"model.variant={config.model.variant} (width {spec['width']}, depth "
          f"{spec['depth']}, patch {spec['patch_size']})")
  return text + methods.get(config.method).describe_model(config)


def _read_hf(source, config):
  """(timm state dict, HF keys with no timm name, `config` with config.json's fields set,
  [config changes and notes])."""
  hf, hf_state_dict = hf_files.read(source)
  fields, notes = hf_config.to_ssljax(source, hf)
  config = loading.load(HF_BASE_CONFIG) if config is None else config
  before = config.to_dict()
  for field, value in fields.items():
    loading.set_field(config, field, value)
  state_dict, unknown = hf_layout.hf_to_timm(hf_state_dict)
  return state_dict, unknown, config, loading.changed_fields(before, config.to_dict()) + notes


def import_file(source, config, workdir):
  """Writes `workdir/checkpoints/0` with the weights of `source` (a PyTorch file, or a Hugging
  Face directory, whose config.json overrides `config`'s model fields; `config` None: the
  mae_vitb recipe) in `config`'s model.

  Returns {"checkpoint", "loaded" (arrays read), "random_init" (parts), "ignored" (keys),
  "config_changes" (lines: the fields an HF config.json set, and notes)}.
  """
  if hf_files.is_hf_directory(source):
    state_dict, other_parts, config, config_changes = _read_hf(source, config)
  elif config is None:
    raise UserError(f"--source={source} is no Hugging Face directory (no config.json): for a "
                    "PyTorch file pass the --config of the model it holds (e.g. "
                    "configs/mae_vitb.py)")
  else:
    state_dict, other_parts = torch_files.read(source)
    config_changes = []
  validation.validate(config)
  methods.get(config.method).validate(config)
  parts = model_parts(config)
  checkpoints_dir = storage.path(checkpoint.directory_of(workdir))
  if checkpoints_dir.exists():
    raise UserError(f"--workdir={workdir} already holds checkpoints: pass a new --workdir")
  variables = _fresh_variables(config, shapes_only=True)
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
  _fill_the_rest(config, variables, {name for name, _, _ in parts if name not in random_init})
  ignored = sorted(k for k in list(state_dict) + other_parts
                   if k not in used and not k.endswith("num_batches_tracked"))
  step_dir = checkpoints_dir / "0"
  _write(step_dir, config, variables)
  summary = {"checkpoint": os.fspath(step_dir), "source": os.path.abspath(source),
             "loaded": len(used), "random_init": random_init, "ignored": ignored,
             "config_changes": config_changes}
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


def _write_hf(output, config, layout, state_dict, image_size):
  """A ViTMAEForPreTraining: a ViT encoder and a ViT decoder (the method's parts)."""
  if set(layout) != {"encoder", "decoder"} or any(
      key_fn is not layouts.vit_key for key_fn in layout.values()):
    raise UserError(f"--format=hf writes a ViTMAEForPreTraining: init_from must be an MAE run "
                    f"(a ViT encoder and decoder), not {config.method!r} (use --format=pth or "
                    "detectron2)")
  hf_state_dict = hf_layout.timm_to_hf(state_dict)
  hf_files.write(output, hf_config.from_ssljax(config, image_size), hf_state_dict)
  return len(hf_state_dict)


def _write_detectron2(output, parts, layout):
  """The backbone: the method's first part (MAE's encoder, the Siamese methods' backbone)."""
  backbone = next(iter(parts))
  convert = (detectron2.resnet_state_dict if layout[backbone] is layouts.resnet_key
             else detectron2.vit_state_dict)
  model = convert(parts[backbone])
  detectron2.write(output, model)
  return len(model)


# pylint: disable-next=redefined-builtin  # `format` as the CLI flag is named
def export_checkpoint(init_from, output, image_size=None, format="pth"):
  """Writes the pre-training checkpoint `init_from` at `output` in `format` (FORMATS): a
  PyTorch file, a Hugging Face save_pretrained directory (MAE) or a detectron2 `.pkl`
  backbone.

  `image_size` sets the grid of the written position embeddings (default: the run's).
  Returns {"output", "keys", "step_dir"}.
  """
  if format not in FORMATS:
    raise UserError(f"--format={format} is unknown: use one of {', '.join(FORMATS)}")
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  config, variables, step_dir = pretrained.load(init_from, device)
  if "method" not in config:
    raise UserError(f"init_from={init_from} is a {config.get('protocol', 'evaluation')} run: "
                    "export takes pre-training checkpoints")
  variables = jax.tree.map(np.asarray, jax.device_get(variables))
  patch_size = vit.spec_from_config(config.model)["patch_size"] \
      if not config.model.variant.startswith("resnet") else None
  image_size = image_size or config.input.image_size
  parts, layout = {}, {}  # part name -> its state dict, its key function
  for name, key_fn, _ in model_parts(config):
    part = _part(variables, name)
    parts[name], layout[name] = state_dicts.to_state_dict(part, key_fn), key_fn
    if key_fn is layouts.vit_key:
      token = part["params"].get("cls_token", part["params"].get("mask_token"))
      parts[name][_pos_embed_key(name)] = fixed_pos_embed(token.shape[-1],
                                                          image_size // patch_size)
  state_dict = {k: v for part in parts.values() for k, v in part.items()}
  if format == "hf":
    keys = _write_hf(output, config, layout, state_dict, image_size)
  elif format == "detectron2":
    keys = _write_detectron2(output, parts, layout)
  else:
    for key in [k for k in state_dict if k.endswith(".running_mean")]:
      state_dict[key.replace("running_mean", "num_batches_tracked")] = np.zeros((), np.int64)
    torch_files.write(output, state_dict, methods.get(config.method).torch_wrapper_key)
    keys = len(state_dict)
  return {"output": os.path.abspath(output), "keys": keys, "step_dir": step_dir}
