"""What the Siamese methods share: the network (backbone + projector [+ predictor]) and its
BatchNorm statistics, momentum (EMA) target networks, l2 normalisation, the collapse monitor.

A method's head config (`config.simsiam`, `config.byol`, ...) has `dim` (output width),
`hidden_dim` (projector hidden width, default `dim`), `projector_layers`, optionally
`projector_hidden_bn` / `projector_last_bn` (default True), `predictor_hidden_dim` (None: no
predictor) and the switches of `HEAD_OPTIONS` / `PREDICTOR_OPTIONS` (`heads.Projector`,
`heads.Predictor`; `head_init` is one of `heads.INITS`). Parameters are `{"backbone",
"projector"[, "predictor"]}`; BatchNorm statistics the same keys under `batch_stats`.
"""
import math

import jax
import jax.numpy as jnp

from ssljax.errors import ConfigError
from ssljax.models import attention, batch_norm, heads, resnet, vit

PARTS = ("backbone", "projector", "predictor")


def build_backbone(config):
  """ResNet (`model.variant` "resnet18"/"resnet50") or ViT ("B/16", ...) backbone."""
  dtype = jnp.dtype(config.model.dtype)
  if config.model.variant.startswith("resnet"):
    return resnet.from_name(config.model.variant, width=config.model.resnet_width,
                            cifar_stem=config.model.cifar_stem, dtype=dtype,
                            zero_init_residual=config.model.zero_init_residual,
                            bn_running_var=config.model.bn_running_var,
                            bn_group_size=config.model.get("bn_group_size"),
                            conv_init=config.model.get("resnet_init", "torchvision"))
  spec = vit.spec_from_config(config.model)
  impl = config.model.get("attention_impl", "auto")
  attention.require_runnable("model.attention_impl", impl, dtype,
                             spec["width"] // spec["num_heads"])
  return vit.ViT(**spec, dtype=dtype, remat=config.model.remat,
                 weight_init=config.model.get("vit_init", "xavier"), attention_impl=impl)


# The head switches of `build_network` and their defaults (the ssljax heads of the CIFAR
# recipes); the ImageNet recipes set the release's values.
HEAD_OPTIONS = dict(head_init="flax", projector_last_bn_scale=False, projector_output_bias=True)
PREDICTOR_OPTIONS = dict(predictor_last_bn=False, predictor_output_bias=True)


def head_options(predictor):
  """`HEAD_OPTIONS` (and `PREDICTOR_OPTIONS` with a `predictor`) for a method's head config."""
  return dict(HEAD_OPTIONS, **(PREDICTOR_OPTIONS if predictor else {}))


def build_network(config, head):
  """{"backbone", "projector"[, "predictor"]} modules for head config `head`."""
  option = lambda name: head.get(name, head_options(True)[name])
  shared = dict(linear_init=option("head_init"), bn_running_var=config.model.bn_running_var,
                bn_group_size=config.model.get("bn_group_size"))
  modules = {"backbone": build_backbone(config),
             "projector": heads.Projector(head.dim, head.get("hidden_dim") or head.dim,
                                          head.projector_layers,
                                          head.get("projector_hidden_bn", True),
                                          head.get("projector_last_bn", True),
                                          option("projector_last_bn_scale"),
                                          option("projector_output_bias"), **shared)}
  if head.get("predictor_hidden_dim"):
    modules["predictor"] = heads.Predictor(head.dim, head.predictor_hidden_dim,
                                           option("predictor_last_bn"),
                                           option("predictor_output_bias"), **shared)
  return modules


def validate_network(config, name):
  """ConfigErrors for the network fields of `config.model` and head config `config[name]`."""
  init = config[name].get("head_init", HEAD_OPTIONS["head_init"])
  if init not in heads.INITS:
    raise ConfigError(f"{name}.head_init={init!r} is unknown: use one of "
                      f"{', '.join(heads.INITS)}")
  if config.model.bn_running_var not in batch_norm.RUNNING_VARS:
    raise ConfigError(f"model.bn_running_var={config.model.bn_running_var!r} is unknown: use "
                      f"{' or '.join(batch_norm.RUNNING_VARS)}")
  group, micro = config.model.get("bn_group_size"), (config.input.batch_size
                                                     // config.get("grad_accum_steps", 1))
  if group is not None and (group < 2 or micro % group):
    raise ConfigError(f"model.bn_group_size={group} does not divide the (micro-)batch of "
                      f"{micro} into groups of 2 or more: use a divisor of {micro}, or None "
                      "(BatchNorm over the whole batch)")


def _mode(module, train):
  """Call kwargs selecting train/eval mode (the ViT has no BatchNorm and no such flag)."""
  return {} if isinstance(module, vit.ViT) else {"train": train}


def _run(module, variables, x, train):
  """`module.apply` in train or eval mode -> (output, batch stats after it, or None)."""
  if train and "batch_stats" in variables:
    out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return out, updates["batch_stats"]
  return module.apply(variables, x, **_mode(module, train)), variables.get("batch_stats")


def _variables(params, stats, name):
  variables = {"params": params[name]}
  if name in stats:
    variables["batch_stats"] = stats[name]
  return variables


def backbone_features(backbone, variables, images, train):
  """[B, D] features (the ResNet's pooled output, the ViT's cls token) and batch stats."""
  (out, intermediates), stats = _run(backbone, variables, images, train)
  return (out[:, 0] if isinstance(backbone, vit.ViT) else intermediates["pooled"]), stats


def apply_backbone(modules, params, stats, images, train):
  """Normalised images -> (features [B, D], {"backbone": new stats}, or {} without BN)."""
  features, new_stats = backbone_features(
      modules["backbone"], _variables(params, stats, "backbone"), images, train)
  return features, ({} if new_stats is None else {"backbone": new_stats})


def apply_heads(modules, params, stats, features, train):
  """features [B, D] -> ({"z": [B, dim][, "p": [B, dim]]}, new stats of the heads that ran).

  The predictor runs only if present in `params` (a target network has none)."""
  outputs, new_stats = {}, {}
  outputs["z"], new_stats["projector"] = _run(
      modules["projector"], _variables(params, stats, "projector"), features, train)
  if "predictor" in params and "predictor" in modules:
    outputs["p"], new_stats["predictor"] = _run(
        modules["predictor"], _variables(params, stats, "predictor"), outputs["z"], train)
  return outputs, {k: v for k, v in new_stats.items() if v is not None}


def apply_network(modules, params, stats, images, train):
  """Normalised images -> ({"backbone": [B, D], "z": [B, dim][, "p": [B, dim]]}, new stats
  of the parts that ran)."""
  features, new_stats = apply_backbone(modules, params, stats, images, train)
  outputs, head_stats = apply_heads(modules, params, stats, features, train)
  outputs = {"backbone": features, **outputs}
  return {k: v.astype(jnp.float32) for k, v in outputs.items()}, {**new_stats, **head_stats}


def init_network(config, modules, rng, image_shape):
  """{"params": {part: ...}, "batch_stats": {part: ...}} for `modules`."""
  keys = dict(zip(PARTS, jax.random.split(rng, 3)))
  images = jnp.zeros((2,) + tuple(image_shape[1:]), jnp.float32)
  backbone = modules["backbone"]
  variables = {"backbone": backbone.init(keys["backbone"], images, **_mode(backbone, False))}
  features, _ = backbone_features(backbone, variables["backbone"], images, False)
  variables["projector"] = modules["projector"].init(keys["projector"], features)
  if "predictor" in modules:
    z = modules["projector"].apply(variables["projector"], features)
    variables["predictor"] = modules["predictor"].init(keys["predictor"], z)
  return {"params": {k: v["params"] for k, v in variables.items()},
          "batch_stats": {k: v["batch_stats"] for k, v in variables.items()
                          if "batch_stats" in v}}


def encode(config, head, variables, images):
  """uint8 [B, H, W, C] -> {"backbone": [B, D], "projection": [B, dim]} in eval mode."""
  from ssljax.data import augment  # pylint: disable=g-import-not-at-top
  x = augment.eval_view(images, config.input.image_size)
  outputs, _ = apply_network(build_network(config, head), variables["params"],
                             variables["batch_stats"], x, train=False)
  return {"backbone": outputs["backbone"], "projection": outputs["z"]}


def l2_normalize(x, axis=-1):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def output_std(z):
  """Collapse monitor: std over the batch of l2-normalised z, averaged over dimensions.
  A collapsed encoder gives 0; a healthy one stays near 1 / sqrt(dim)."""
  return jnp.mean(jnp.std(l2_normalize(z), axis=0))


def ema(target, online, momentum):
  """target <- momentum * target + (1 - momentum) * online, leaf by leaf."""
  return jax.tree.map(lambda t, o: momentum * t + (1 - momentum) * o.astype(t.dtype),
                      target, online)


def cosine_momentum(base, step, total_steps):
  """BYOL's schedule: 1 - (1 - base) * (cos(pi * step / total_steps) + 1) / 2, base -> 1."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return 1 - (1 - base) * (jnp.cos(math.pi * progress) + 1) / 2


def target_projections(modules, target, views):
  """The momentum target's z for each view, without gradient, and the target with the batch
  statistics of those forwards (its BatchNorm runs on batch statistics, as the online one)."""
  outputs, stats = [], target["batch_stats"]
  for x in views:
    out, stats = apply_network(modules, target["params"], stats, x, train=True)
    outputs.append(jax.lax.stop_gradient(out["z"]))
  return outputs, dict(target, batch_stats=stats)


def update_target(model_state, params, momentum):
  """`model_state` with its momentum target's params moved toward the online `params` (EMA of
  the parts the target has); the target's BatchNorm statistics come from its own forwards."""
  target = model_state["target"]
  online = {k: params[k] for k in target["params"]}
  return dict(model_state, target=dict(target, params=ema(target["params"], online, momentum)))


def target_init(variables, parts=("backbone", "projector")):
  """A momentum target network starting as a copy of the online `parts`."""
  return {"params": {k: variables["params"][k] for k in parts},
          "batch_stats": {k: v for k, v in variables["batch_stats"].items() if k in parts}}


def backbone_forward_flops(config, image_size):
  """(forward FLOPs of one image of side `image_size` through the backbone, feature width)."""
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  variant = config.model.variant
  if variant.startswith("resnet"):
    features = config.model.resnet_width * 8 * (
        4 if resnet.DEPTHS[variant][0] == "bottleneck" else 1)
    return flops.resnet_forward(variant, image_size, config.model.resnet_width,
                                config.model.cifar_stem), features
  spec = vit.spec_from_config(config.model)
  return flops.vit_forward(spec, image_size), spec["width"]


def network_forward_flops(config, head, image_size, predictor=True):
  """Forward FLOPs of one image through backbone, projector and (if `predictor`) predictor."""
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  total, features = backbone_forward_flops(config, image_size)
  hidden = head.get("hidden_dim") or head.dim
  widths = [features] + [hidden] * (head.projector_layers - 1) + [head.dim]
  total += sum(flops.dense(a, b) for a, b in zip(widths, widths[1:]))
  if predictor and head.get("predictor_hidden_dim"):
    total += flops.dense(head.dim, head.predictor_hidden_dim) * 2
  return total


def finetune_encoder(config):
  """The encoder fine-tuning takes: the backbone, its params (and BatchNorm statistics) under
  "backbone"; a ResNet as the module `build_backbone` makes, a ViT as its spec."""
  if config.model.variant.startswith("resnet"):
    return {"kind": "resnet", "part": "backbone", "module": build_backbone(config)}
  return {"kind": "vit", "part": "backbone", "vit": vit.spec_from_config(config.model)}


def torch_parts(config):
  """Only the backbone has a PyTorch layout (torchvision ResNet or timm ViT); heads, targets,
  queues and prototypes have no common one."""
  kind = "resnet" if config.model.variant.startswith("resnet") else "vit"
  return [("backbone", kind, True)]
