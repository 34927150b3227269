"""BYOL (Grill et al., NeurIPS 2020) as pure functions.

An online network (backbone, projector, predictor) predicts the projection of the other view
made by a target network (backbone, projector) whose weights are an exponential moving average
of the online ones, with momentum rising from `byol.momentum` (0.996) to 1 on a cosine
schedule. Loss: the normalised MSE 2 - 2 cos(p, sg(z')), symmetrised over the two views. No
negatives. The target network lives in `model_state["target"]` and is checkpointed with it.
"""
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.methods import siamese


def normalized_mse(p, z):
  """mean_b |p_b / |p_b| - z_b / |z_b||^2 = 2 - 2 cos(p_b, z_b), in [0, 4]."""
  return jnp.mean(jnp.sum((siamese.l2_normalize(p) - siamese.l2_normalize(z)) ** 2, axis=-1))


def init(config, rng, image_shape):
  """Online {"params", "batch_stats"} plus a target copy of its backbone and projector."""
  variables = siamese.init_network(config, siamese.build_network(config, config.byol), rng,
                                   image_shape)
  return dict(variables, target=siamese.target_init(variables))


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, ({"batch_stats", "target"}, metrics))."""
  x1, x2 = augment.siamese_views(rng, batch["image"], config.input.image_size, config.aug,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))
  modules = siamese.build_network(config, config.byol)
  out1, stats = siamese.apply_network(modules, params, state["batch_stats"], x1, train=True)
  out2, stats = siamese.apply_network(modules, params, stats, x2, train=True)
  (t1, t2), target = siamese.target_projections(modules, state["target"], (x1, x2))
  value = normalized_mse(out1["p"], t2) + normalized_mse(out2["p"], t1)
  metrics = {"loss": value, "output_std": siamese.output_std(out1["z"]),
             "prediction_std": siamese.output_std(out1["p"])}
  return value, ({"batch_stats": stats, "target": target}, metrics)


def after_update(config, params, model_state, step, total_steps):
  """The target's weights move toward the online ones: EMA with the cosine momentum."""
  momentum = siamese.cosine_momentum(config.byol.momentum, step, total_steps)
  return params, siamese.update_target(model_state, params, momentum)


def encode(config, variables, images):
  """The online network's features (the target is for training only)."""
  return siamese.encode(config, config.byol, variables, images)


def flops_per_example(config):
  """Two views through the online network (forward and backward), two through the target
  (forward only)."""
  size = config.input.image_size
  return (2 * 3 * siamese.network_forward_flops(config, config.byol, size)
          + 2 * siamese.network_forward_flops(config, config.byol, size, predictor=False))


def default_config():
  """`config.byol`: the paper's heads (4096 hidden, 256 out, BN on hidden layers only) and
  base momentum 0.996."""
  return ml_collections.ConfigDict(dict(
      dim=256, hidden_dim=4096, projector_layers=2, projector_hidden_bn=True,
      projector_last_bn=False, predictor_hidden_dim=4096, momentum=0.996,
      **siamese.head_options(predictor=True)))


def validate(config):
  siamese.validate_network(config, "byol")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
