"""Instance discrimination (Wu, Xiong, Yu & Lin, CVPR 2018, "NPID") as pure functions.

Every training image is its own class. The encoder (`siamese.build_backbone` and one Linear to
`npid.dim` = 128, l2-normalised) maps an augmented view of image i to v [B, dim]; a memory bank
holds one unit feature per training image, and the non-parametric softmax
    P(i | v) = exp(bank_i . v / t) / Z,   t = `npid.temperature` (0.07)
is trained by `npid.loss`:
  "softmax"  the exact cross-entropy over the whole bank, Z = sum_j exp(bank_j . v / t)
             (N logits per example: fine for CIFAR-10);
  "nce"      noise-contrastive estimation with m = `npid.negatives` (4096) bank rows drawn
             uniformly per example (noise P_n = 1/N): h(j) = P(j|v) / (P(j|v) + m / N), loss
             -log h(i) - sum_k log(1 - h(j_k)), with Z a constant: the paper's Monte Carlo
             estimate N * mean_k exp(bank_jk . v / t) over the negatives, averaged over the
             first `npid.nce_z_batches` batches (1: the release's first batch; micro-batches
             under gradient accumulation) and frozen after; it is model state ("nce").
`npid.proximal_weight` lambda adds the paper's proximal term lambda * ||v - bank_i||^2 (its
section 3.4; 0, the release's default, leaves it out). After the loss the batch's rows move
(the loss's new state): bank_i <- normalise(m bank_i + (1 - m) v), m = `npid.bank_momentum`
(0.5); an index twice in one global batch (a batch across an epoch boundary) keeps its last
example's update.

Model state: "memory_bank" [N', dim], sharded over the batch axes along N' (`SHARDED_STATE`)
and "memory_bank_size" int32 [] = N, made by `fit_state` from the training split: N random
unit vectors (normalised Gaussians), rows padded to N' a multiple of `BANK_ROW_MULTIPLE` so the
bank divides over any power-of-two device count up to it; padding rows are never drawn nor
in the softmax, so the padding changes no number. Each batch's "index" [B] (the example's
position in the training split, `ssljax.data.pipeline`) names its rows.

Deviations from the release (lemniscate.pytorch): Z is estimated from the negatives only (the
paper's formula; the release averages over the positive column too); the bank starts as unit
vectors (the release: uniform entries in +-sqrt(3 / dim), not normalised); colour jitter runs
before grayscale (the release's ImageNet transform has grayscale first).
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import siamese

SHARDED_STATE = ("memory_bank",)
BANK_ROW_MULTIPLE = 1024
LOSSES = ("nce", "softmax")
NEGATIVES_KEY_DATA = 1  # the negatives' key is fold_in(step key, this); the view takes the key


def default_config():
  """`config.npid`: the paper's 128-d embedding, t 0.07, NCE with 4096 negatives and Z from
  the first batch, bank momentum 0.5, no proximal term."""
  return ml_collections.ConfigDict(dict(
      dim=128, loss="nce", temperature=0.07, negatives=4096, nce_z_batches=1,
      bank_momentum=0.5, proximal_weight=0.0, head_init=siamese.HEAD_OPTIONS["head_init"]))


def _head(c):
  """The embedding as a Siamese head config: one Linear (with bias) to `c.dim`, no BN."""
  return ml_collections.ConfigDict(dict(
      dim=c.dim, projector_layers=1, projector_hidden_bn=False, projector_last_bn=False,
      head_init=c.head_init, projector_output_bias=True, projector_last_bn_scale=False))


def validate(config):
  siamese.validate_network(config, "npid")
  c = config.npid
  if c.loss not in LOSSES:
    raise ConfigError(f"npid.loss={c.loss!r} is unknown: use {' or '.join(LOSSES)}")
  checks = (("dim", c.dim >= 1, "an embedding width >= 1 (128 in the paper)"),
            ("temperature", c.temperature > 0, "a temperature > 0 (0.07 in the paper)"),
            ("negatives", c.negatives >= 1, "at least 1 negative (4096 in the paper)"),
            ("nce_z_batches", c.nce_z_batches >= 1, "at least 1 batch (1 in the release)"),
            ("bank_momentum", 0 <= c.bank_momentum < 1,
             "a momentum in [0, 1) (0.5 in the paper)"),
            ("proximal_weight", c.proximal_weight >= 0, "a weight >= 0 (0 = no proximal term)"))
  for field, ok, fix in checks:
    if not ok:
      raise ConfigError(f"npid.{field}={c[field]!r} is out of range: use {fix}")


def padded_rows(size):
  """N -> N' >= N, the next multiple of `BANK_ROW_MULTIPLE`."""
  return -(-size // BANK_ROW_MULTIPLE) * BANK_ROW_MULTIPLE


def initial_bank(size, dim, seed):
  """[padded_rows(size), dim] float32: `size` random unit vectors, then zero padding rows."""
  rows = np.random.default_rng([seed, size]).standard_normal((size, dim))
  bank = np.zeros((padded_rows(size), dim), np.float32)
  bank[:size] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
  return bank


def fit_state(config, source):
  """The memory bank, one random unit row per example of the training split `source`."""
  return {"memory_bank": initial_bank(len(source), config.npid.dim, config.seed),
          "memory_bank_size": np.int32(len(source))}


def init(config, rng, image_shape):
  """Backbone and embedding; the NCE normaliser Z (0 until its first batch)."""
  variables = siamese.init_network(config, siamese.build_network(config, _head(config.npid)),
                                   rng, image_shape)
  variables["nce"] = {"z": jnp.zeros((), jnp.float32), "z_batches": jnp.zeros((), jnp.int32)}
  return variables


def softmax_loss(v, bank, index, size, temperature):
  """v [B, d] unit, bank [N', d], index [B] -> mean cross-entropy of class index over the
  first `size` rows: -log exp(bank_i . v / t) / sum_{j < size} exp(bank_j . v / t)."""
  logits = v @ bank.T / temperature
  logits = jnp.where(jnp.arange(bank.shape[0]) < size, logits, -jnp.inf)
  positive = jnp.take_along_axis(logits, index[:, None], axis=1)[:, 0]
  return jnp.mean(jax.nn.logsumexp(logits, axis=1) - positive)


def nce_logits(v, bank, index, negatives, temperature):
  """-> (positive logits [B], negatives' logits [B, m]): bank rows . v / t."""
  positive = jnp.sum(v * bank[index], axis=-1) / temperature
  return positive, jnp.einsum("bd,bkd->bk", v, bank[negatives]) / temperature


def nce_z_estimate(negative_logits, size):
  """The paper's Z = N * mean_k exp(negative logit) over the batch's negatives [B, m]."""
  return size * jnp.mean(jnp.exp(negative_logits))


def nce_loss(positive, negative, size, z):
  """NCE with m uniform noise samples: positive [B], negative [B, m] logits (/ t), Z ->
  mean over the batch of -log h(i) - sum_k log(1 - h(j_k)), h = P / (P + m / N), P = e^s / Z.
  In log space: log h = s' - logaddexp(s', log(m / N)), s' = s - log Z."""
  log_noise = jnp.log(negative.shape[1] / size)
  log_z = jnp.log(z)
  log_h = positive - log_z - jnp.logaddexp(positive - log_z, log_noise)
  log_not_h = log_noise - jnp.logaddexp(negative - log_z, log_noise)
  return -jnp.mean(log_h + jnp.sum(log_not_h, axis=1))


def updated_z(nce_state, estimate, batches):
  """The running mean of Z over the first `batches` batches, then frozen: new {"z", "z_batches"}."""
  count = nce_state["z_batches"]
  fitting = count < batches
  z = jnp.where(fitting, nce_state["z"] + (estimate - nce_state["z"]) / (count + 1),
                nce_state["z"])
  return {"z": z, "z_batches": count + fitting.astype(count.dtype)}


def bank_update(bank, index, v, momentum):
  """bank [N', d], index [B], v [B, d] -> bank with row index_b set to
  normalise(momentum * bank_b + (1 - momentum) * v_b); an index repeated in the batch takes its
  last example's row, every other row is untouched."""
  rows = siamese.l2_normalize(momentum * bank[index] + (1 - momentum) * v.astype(bank.dtype))
  position = jnp.arange(index.shape[0])
  repeated_later = jnp.any((index[:, None] == index[None, :])
                           & (position[:, None] < position[None, :]), axis=1)
  target = jnp.where(repeated_later, bank.shape[0], index)  # out of bounds: dropped
  return bank.at[target].set(rows, mode="drop")


def negative_indices(rng, count, size, batch, config):
  """[B, count] bank rows drawn uniformly from [0, size), one key per example (the whole
  batch's keys for a micro-batch, `augment.example_keys`)."""
  keys = augment.example_keys(rng, batch["index"].shape[0], **augment.micro_batch(batch, config))
  return jax.vmap(lambda k: jax.random.randint(k, (count,), 0, size))(keys)


def embed(modules, params, stats, images, train):
  """Normalised images -> ({"backbone": [B, D], "embedding": [B, dim] unit}, new stats)."""
  out, new_stats = siamese.apply_network(modules, params, stats, images, train)
  return {"backbone": out["backbone"], "embedding": siamese.l2_normalize(out["z"])}, new_stats


def loss(config, params, state, batch, rng):
  """uint8 batch["image"], int batch["index"] -> (loss, (model state, metrics))."""
  c = config.npid
  (x,) = augment.augmented_views(rng, batch["image"], config.input.image_size, config.aug, 1,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))
  out, stats = embed(siamese.build_network(config, _head(c)), params, state["batch_stats"], x,
                     train=True)
  v, index = out["embedding"], batch["index"]
  bank, size = jax.lax.stop_gradient(state["memory_bank"]), state["memory_bank_size"]
  new_state = dict(state, batch_stats=stats)
  metrics = {}
  if c.loss == "softmax":
    value = softmax_loss(v, bank, index, size, c.temperature)
  else:
    negatives = negative_indices(jax.random.fold_in(rng, NEGATIVES_KEY_DATA), c.negatives,
                                 size, batch, config)
    positive, negative = nce_logits(v, bank, index, negatives, c.temperature)
    new_state["nce"] = updated_z(state["nce"], nce_z_estimate(
        jax.lax.stop_gradient(negative), size), c.nce_z_batches)
    value = nce_loss(positive, negative, size, new_state["nce"]["z"])
    metrics["nce_z"] = new_state["nce"]["z"]
  if c.proximal_weight:
    value += c.proximal_weight * jnp.mean(jnp.sum((v - bank[index]) ** 2, axis=-1))
  metrics["bank_similarity"] = jnp.mean(jnp.sum(v * bank[index], axis=-1))
  new_state["memory_bank"] = bank_update(bank, index, jax.lax.stop_gradient(v),
                                         c.bank_momentum)
  return value, (new_state, dict(metrics, loss=value, output_std=siamese.output_std(v)))


def encode(config, variables, images):
  """uint8 [B, H, W, C] -> {"backbone": [B, D], "embedding": [B, dim] unit} in eval mode."""
  x = augment.eval_view(images, config.input.image_size)
  out, _ = embed(siamese.build_network(config, _head(config.npid)), variables["params"],
                 variables["batch_stats"], x, train=False)
  return out


def flops_per_example(config):
  """One view forward and backward through backbone and embedding, plus NCE's m + 1 bank dot
  products (the full softmax's N per example are not counted: N is the dataset's)."""
  c = config.npid
  total = 3 * siamese.network_forward_flops(config, _head(c), config.input.image_size)
  return total + (3 * 2 * c.dim * (c.negatives + 1) if c.loss == "nce" else 0)


torch_parts = siamese.torch_parts
finetune_encoder = siamese.finetune_encoder
