"""Weighted kNN top-1 on encoder features (the InstDisc / DINO monitor).

Features are l2-normalised; each test example takes its k most cosine-similar training
examples, each voting for its label with weight exp(similarity / temperature).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssljax import sharding
from ssljax.data import sources


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


def extract_features(encode_fn, variables, images, batch_size, mesh):
  """uint8 [N, H, W, C] -> float32 [N, D] in batches sharded over the mesh (last one padded)."""
  sharding.check_batch_size(batch_size, mesh, "evals.knn.batch_size")
  outputs = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    real = len(chunk)
    if real < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - real,) + chunk.shape[1:],
                                              chunk.dtype)])
    batch = sharding.from_full_host_copy(chunk, sharding.batch_sharding(mesh))
    outputs.append(np.asarray(encode_fn(variables, batch))[:real])
  return np.concatenate(outputs)


class KnnEvaluator:
  """kNN top-1 of `method.encode` features, train split -> test split of the labelled data."""

  def __init__(self, config, eval_config, method, mesh):
    self.every_steps = eval_config.every_steps
    self.random_init_baseline = eval_config.get("random_init_baseline", False)
    self._config, self._mesh = eval_config, mesh
    data_config = config.input.copy_and_resolve_references()
    with data_config.unlocked():
      data_config.update(eval_config.get("input", {}))
    train = sources.get_source(data_config, eval_config.train_split)
    test = sources.get_source(data_config, eval_config.test_split)
    self.num_classes = max(train.num_classes, test.num_classes)
    self._train = sources.labelled_arrays(train, eval_config.get("max_train_examples"))
    self._test = sources.labelled_arrays(test, eval_config.get("max_test_examples"))
    feature = eval_config.feature
    self._encode = jax.jit(
        lambda variables, images: method.encode(config, variables, images)[feature],
        out_shardings=sharding.replicated(mesh))

  def run(self, variables, step):
    del step
    c = self._config
    train_features = extract_features(self._encode, variables, self._train[0], c.batch_size,
                                      self._mesh)
    test_features = extract_features(self._encode, variables, self._test[0], c.batch_size,
                                     self._mesh)
    scalars = {}
    for k in c.k:
      scalars[f"knn_top1_k{k}"] = knn_accuracy(
          train_features, self._train[1], test_features, self._test[1], k=k,
          temperature=c.temperature, num_classes=self.num_classes)
    return scalars, {}
