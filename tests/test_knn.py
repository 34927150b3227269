"""Weighted kNN against a plain loop over the formula."""
import numpy as np

from ssljax.evals import knn


def _loop_knn(train_x, train_y, test_x, k, temperature, num_classes):
  norm = lambda v: v / np.linalg.norm(v)
  preds = []
  for x in test_x:
    sims = np.array([norm(x) @ norm(t) for t in train_x])
    scores = np.zeros(num_classes)
    for i in np.argsort(-sims)[:k]:
      scores[train_y[i]] += np.exp(sims[i] / temperature)
    preds.append(int(np.argmax(scores)))
  return np.array(preds)


def test_weighted_knn_matches_the_formula():
  rng = np.random.default_rng(0)
  train_x, test_x = rng.normal(size=(200, 16)), rng.normal(size=(50, 16))
  train_y = rng.integers(0, 5, 200)
  for k, t in ((1, 0.07), (20, 0.07), (20, 1.0), (200, 0.1)):
    got = np.asarray(knn.knn_predict(train_x, train_y, test_x, k=k, temperature=t,
                                     num_classes=5))
    np.testing.assert_array_equal(got, _loop_knn(train_x, train_y, test_x, k, t, 5))


def test_accuracy_on_separable_clusters_and_chunking():
  rng = np.random.default_rng(1)
  centres = rng.normal(size=(4, 8)) * 10
  labels = np.repeat(np.arange(4), 30)
  feats = centres[labels] + rng.normal(size=(120, 8))
  acc = knn.knn_accuracy(feats[::2], labels[::2], feats[1::2], labels[1::2], k=5,
                         temperature=0.07, num_classes=4, chunk_size=7)
  assert acc == 1.0
  shuffled = knn.knn_accuracy(feats[::2], rng.permutation(labels[::2]), feats[1::2],
                              labels[1::2], k=5, temperature=0.07, num_classes=4)
  assert shuffled < 0.6
