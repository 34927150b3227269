"""Linear probe run type (`protocol="linear_probe"`): a linear classifier on the frozen features
of the encoder `config` names (`evals.features`).

  python -m ssljax.main --config=configs/probe_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_probe

The encoder's variables are constants of the step (`Plan.frozen`), never differentiated or
updated; the head is optionally preceded by BatchNorm without affine (MAE; per group of
`probe.bn_group_size` examples as per GPU in the release), trained with `config.optim` (LARS in
the papers' recipes) and cross-entropy; test top-1 every `eval_every` and at the end
(`linear_probe/top1`, the record's value; the best evaluation's is `best_top1`).
  probe.augment=True   each step crops and flips the images on device, then encodes them (the
                       papers' protocol); the training split is never loaded whole;
  probe.augment=False  features of the un-augmented images are computed once and the head
                       trains on them (fast on CPU; a documented deviation).
"""
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ssljax.config import durations, validation
from ssljax.data import augment, pipeline, sources
from ssljax.evals import batched, features, run_record, top1
from ssljax.models import batch_norm
from ssljax.run import optim
from ssljax.run.plan import Plan
from ssljax.runtime import sharding

NAME = "linear probe"


def _haiku_linear_init(key, shape, dtype=jnp.float32):
  """hk.Linear's default [D, C] kernel: normal(1/sqrt(D)) truncated at 2 sigma, uncorrected."""
  return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) / jnp.sqrt(shape[0])


HEAD_INITS = {"flax_truncated": nn.initializers.truncated_normal(0.01),
              "normal": nn.initializers.normal(0.01), "haiku": _haiku_linear_init,
              "zeros": nn.initializers.zeros}


class LinearHead(nn.Module):
  """[B, D] -> logits [B, num_classes]: optional BatchNorm without affine, then Linear with a
  `HEAD_INITS[kernel_init]` kernel and a zero bias.

  The BatchNorm runs over the whole batch, or with `norm_group_size` over groups of that many
  examples, as on each GPU of MAE's probe (32 GPUs x 512, no SyncBN), its running statistics
  following the first group with PyTorch's unbiased variance (`batch_norm.BatchNorm`).
  """
  num_classes: int
  norm: bool
  kernel_init: str = "flax_truncated"
  norm_group_size: Optional[int] = None

  @nn.compact
  def __call__(self, x, train):
    if self.norm:
      grouped = self.norm_group_size is not None
      x = batch_norm.BatchNorm(use_running_average=not train, use_bias=False, use_scale=False,
                               momentum=0.9, epsilon=1e-6, group_size=self.norm_group_size,
                               running_var="unbiased" if grouped else "biased",
                               name="norm")(x)
    return nn.Dense(self.num_classes, kernel_init=HEAD_INITS[self.kernel_init], name="head")(x)


validate = validation.validate_probe


def frozen_features(config, mesh, train_images=None):
  """(featurizer, jitted encode: (variables, uint8 images [B, H, W, 3]) -> float32 [B, D])."""
  featurizer = features.build(config, mesh, train_images)
  encode = jax.jit(lambda v, x: featurizer.fn(v, x.astype(jnp.float32)),
                   out_shardings=sharding.replicated(mesh))
  return featurizer, encode


def train_views(config, rng, batch, size):
  """The augmented probe's training views: uint8 batch["image"] [B, H, W, 3] -> float32
  [B, size, size, 3] in [0, 255], cropped and flipped; a micro-batch (`example_index`) gets
  the crops its examples have in the whole batch (`augment.micro_batch`)."""
  return augment.crop_flip_batch(rng, batch["image"].astype(jnp.float32), size,
                                 crop_scale=config.probe.crop_scale,
                                 **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))


def plan(config, mesh):
  train_source, test_source, num_classes = run_record.splits(config, "probe")
  pipeline.check_batch_fits(config.input.batch_size, train_source)  # before the features
  # The whole training split in host memory (ImageNet: ~190 GB) only where it is used: the
  # cached features of probe.augment=False, and the PCA and k-means baselines' fits.
  train_images = train_labels = None
  if not config.probe.augment or config.baseline in features.FITTED_BASELINES:
    train_images, train_labels = sources.labelled_arrays(
        sources.eval_source(train_source, config.input))
  test_images, test_labels = sources.labelled_arrays(test_source)
  featurizer, encode = frozen_features(config, mesh, train_images)
  eval_batch, batch_size = config.probe.eval_batch_size, config.input.batch_size
  test_features = batched.map_batches(encode, featurizer.variables, test_images, eval_batch,
                                      mesh)
  if config.probe.augment:
    data = pipeline.from_config(train_source, config)
  else:
    data = pipeline.ArrayBatches(batched.map_batches(
        encode, featurizer.variables, train_images, eval_batch, mesh),
                                 train_labels, batch_size, config.seed)
  schedule = durations.schedule(config, len(train_source))
  tx, learning_rate = optim.make(config.optim, batch_size, schedule.total_steps,
                                 schedule.warmup_steps, schedule.steps_per_epoch)
  head = LinearHead(num_classes, config.probe.head_norm, config.probe.head_init,
                    config.probe.bn_group_size)
  size = featurizer.image_size

  def init(key):
    variables = dict(head.init(key, jnp.zeros((2, test_features.shape[-1])), train=False))
    return variables.pop("params"), variables

  def objective(params, model_state, frozen, batch, rng):
    if "feature" in batch:  # cached features of the un-augmented images
      inputs = batch["feature"]
    else:  # crop and flip on device, then the frozen encoder (a constant of the step)
      inputs = jax.lax.stop_gradient(featurizer.fn(frozen, train_views(config, rng, batch,
                                                                       size)))
    logits, new_state = head.apply({"params": params, **model_state}, inputs, train=True,
                                   mutable=["batch_stats"])
    labels = batch["label"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    return loss, (dict(new_state), {"train_top1": jnp.mean(jnp.argmax(logits, -1) == labels)})

  def logits(variables, x):
    return head.apply(variables, x, train=False)

  return Plan(
      name=NAME, data=data, source=train_source, batch_size=batch_size, schedule=schedule,
      init=init, objective=objective, tx=tx, learning_rate=learning_rate,
      frozen=featurizer.variables,
      evaluators={"linear_probe": top1.Top1Evaluator(logits, test_features, test_labels,
                                                     eval_batch, mesh,
                                                     schedule.eval_every_steps)},
      description=f"a linear head ({num_classes} classes) on {featurizer.description}",
      record=dict(run_record.base_record(config, featurizer.description, config.probe.feature,
                                         train_source, test_source),
                  augment=config.probe.augment, **featurizer.fit),
      result=lambda evals: {"metric": "top1", "value": evals["linear_probe/top1"]},
      best_of="linear_probe/top1")
