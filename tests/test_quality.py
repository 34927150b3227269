"""The representations learned are real: kNN on held-out real images."""
import math

import jax

import pytest

from conftest import load_config
from ssljax import train


@pytest.mark.slow
def test_demo_encoder_beats_random_init_on_heldout_digits(tmp_path):
  """The README demo exactly as a user runs it (its config, its steps)."""
  config = load_config("demo")
  summary = train.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1])
  trained = summary["evals"]["knn/knn_top1_k20"]
  random_init = summary["evals"]["random_init/knn/knn_top1_k20"]
  assert trained > random_init + 0.05, (trained, random_init)
  assert summary["final_loss"] < 0.6


@pytest.mark.slow
def test_cifar10_runlocal_reads_real_images_with_their_labels(tmp_path, cifar10_dir):
  config = load_config("mae_cifar10", "runlocal")
  with config.unlocked():
    config.input.data_dir = cifar10_dir
    config.evals.knn.max_train_examples = 2000
    config.evals.knn.max_test_examples = 500
  summary = train.train_and_evaluate(config, str(tmp_path))
  # even a barely trained encoder is far above chance (10%) when images and labels line up
  assert summary["evals"]["knn/knn_top1_k20"] > 0.2
  assert math.isfinite(summary["final_loss"])
