"""MoCo v2 (Chen et al. 2020) and MoCo v3 (Chen, Xie & He, ICCV 2021) as pure functions.

Both have a momentum (EMA) key encoder in `model_state["target"]`.
v2: queries q = normalised projections of view 1, keys k of view 2 from the key encoder; the
    InfoNCE loss contrasts each q with its k against a queue of `moco.queue_size` earlier keys
    (`model_state["queue"]` [K, dim], sharded over the batch axis, checkpointed); the global
    batch's keys then replace the oldest K entries (FIFO). Constant momentum (0.999).
v3: no queue; an online predictor; the other examples of the global batch are the negatives;
    symmetric loss ctr(q1, k2) + ctr(q2, k1) with ctr scaled by 2t; momentum from
    `moco.momentum` (0.99) to 1 on a cosine schedule; ResNet or ViT backbones.
BatchNorm is global over the sharded batch (SyncBN) unless `model.bn_group_size` gives each
group of that many examples its own statistics (MoCo v2's per-GPU BN: 8 groups of 32).
`moco.shuffle_bn` (MoCo v2's shuffle BN) permutes each key batch at random before the key
encoder and puts its keys back in order after, so that a key's BN group is not its query's:
with groups, a query and its positive key no longer share the batch statistics that could
give the positive away. Without groups it changes nothing but the order of float sums.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import siamese

SHARDED_STATE = ("queue",)
SHUFFLE_KEY_DATA = 1  # the shuffle key is fold_in(step key, this); the views split the step key


def info_nce(q, k, negatives, temperature):
  """q, k [N, d] (normalised), negatives [K, d] -> mean -log softmax([q.k, q.negatives] / t)[0]."""
  positive = jnp.sum(q * k, axis=-1, keepdims=True)
  logits = jnp.concatenate([positive, q @ negatives.T], axis=1) / temperature
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - logits[:, 0])


def in_batch_contrastive(q, k, temperature):
  """MoCo v3's ctr: q, k [N, d] -> cross-entropy of q_i against all k with k_i the positive,
  times 2t (the paper's scaling)."""
  logits = siamese.l2_normalize(q) @ siamese.l2_normalize(k).T / temperature
  labels = jnp.arange(q.shape[0])
  log_prob = logits - jax.nn.logsumexp(logits, axis=1, keepdims=True)
  return -jnp.mean(jnp.take_along_axis(log_prob, labels[:, None], axis=1)) * 2 * temperature


def enqueue(queue, pointer, keys):
  """FIFO: `keys` [N, d] overwrite queue[pointer:pointer + N]; returns (queue, new pointer)."""
  queue = jax.lax.dynamic_update_slice(queue, keys.astype(queue.dtype), (pointer, 0))
  return queue, (pointer + keys.shape[0]) % queue.shape[0]


def validate(config):
  siamese.validate_network(config, "moco")
  c = config.moco
  if c.version not in (2, 3):
    raise ConfigError(f"moco.version={c.version} is unknown: use 2 or 3")
  if c.version == 2 and c.queue_size % config.input.batch_size:
    raise ConfigError(f"moco.queue_size={c.queue_size} is not a multiple of "
                      f"input.batch_size={config.input.batch_size}: the queue takes whole "
                      "batches of keys; use a multiple")


def init(config, rng, image_shape):
  """Online network, key encoder (a copy), and for v2 a queue of random unit keys."""
  net_key, queue_key = jax.random.split(rng)
  variables = siamese.init_network(config, siamese.build_network(config, config.moco),
                                   net_key, image_shape)
  variables["target"] = siamese.target_init(variables)
  if config.moco.version == 2:
    variables["queue"] = siamese.l2_normalize(
        jax.random.normal(queue_key, (config.moco.queue_size, config.moco.dim)))
    variables["queue_pointer"] = jnp.zeros((), jnp.int32)
  return variables


def batch_permutation(key, batch_size):
  """A uniformly random permutation of range(batch_size) [B] drawn from `key`."""
  return jax.random.permutation(key, batch_size)


def shuffled(forward, key, x):
  """Shuffle BN: forward(x [B, ...]) -> (out [B, ...], aux) run on x in the order of
  `batch_permutation(key, B)`, `out` put back in x's order (aux as forward returns it)."""
  order = batch_permutation(key, x.shape[0])
  out, aux = forward(x[order])
  return out[jnp.argsort(order)], aux


def _keys(modules, target, views, shuffle_key=None):
  """Key-encoder projections, normalised, without gradient; the key encoder after them.
  With a `shuffle_key`, each view goes through the key encoder `shuffled` (its own order)."""
  keys = []
  for view, x in enumerate(views):
    forward = functools.partial(_key_projection, modules, target)
    z, target = (forward(x) if shuffle_key is None
                 else shuffled(forward, jax.random.fold_in(shuffle_key, view), x))
    keys.append(siamese.l2_normalize(z))
  return keys, target


def _key_projection(modules, target, x):
  """One view [B, ...] -> (its key-encoder z [B, dim], the key encoder after it)."""
  (z,), target = siamese.target_projections(modules, target, (x,))
  return z, target


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, (model state, metrics))."""
  c = config.moco
  x1, x2 = augment.siamese_views(rng, batch["image"], config.input.image_size, config.aug,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))
  modules = siamese.build_network(config, c)
  shuffle_key = jax.random.fold_in(rng, SHUFFLE_KEY_DATA) if c.get("shuffle_bn") else None
  out1, stats = siamese.apply_network(modules, params, state["batch_stats"], x1, train=True)
  new_state = dict(state)
  if c.version == 2:
    (k2,), new_state["target"] = _keys(modules, state["target"], (x2,), shuffle_key)
    q1 = siamese.l2_normalize(out1["z"])
    value = info_nce(q1, k2, jax.lax.stop_gradient(state["queue"]), c.temperature)
    new_state["queue"], new_state["queue_pointer"] = enqueue(state["queue"],
                                                             state["queue_pointer"], k2)
  else:
    out2, stats = siamese.apply_network(modules, params, stats, x2, train=True)
    (k1, k2), new_state["target"] = _keys(modules, state["target"], (x1, x2), shuffle_key)
    value = (in_batch_contrastive(out1["p"], k2, c.temperature)
             + in_batch_contrastive(out2["p"], k1, c.temperature))
  new_state["batch_stats"] = stats
  return value, (new_state, {"loss": value, "output_std": siamese.output_std(out1["z"])})


def after_update(config, params, model_state, step, total_steps):
  """Key encoder <- EMA of the online backbone and projector (v3: cosine momentum).

  v3's release moves the key encoder at the start of step t + 1 with m(t + 1), toward the
  params that step t's update produced; here that update is the end of step t, so it takes
  m(step + 1) (its last, m(total_steps) = 1, leaves the encoder as the release's last)."""
  c = config.moco
  momentum = (siamese.cosine_momentum(c.momentum, step + 1, total_steps) if c.version == 3
              else c.momentum)
  return params, siamese.update_target(model_state, params, momentum)


def encode(config, variables, images):
  return siamese.encode(config, config.moco, variables, images)


def flops_per_example(config):
  """v2: one view through the query encoder (forward and backward) and one through the key
  encoder (forward), plus the queue logits; v3: both views through both."""
  c, size = config.moco, config.input.image_size
  views = 1 if c.version == 2 else 2
  total = (views * 3 * siamese.network_forward_flops(config, c, size)
           + views * siamese.network_forward_flops(config, c, size, predictor=False))
  return total + (3 * 2 * c.dim * c.queue_size if c.version == 2 else 0)


def default_config(version=2):
  """`config.moco`: v2's MLP head (2048 -> 128, no BN), t 0.2, m 0.999, K 65536; v3's
  heads (4096 hidden, 256 out, BN, predictor), t 1.0 (ResNet; 0.2 for ViT), m 0.99. No
  shuffle BN (the v2 release's is set in configs/moco_v2_r50.py; v3's uses SyncBN)."""
  if version == 2:
    return ml_collections.ConfigDict(dict(
        version=2, dim=128, hidden_dim=2048, projector_layers=2, projector_hidden_bn=False,
        projector_last_bn=False, predictor_hidden_dim=None, temperature=0.2, momentum=0.999,
        queue_size=65536, shuffle_bn=False, **siamese.head_options(predictor=False)))
  return ml_collections.ConfigDict(dict(
      version=3, dim=256, hidden_dim=4096, projector_layers=2, projector_hidden_bn=True,
      projector_last_bn=True, predictor_hidden_dim=4096, temperature=1.0, momentum=0.99,
      queue_size=0, shuffle_bn=False, **siamese.head_options(predictor=True)))


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
