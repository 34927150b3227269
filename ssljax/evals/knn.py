"""Weighted kNN top-1 on encoder features (the InstDisc / DINO monitor), during pre-training and
as an evaluation-only run (`protocol="knn"`), with one metric schema: `top1_k{k}_t{t}` under the
evaluator's name (`knn/top1_k20_t0.07`).

Features are l2-normalised; each test example takes its k most cosine-similar training
examples, each voting for its label with weight exp(similarity / temperature).
"""
import functools

import jax
import jax.numpy as jnp

from ssljax.data import sources
from ssljax.evals import batched
from ssljax.runtime import sharding


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def knn_predict(train_features, train_labels, test_features, *, k, temperature, num_classes):
  """[N, D], [N], [M, D] -> predicted labels [M] by weighted kNN vote."""
  normalise = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  sims = normalise(test_features) @ normalise(train_features).T
  top_sims, top_index = jax.lax.top_k(sims, min(k, train_features.shape[0]))
  votes = jax.nn.one_hot(train_labels[top_index], num_classes) * jnp.exp(
      top_sims / temperature)[..., None]
  return jnp.argmax(votes.sum(axis=1), axis=-1)


def knn_accuracy(train_features, train_labels, test_features, test_labels, *, k, temperature,
                 num_classes, chunk_size=1024):
  """Top-1 accuracy in [0, 1]; test examples go in chunks to bound the [M, N] similarities."""
  correct = 0
  for start in range(0, len(test_labels), chunk_size):
    pred = knn_predict(train_features, train_labels, test_features[start:start + chunk_size],
                       k=k, temperature=temperature, num_classes=num_classes)
    correct += int(jnp.sum(pred == jnp.asarray(test_labels[start:start + chunk_size])))
  return correct / len(test_labels)


def knn_scalars(train, test, ks, temperatures, num_classes):
  """{"top1_k{k}_t{t}": accuracy} for (features [N, D], labels [N]) train and test pairs."""
  return {f"top1_k{k}_t{t}": knn_accuracy(train[0], train[1], test[0], test[1], k=k,
                                          temperature=t, num_classes=num_classes)
          for k in ks for t in temperatures}


class KnnEvaluator:
  """kNN top-1 of `encode(variables, images) -> [B, D]` features, train -> test split.

  `knn_config` has k (a tuple), temperatures (a tuple) and batch_size; `train` and `test` are
  (uint8 images [N, H, W, 3], labels [N]).
  """

  def __init__(self, encode, train, test, num_classes, knn_config, mesh, every_steps,
               random_init_baseline=False):
    self.every_steps = every_steps
    self.random_init_baseline = random_init_baseline
    self._encode = jax.jit(encode, out_shardings=sharding.replicated(mesh))
    self._train, self._test, self.num_classes = train, test, num_classes
    self._config, self._mesh = knn_config, mesh

  @classmethod
  def from_config(cls, config, eval_config, method, mesh, every_steps):
    """The pre-training monitor `config.evals.<name>` (type "knn") on `method.encode`."""
    data_config = config.input.copy_and_resolve_references()
    with data_config.unlocked():
      data_config.update(eval_config.get("input", {}))
    train = sources.get_source(data_config, eval_config.train_split, "eval",
                               "evals.knn.train_split")
    test = sources.get_source(data_config, eval_config.test_split, "eval",
                              "evals.knn.test_split")
    for source in (train, test):
      sources.require_labels(source, "the kNN evaluator (config.evals)")
    feature = eval_config.feature
    return cls(lambda variables, images: method.encode(config, variables, images)[feature],
               sources.labelled_arrays(train, eval_config.get("max_train_examples")),
               sources.labelled_arrays(test, eval_config.get("max_test_examples")),
               max(train.num_classes, test.num_classes), eval_config, mesh, every_steps,
               eval_config.get("random_init_baseline", False))

  def features(self, variables, images):
    """uint8 [N, H, W, 3] -> float32 [N, D]."""
    return batched.map_batches(self._encode, variables, images, self._config.batch_size,
                               self._mesh)

  def run(self, variables, step):
    del step
    train = (self.features(variables, self._train[0]), self._train[1])
    test = (self.features(variables, self._test[0]), self._test[1])
    return knn_scalars(train, test, self._config.k, self._config.temperatures,
                       self.num_classes), {}
