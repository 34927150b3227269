"""SwAV (Caron et al., NeurIPS 2020) as pure functions.

Each view's projection z (l2-normalised) is scored against K prototypes (unit vectors,
`params["prototypes"]`). Codes q are computed from the scores of the large crops by
Sinkhorn-Knopp over the global batch (equal share of the batch per prototype), and each crop
predicts the codes of the other large crops: the swapped prediction loss
-sum_k q_k log softmax(scores / t)_k. Optional multi-crop: `swav.num_small_crops` extra views at
`swav.small_crop_size` from scale `swav.small_crop_scale` (codes only from the 2 large crops).
The prototypes get no gradient for the first `swav.freeze_prototypes_steps` steps (the paper:
one epoch) and are re-normalised after every update. No negatives, no momentum encoder.
Crops of one resolution go through the backbone together (one BatchNorm batch each); the
projector runs per resolution too, or, with `swav.projector_over_all_crops` (the release), once
on the features of all crops (its BatchNorm statistics over every crop).
"""
import jax
import jax.numpy as jnp
import ml_collections

from ssljax.data import augment
from ssljax.methods import siamese
from ssljax.models import heads


def sinkhorn(scores, epsilon, iterations):
  """scores [B, K] -> codes [B, K]: each row sums to 1, each column to about B / K.

  Q = exp(scores / epsilon), then alternately normalised over prototypes and examples
  (Sinkhorn-Knopp). The sums over the batch are over the global batch under a sharded jit.
  """
  q = jnp.exp((scores - jnp.max(scores)) / epsilon).astype(jnp.float32)
  q = q / jnp.sum(q)
  b, k = q.shape
  for _ in range(iterations):
    q = q / jnp.sum(q, axis=0, keepdims=True) / k  # every prototype: total mass 1 / K
    q = q / jnp.sum(q, axis=1, keepdims=True) / b  # every example: total mass 1 / B
  return q * b


def swapped_prediction(scores, codes, temperature):
  """scores: per crop [B, K]; codes: per large crop [B, K] -> the mean over (code, other crop)
  pairs of -sum_k q_k log softmax(scores / t)_k."""
  total, pairs = 0.0, 0
  for i, q in enumerate(codes):
    for v, s in enumerate(scores):
      if v != i:
        log_p = jax.nn.log_softmax(s / temperature, axis=1)
        total += -jnp.mean(jnp.sum(q * log_p, axis=1))
        pairs += 1
  return total / pairs


def _prototypes(config):
  return heads.Prototypes(config.swav.num_prototypes, config.swav.head_init)


def validate(config):
  siamese.validate_network(config, "swav")


def init(config, rng, image_shape):
  """Network variables plus unit-norm prototypes; `model_state["prototypes_frozen"]` (1.0
  while they get no gradient)."""
  net_key, proto_key = jax.random.split(rng)
  variables = siamese.init_network(config, siamese.build_network(config, config.swav),
                                   net_key, image_shape)
  prototypes = _prototypes(config).init(proto_key, jnp.zeros((1, config.swav.dim)))["params"]
  variables["params"]["prototypes"] = _normalize_prototypes(prototypes)
  frozen = config.swav.freeze_prototypes_steps > 0
  variables["prototypes_frozen"] = jnp.asarray(float(frozen), jnp.float32)
  return variables


def _normalize_prototypes(prototypes):
  """Each prototype (a column of the [D, K] kernel) at unit norm."""
  return jax.tree.map(lambda w: siamese.l2_normalize(w, axis=0), prototypes)


def _crops(config, rng, batch):
  """[large crop 1, large crop 2, small crops...] as normalised images, all from the one
  decoded image of each example."""
  c = config.swav
  large_key, small_key = jax.random.split(rng)
  images = batch["image"]
  view_args = dict(augment.micro_batch(batch, config), **augment.geometry(batch, config))
  crops = augment.augmented_views(large_key, images, config.input.image_size, config.aug, 2,
                                  **view_args)
  if c.num_small_crops:
    crops += augment.augmented_views(small_key, images, c.small_crop_size, config.aug,
                                     c.num_small_crops, crop_scale=c.small_crop_scale,
                                     first_view=2, **view_args)
  return crops


def loss(config, params, state, batch, rng):
  """uint8 batch["image"] -> (loss, (model state, metrics))."""
  c = config.swav
  crops = _crops(config, rng, batch)
  frozen = state["prototypes_frozen"] > 0
  prototypes = jax.tree.map(lambda w: jnp.where(frozen, jax.lax.stop_gradient(w), w),
                            params["prototypes"])
  scores, z, stats = crop_scores(config, siamese.build_network(config, c),
                                 dict(params, prototypes=prototypes), state["batch_stats"],
                                 crops)
  codes = [jax.lax.stop_gradient(sinkhorn(s, c.epsilon, c.sinkhorn_iterations))
           for s in scores[:2]]
  value = swapped_prediction(scores, codes, c.temperature)
  metrics = {"loss": value, "output_std": siamese.output_std(z),
             "code_entropy": -jnp.mean(jnp.sum(codes[0] * jnp.log(codes[0] + 1e-12), axis=1))}
  return value, (dict(state, batch_stats=stats), metrics)


def crop_scores(config, modules, params, stats, crops):
  """Normalised crops (2 large, then the small ones; [B, H, W, C] each) -> (prototype scores
  per crop [B, K], z of the large crops [2B, dim], new batch stats). Crops of one resolution
  go through the backbone together; the projector follows per resolution, or once over all
  crops with `swav.projector_over_all_crops`."""
  groups = [crops[:2]] + ([crops[2:]] if len(crops) > 2 else [])
  score = lambda z: _prototypes(config).apply({"params": params["prototypes"]}, z)
  if config.swav.projector_over_all_crops:
    features = []
    for group in groups:
      f, new_stats = siamese.apply_backbone(modules, params, stats, jnp.concatenate(group),
                                            True)
      stats = dict(stats, **new_stats)
      features.append(f)
    out, new_stats = siamese.apply_heads(modules, params, stats, jnp.concatenate(features), True)
    z = out["z"].astype(jnp.float32)
    return jnp.split(score(z), len(crops)), z[:2 * crops[0].shape[0]], dict(stats, **new_stats)
  scores, large_z = [], None
  for group in groups:
    out, stats = siamese.apply_network(modules, params, stats, jnp.concatenate(group), True)
    scores += jnp.split(score(out["z"]), len(group))
    large_z = out["z"] if large_z is None else large_z
  return scores, large_z, stats


def after_update(config, params, model_state, step, total_steps):
  """Prototypes back to unit norm; frozen until step `freeze_prototypes_steps`."""
  del total_steps
  params = dict(params, prototypes=_normalize_prototypes(params["prototypes"]))
  frozen = (step + 1 < config.swav.freeze_prototypes_steps).astype(jnp.float32)
  return params, dict(model_state, prototypes_frozen=frozen)


def encode(config, variables, images):
  return siamese.encode(config, config.swav, variables, images)


def flops_per_example(config):
  """Every crop forward and backward through backbone, projector and prototypes."""
  c = config.swav
  per_crop = lambda size: (siamese.network_forward_flops(config, c, size)
                           + 2 * c.dim * c.num_prototypes)
  return 3 * (2 * per_crop(config.input.image_size)
              + c.num_small_crops * per_crop(c.small_crop_size))


def default_config():
  """`config.swav`: the paper's head (2048 -> 128, hidden BN), 3000 prototypes, t 0.1,
  Sinkhorn epsilon 0.05 with 3 iterations, multi-crop off (the paper: 6 x 96px, 0.05-0.14)."""
  return ml_collections.ConfigDict(dict(
      dim=128, hidden_dim=2048, projector_layers=2, projector_hidden_bn=True,
      projector_last_bn=False, num_prototypes=3000, temperature=0.1, epsilon=0.05,
      sinkhorn_iterations=3, freeze_prototypes_steps=0, num_small_crops=0,
      small_crop_size=96, small_crop_scale=(0.05, 0.14), projector_over_all_crops=False,
      **siamese.head_options(predictor=False)))


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
