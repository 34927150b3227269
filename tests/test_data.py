"""Data sources and the grain pipeline."""
import os

import numpy as np
import pytest
from PIL import Image

from ssljax.data import pipeline, sources
from ssljax.errors import DataError


def test_digits_are_real_disjoint_splits():
  train, test = sources.digits("train", 32), sources.digits("test", 32)
  assert (len(train), len(test)) == (1497, 300)
  assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
  assert set(np.unique(train.labels)) == set(range(10))
  flat = lambda s: {x.tobytes() for x in s.images}
  assert not flat(train) & flat(test)
  assert train.images.max() == 255 and train.images.min() == 0


def test_npz_source_reads_real_cifar10(cifar10_dir):
  test = sources.npz_dir(cifar10_dir, "test")
  assert len(test) == 10000 and test.num_classes == 10
  example = test[0]
  assert example["image"].shape == (32, 32, 3) and example["image"].dtype == np.uint8
  images, labels = sources.labelled_arrays(test, max_examples=500)
  assert len(images) == 500 and len(set(labels.tolist())) == 10  # a subset across classes


def test_npz_source_errors_name_the_problem(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    sources.npz_dir(str(tmp_path / "missing"), "train")
  with pytest.raises(DataError, match="no train_"):
    sources.npz_dir(str(tmp_path), "train")
  np.savez(tmp_path / "train_00.npz", pixels=np.zeros((2, 4, 4, 3), np.uint8))
  with pytest.raises(DataError, match="needs 'images' and 'labels'"):
    sources.npz_dir(str(tmp_path), "train")
  np.savez(tmp_path / "train_00.npz", images=np.zeros((2, 4, 4), np.float32),
           labels=np.zeros(2))
  with pytest.raises(DataError, match="uint8"):
    sources.npz_dir(str(tmp_path), "train")


def test_image_folder_source(tmp_path):
  rng = np.random.default_rng(0)
  for cls in ("cat", "dog"):
    os.makedirs(tmp_path / "train" / cls)
    for i in range(3):
      Image.fromarray(rng.integers(0, 255, (20, 30, 3), np.uint8)).save(
          tmp_path / "train" / cls / f"{i}.png")
  src = sources.ImageFolderSource(str(tmp_path), "train", 16)
  assert len(src) == 6 and src.num_classes == 2
  assert src[0]["image"].shape == (16, 16, 3) and int(src[5]["label"]) == 1
  with pytest.raises(DataError, match="does not exist"):
    sources.ImageFolderSource(str(tmp_path), "val", 16)


def test_tfds_not_prepared_names_how_to_prepare(tmp_path):
  with pytest.raises(DataError, match="not prepared.*tfds build imagenet2012"):
    sources.TfdsSource("imagenet2012", "train", str(tmp_path), 224)


def _labels_of(iterator, steps):
  return [next(iterator)["label"].tolist() for _ in range(steps)]


def test_global_batch_is_the_same_for_any_number_of_hosts_and_epochs_reshuffle():
  src = sources.ArraySource(np.zeros((20, 2, 2, 3), np.uint8), np.arange(20, dtype=np.int32),
                            20, "ids")
  one = _labels_of(pipeline.train_iterator(src, 8, seed=3, process_index=0, process_count=1), 6)
  halves = [_labels_of(pipeline.train_iterator(src, 8, seed=3, process_index=p,
                                               process_count=2), 6) for p in (0, 1)]
  assert [a + b for a, b in zip(*halves)] == one
  # the first 20 elements are one epoch: every example exactly once, shuffled
  stream = sum(one, [])
  assert sorted(stream[:20]) == list(range(20)) and stream[:20] != list(range(20))
  assert sorted(stream[20:40]) == list(range(20)) and stream[20:40] != stream[:20]


def test_iterator_state_restores_the_same_next_batches():
  src = sources.digits("test", 8)
  it = pipeline.train_iterator(src, 16, seed=0, process_index=0, process_count=1)
  _labels_of(it, 3)
  state = it.get_state()
  expected = _labels_of(it, 3)
  fresh = pipeline.train_iterator(src, 16, seed=0, process_index=0, process_count=1)
  fresh.set_state(state)
  assert _labels_of(fresh, 3) == expected
