"""SimCLR (Chen et al., ICML 2020) as pure functions.

Two augmented views of each image go through one network (backbone + projection MLP) as one
batch of 2N, so BatchNorm sees both views of the global batch (SimCLR's global BN). The loss
is NT-Xent: for each of the 2N projections the other view of its image is the positive and the
other 2N - 2 projections are the negatives, cross-entropy over cosine similarity / temperature.
Under `jax.jit` with the batch sharded over devices the similarity matrix is over the whole
global batch: every device's examples are negatives for every other's.
`simclr.loss_reduction`: "mean" over the 2N anchors, or "sum_over_views" (the release's
`reduce_mean(loss_a + loss_b)`: the two views' means summed, twice the mean).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import siamese

LOSS_REDUCTIONS = {"mean": 1.0, "sum_over_views": 2.0}  # the factor on the mean over 2N


def nt_xent(z1, z2, temperature):
  """z1, z2 [N, d] projections of the two views -> the mean NT-Xent loss over all 2N.

  l(i) = -log exp(s(i, pos(i)) / t) / sum_{k != i} exp(s(i, k) / t), s = cosine similarity.
  """
  z = siamese.l2_normalize(jnp.concatenate([z1, z2]).astype(jnp.float32))
  n = z1.shape[0]
  logits = z @ z.T / temperature
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)  # never itself
  positives = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(n)])
  log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
  return -jnp.mean(jnp.take_along_axis(log_prob, positives[:, None], axis=1))


def contrastive_loss(z1, z2, head):
  """NT-Xent at `head.temperature`, reduced as `head.loss_reduction` (`LOSS_REDUCTIONS`)."""
  return LOSS_REDUCTIONS[head.loss_reduction] * nt_xent(z1, z2, head.temperature)


def init(config, rng, image_shape):
  return siamese.init_network(config, siamese.build_network(config, config.simclr), rng,
                              image_shape)


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] [B, H, W, C] -> (loss, ({"batch_stats"}, metrics))."""
  x1, x2 = augment.siamese_views(rng, batch["image"], config.input.image_size, config.aug,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))
  n = x1.shape[0]
  out, stats = siamese.apply_network(siamese.build_network(config, config.simclr), params,
                                     state["batch_stats"], jnp.concatenate([x1, x2]), True)
  z1, z2 = out["z"][:n], out["z"][n:]
  value = contrastive_loss(z1, z2, config.simclr)
  return value, ({"batch_stats": stats}, {"loss": value, "output_std": siamese.output_std(z1)})


def encode(config, variables, images):
  return siamese.encode(config, config.simclr, variables, images)


def flops_per_example(config):
  """Two views, each forward and backward through backbone and projector."""
  return 2 * 3 * siamese.network_forward_flops(config, config.simclr, config.input.image_size)


def default_config():
  """`config.simclr`: the v1 paper's head (2048 -> 128, BN on the hidden layer), t = 0.1; the
  ImageNet recipe (configs/simclr_r50.py) sets the TF2 release's head and loss."""
  return ml_collections.ConfigDict(dict(
      dim=128, hidden_dim=2048, projector_layers=2, projector_hidden_bn=True,
      projector_last_bn=False, temperature=0.1, loss_reduction="mean",
      **siamese.head_options(predictor=False)))


def validate(config):
  siamese.validate_network(config, "simclr")
  if config.simclr.loss_reduction not in LOSS_REDUCTIONS:
    raise ConfigError(f"simclr.loss_reduction={config.simclr.loss_reduction!r} is unknown: "
                      f"use {' or '.join(LOSS_REDUCTIONS)}")


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
