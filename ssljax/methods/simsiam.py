"""SimSiam (Chen & He, CVPR 2021) as pure functions.

Two augmented views x1, x2 of each image; f = backbone + projection MLP gives z, the
prediction MLP h gives p = h(z); loss = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D the
negative cosine similarity and sg the stop-gradient. No negatives, no momentum encoder.
Ablation switches (`config.simsiam`): `stop_gradient`, `predictor`; a predictor fixed at random
init is `optim.frozen_regex="^predictor/"`, a decayed predictor lr is `optim.fixed_lr_regex=None`.
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.models import heads, resnet, vit


def build_backbone(config):
  """ResNet (`model.variant` "resnet18"/"resnet50") or ViT ("B/16", ...) backbone."""
  dtype = jnp.dtype(config.model.dtype)
  if config.model.variant.startswith("resnet"):
    return resnet.from_name(config.model.variant, width=config.model.resnet_width,
                            cifar_stem=config.model.cifar_stem, dtype=dtype)
  return vit.ViT(**vit.spec_from_config(config.model), dtype=dtype, remat=config.model.remat)


def build_models(config):
  c = config.simsiam
  return (build_backbone(config),
          heads.Projector(c.dim, c.dim, c.projector_layers),
          heads.Predictor(c.dim, c.predictor_hidden_dim))


def _mode(module, train):
  """Call kwargs selecting train/eval mode (the ViT has no BatchNorm and no such flag)."""
  return {} if isinstance(module, vit.ViT) else {"train": train}


def _run(module, variables, x, train):
  """`module.apply` in train or eval mode -> (output, batch stats after it, or None)."""
  if train and "batch_stats" in variables:
    out, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return out, updates["batch_stats"]
  return module.apply(variables, x, **_mode(module, train)), variables.get("batch_stats")


def _backbone_features(backbone, variables, images, train):
  """[B, D] features (the ResNet's pooled output, the ViT's cls token) and batch stats."""
  (out, intermediates), stats = _run(backbone, variables, images, train)
  return (out[:, 0] if isinstance(backbone, vit.ViT) else intermediates["pooled"]), stats


def _variables(params, stats, name):
  variables = {"params": params[name]}
  if name in stats:
    variables["batch_stats"] = stats[name]
  return variables


def forward(config, params, stats, images, train):
  """Normalised images -> ({"backbone": [B, D], "z": [B, dim], "p": [B, dim]}, new stats)."""
  backbone, projector, predictor = build_models(config)
  new_stats = {}
  features, backbone_stats = _backbone_features(
      backbone, _variables(params, stats, "backbone"), images, train)
  if backbone_stats is not None:
    new_stats["backbone"] = backbone_stats
  z, new_stats["projector"] = _run(projector, _variables(params, stats, "projector"),
                                   features, train)
  p, new_stats["predictor"] = _run(predictor, _variables(params, stats, "predictor"), z, train)
  outputs = {"backbone": features, "z": z, "p": p}
  return {k: v.astype(jnp.float32) for k, v in outputs.items()}, new_stats


def negative_cosine(p, z):
  """D(p, z) = -mean_b <p_b / |p_b|, z_b / |z_b|>, in [-1, 1]."""
  p = p / jnp.maximum(jnp.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  return -jnp.mean(jnp.sum(p * z, axis=-1))


def symmetric_loss(p1, p2, z1, z2, stop_gradient=True):
  """D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2; without `stop_gradient` both branches get grads."""
  sg = jax.lax.stop_gradient if stop_gradient else (lambda x: x)
  return negative_cosine(p1, sg(z2)) / 2 + negative_cosine(p2, sg(z1)) / 2


def output_std(z):
  """Collapse monitor: std over the batch of l2-normalised z, averaged over dimensions.
  A collapsed encoder gives 0; a healthy one stays near 1 / sqrt(dim)."""
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  return jnp.mean(jnp.std(z, axis=0))


def init(config, rng, image_shape):
  """{"params": {backbone, projector, predictor}, "batch_stats": {...}}."""
  backbone, projector, predictor = build_models(config)
  keys = jax.random.split(rng, 3)
  images = jnp.zeros((2,) + tuple(image_shape[1:]), jnp.float32)
  backbone_vars = backbone.init(keys[0], images, **_mode(backbone, False))
  features, _ = _backbone_features(backbone, backbone_vars, images, False)
  projector_vars = projector.init(keys[1], features)
  predictor_vars = predictor.init(keys[2], jnp.zeros((2, config.simsiam.dim)))
  stats = {"projector": projector_vars["batch_stats"],
           "predictor": predictor_vars["batch_stats"]}
  if "batch_stats" in backbone_vars:
    stats["backbone"] = backbone_vars["batch_stats"]
  return {"params": {"backbone": backbone_vars["params"], "projector": projector_vars["params"],
                     "predictor": predictor_vars["params"]},
          "batch_stats": stats}


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"}, metrics)); views are forwarded one
  after the other, as in the paper, so BatchNorm statistics are per view."""
  x1, x2 = augment.siamese_views(rng, batch["image"], config.input.image_size, config.aug)
  out1, stats = forward(config, params, state["batch_stats"], x1, train=True)
  out2, stats = forward(config, params, stats, x2, train=True)
  z1, z2 = out1["z"], out2["z"]
  p1, p2 = (out1["p"], out2["p"]) if config.simsiam.predictor else (z1, z2)
  value = symmetric_loss(p1, p2, z1, z2, config.simsiam.stop_gradient)
  metrics = {"loss": value, "output_std": output_std(z1), "prediction_std": output_std(p1),
             "backbone_std": output_std(out1["backbone"])}
  return value, ({"batch_stats": stats}, metrics)


def encode(config, variables, images):
  """uint8 [B, H, W, C] -> {"backbone": [B, D], "projection": [B, dim]} in eval mode."""
  x = augment.eval_view(images, config.input.image_size)
  outputs, _ = forward(config, variables["params"], variables["batch_stats"], x, train=False)
  return {"backbone": outputs["backbone"], "projection": outputs["z"]}


def default_config():
  """`config.simsiam`: the paper's heads (2048-d output, 512-d predictor bottleneck)."""
  return ml_collections.ConfigDict(dict(
      dim=2048, predictor_hidden_dim=512, projector_layers=3, stop_gradient=True,
      predictor=True))
