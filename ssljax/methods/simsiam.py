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
from ssljax.methods import siamese

output_std = siamese.output_std


def forward(config, params, stats, images, train):
  """Normalised images -> ({"backbone": [B, D], "z": [B, dim], "p": [B, dim]}, new stats)."""
  return siamese.apply_network(siamese.build_network(config, config.simsiam), params, stats,
                               images, train)


def negative_cosine(p, z):
  """D(p, z) = -mean_b <p_b / |p_b|, z_b / |z_b|>, in [-1, 1]."""
  return -jnp.mean(jnp.sum(siamese.l2_normalize(p) * siamese.l2_normalize(z), axis=-1))


def symmetric_loss(p1, p2, z1, z2, stop_gradient=True):
  """D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2; without `stop_gradient` both branches get grads."""
  sg = jax.lax.stop_gradient if stop_gradient else (lambda x: x)
  return negative_cosine(p1, sg(z2)) / 2 + negative_cosine(p2, sg(z1)) / 2


def init(config, rng, image_shape):
  """{"params": {backbone, projector, predictor}, "batch_stats": {...}}."""
  return siamese.init_network(config, siamese.build_network(config, config.simsiam), rng,
                              image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats"}, metrics)); views are forwarded one
  after the other, as in the paper, so BatchNorm statistics are per view."""
  x1, x2 = augment.siamese_views(rng, batch["image"], config.input.image_size, config.aug,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))
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
  return siamese.encode(config, config.simsiam, variables, images)


def flops_per_example(config):
  """Two views, each forward and backward through backbone, projector and predictor."""
  return 2 * 3 * siamese.network_forward_flops(config, config.simsiam, config.input.image_size)


def default_config():
  """`config.simsiam`: the paper's heads (2048-d output, 512-d predictor bottleneck)."""
  return ml_collections.ConfigDict(dict(
      dim=2048, predictor_hidden_dim=512, projector_layers=3, stop_gradient=True,
      predictor=True, **siamese.head_options(predictor=True)))


def validate(config):
  siamese.validate_network(config, "simsiam")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
