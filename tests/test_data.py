"""Data sources and the grain pipeline."""
import io
import os

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_images

from ssljax.config import sections
from ssljax.data import decode, pipeline, sources
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
  src = sources.ImageFolderSource(str(tmp_path), "train", sources.View("eval", 16))
  assert len(src) == 6 and src.num_classes == 2
  assert src[0]["image"].shape == (16, 16, 3) and int(src[5]["label"]) == 1
  with pytest.raises(DataError, match="does not exist"):
    sources.ImageFolderSource(str(tmp_path), "val", sources.View("eval", 16))


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


@pytest.mark.parametrize("num_workers", [0, 2])
def test_corrupt_images_are_skipped_counted_and_nothing_else_is_dropped(tmp_path, caplog,
                                                                        num_workers):
  corrupt = _folder_with_two_corrupt_files(tmp_path)
  src = sources.ImageFolderSource(str(tmp_path), "train", sources.View("train", 8, canvas_size=8))
  assert len(src) == 10
  batches = pipeline.train_iterator(src, 10, seed=0, process_index=0, process_count=1,
                                    num_threads=2, num_workers=num_workers)
  epoch = next(batches)  # one epoch: every file once, in a shuffled order
  assert sorted(src.skipped_files) == sorted(corrupt)
  # Each corrupt file was replaced by the next readable one; all 8 readable ones are there.
  values = {(int(i[0, 0, 0]), int(l)) for i, l in zip(epoch["image"], epoch["label"])}
  assert values == {(10 * i + 100 * c, c) for c in (0, 1) for i in range(4)}
  assert sum(corrupt[0] in r.message for r in caplog.records) == 1  # warned once per file
  next(batches)
  assert len(src.skipped_files) == 2  # counted once each, not once per read
  batches.close()
  evaluation = src.with_view(sources.View("eval", 8))  # e.g. the kNN evaluator's copy
  sources.labelled_arrays(evaluation)
  assert sorted(evaluation.skipped_files) == sorted(corrupt)
  assert sum(corrupt[0] in r.message for r in caplog.records) == 1  # still warned once


def test_corrupt_image_fails_fast_when_configured(tmp_path):
  corrupt = _folder_with_two_corrupt_files(tmp_path)
  src = sources.ImageFolderSource(str(tmp_path), "train", sources.View("train", 8, canvas_size=8),
                                   corrupt_images="fail")
  with pytest.raises(DataError) as error:
    next(pipeline.train_iterator(src, 10, seed=0, process_index=0, process_count=1))
  message = str(error.value)  # one line, without the notes grain appends when re-raising
  assert message.split()[1] in corrupt and "\n" not in message
  assert " cannot be decoded (" in message and message.endswith(
      ": replace or delete it, or set input.corrupt_images=skip")


def test_tfds_not_prepared_names_how_to_prepare(tmp_path):
  with pytest.raises(DataError, match="not prepared.*tfds build imagenet2012"):
    sources.TfdsSource("imagenet2012", "train", str(tmp_path), sources.View("eval", 224))


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


def _photo_folder(root, sizes, classes=("a", "b")):
  """root/train/<class>/*.jpg: crops of a real photograph at the given (h, w) sizes."""
  photo = load_sample_images().images[1]
  for i, (h, w) in enumerate(sizes):
    folder = root / "train" / classes[i % len(classes)] if classes else root / "train"
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(photo[i:i + h, 2 * i:2 * i + w]).save(folder / f"{i}.jpg", quality=90)


SIZES = [(40, 60), (60, 40), (50, 50), (30, 64), (64, 30), (45, 64), (64, 48), (33, 47)]


def _batches(src, steps, **kwargs):
  it = pipeline.train_iterator(src, 4, seed=1, **kwargs)
  out = [next(it) for _ in range(steps)]
  return it, out


def test_canvas_batches_are_the_same_for_any_workers_hosts_and_after_resume(tmp_path):
  _photo_folder(tmp_path, SIZES)
  src = sources.ImageFolderSource(str(tmp_path), "train", sources.View("train", 32,
                                                                       canvas_size=64))
  _, one = _batches(src, 4, process_index=0, process_count=1)
  assert one[0]["image"].shape == (4, 64, 64, 3)
  assert {tuple(e) for b in one for e in b["extent"]} == set(SIZES)  # the whole images
  it, workers = _batches(src, 2, process_index=0, process_count=1, num_workers=2)
  state = it.get_state()
  workers += [next(it) for _ in range(2)]
  it.close()
  resumed = pipeline.train_iterator(src, 4, seed=1, process_index=0, process_count=1,
                                    num_workers=2)
  resumed.set_state(state)
  after = [next(resumed) for _ in range(2)]
  resumed.close()
  halves = [_batches(src, 4, process_index=p, process_count=2)[1] for p in (0, 1)]
  for step in range(4):
    for key in ("image", "extent", "label"):
      np.testing.assert_array_equal(workers[step][key], one[step][key])
      np.testing.assert_array_equal(
          np.concatenate([halves[0][step][key], halves[1][step][key]]), one[step][key])
  for got, expected in zip(after, one[2:]):
    np.testing.assert_array_equal(got["image"], expected["image"])


@pytest.mark.parametrize("layout", ["split", "root"])
def test_unlabelled_folder_pretrains_and_labelled_runs_refuse_it(tmp_path, layout):
  _photo_folder(tmp_path, SIZES, classes=())
  root = tmp_path if layout == "split" else tmp_path / "train"
  src = sources.ImageFolderSource(str(root), "train", sources.View("train", 32, canvas_size=96))
  assert not src.labelled and src.num_classes == 0 and len(src) == len(SIZES)
  batch = next(pipeline.train_iterator(src, 4, seed=0, process_index=0, process_count=1))
  assert (batch["label"] == sources.UNLABELLED).all() and batch["image"].shape == (4, 96, 96, 3)
  with pytest.raises(DataError) as error:
    sources.require_labels(src, "a linear_probe run")
  assert "\n" not in str(error.value) and "unlabelled image folder" in str(error.value)
  assert str(error.value).endswith("root/split/class/ layout")


def test_tfds_array_record_dataset_reads_through_the_imagenet_source(tmp_path):
  """A small dataset in array_record format (written by TFDS without TensorFlow: the images
  are given as encoded JPEG bytes), read through `input.source="tfds"`."""
  tfds = pytest.importorskip("tensorflow_datasets")
  photo = load_sample_images().images[0]

  class TinyPhotos(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
          "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {"train": self._generate_examples(6), "validation": self._generate_examples(3)}

    def _generate_examples(self, count):
      for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(photo[:100 + 20 * i, :150]).save(buffer, "JPEG", quality=90)
        buffer.seek(0)
        yield i, {"image": buffer, "label": i % 3}

  TinyPhotos(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  config = sections.base_config().input
  config.source, config.name, config.data_dir = "tfds", "tiny_photos", str(tmp_path)
  config.image_size, config.canvas_size = 64, 256
  train = sources.get_source(config, "train")
  assert len(train) == 6 and train.num_classes == 3
  batch = next(pipeline.train_iterator(train, 6, seed=0, process_index=0, process_count=1))
  assert batch["image"].shape == (6, 256, 256, 3)
  assert sorted(map(tuple, batch["extent"])) == [(100 + 20 * i, 150) for i in range(6)]
  images, labels = sources.labelled_arrays(sources.get_source(config, "validation", "eval"))
  assert images.shape == (3, 64, 64, 3) and sorted(labels.tolist()) == [0, 1, 2]
  expected = decode.eval_image(np.asarray(Image.open(io.BytesIO(_jpeg_of(photo[:100, :150])))),
                               64, 0.875, "bilinear")
  assert np.abs(images[list(labels).index(0)].astype(int) - expected).max() <= 1


def _jpeg_of(image):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, "JPEG", quality=90)
  return buffer.getvalue()
