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


def _folder_with_two_corrupt_files(root):
  """train/{cat,dog}/ with 4 readable PNGs each, plus a garbage .jpg and a truncated .png."""
  rng = np.random.default_rng(0)
  for cls in ("cat", "dog"):
    os.makedirs(root / "train" / cls)
    for i in range(4):
      Image.fromarray(np.full((8, 8, 3), 10 * i + 100 * (cls == "dog"), np.uint8)).save(
          root / "train" / cls / f"{i}.png")
  (root / "train" / "cat" / "1b.jpg").write_bytes(b"\xff\xd8 not a jpeg")
  Image.fromarray(rng.integers(0, 255, (64, 64, 3), np.uint8)).save(root / "t.png")
  (root / "train" / "dog" / "2b.png").write_bytes((root / "t.png").read_bytes()[:200])
  return [str(root / "train" / "cat" / "1b.jpg"), str(root / "train" / "dog" / "2b.png")]


def test_corrupt_images_are_skipped_counted_and_nothing_else_is_dropped(tmp_path, caplog):
  corrupt = _folder_with_two_corrupt_files(tmp_path)
  src = sources.ImageFolderSource(str(tmp_path), "train", 8)
  assert len(src) == 10
  batches = pipeline.train_iterator(src, 10, seed=0, process_index=0, process_count=1,
                                    num_threads=2)
  epoch = next(batches)  # one epoch: every file once, in a shuffled order
  assert sorted(src.skipped_files) == sorted(corrupt)
  # Each corrupt file was replaced by the next readable one; all 8 readable ones are there.
  values = {(int(i[0, 0, 0]), int(l)) for i, l in zip(epoch["image"], epoch["label"])}
  assert values == {(10 * i + 100 * c, c) for c in (0, 1) for i in range(4)}
  assert sum(corrupt[0] in r.message for r in caplog.records) == 1  # warned once per file
  next(batches)
  assert len(src.skipped_files) == 2  # counted once each, not once per read


def test_corrupt_image_fails_fast_when_configured(tmp_path):
  corrupt = _folder_with_two_corrupt_files(tmp_path)
  src = sources.ImageFolderSource(str(tmp_path), "train", 8, corrupt_images="fail")
  with pytest.raises(DataError) as error:
    next(pipeline.train_iterator(src, 10, seed=0, process_index=0, process_count=1))
  message = str(error.value)  # one line, without the notes grain appends when re-raising
  assert message.split()[1] in corrupt and "\n" not in message
  assert " cannot be decoded (" in message and message.endswith(
      ": replace or delete it, or set input.corrupt_images=skip")


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
