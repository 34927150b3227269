"""Host-side data sources: random access to {"image": uint8, "label": int32, ...}.

Four kinds, chosen by `config.input.source`:
  "digits"        scikit-learn's 1,797 real handwritten digits, upsampled (ships with
                  scikit-learn: the embedded default, no download)
  "npz"           a directory of .npz shards with `images` [N, H, W, 3] uint8 and `labels` [N]
                  (`{split}_*.npz` or `{split}.npz`, e.g. the CIFAR-10 copy in shared/data)
  "tfds"          a prepared TFDS dataset via `tfds.data_source` (array_record; no TensorFlow)
  "image_folder"  `root/split/class/*.jpg|png|...`, or without class folders (`root/split/*`
                  or `root/*`: unlabelled, for pre-training only)
A source is opened for one of two views (`ssljax.data.decode`):
  "train"  in-memory arrays as stored; decoded files as the whole image (longer side at most
           `canvas_size`), which the pipeline places in a canvas [C, C, 3] with its extent
           (h, w): random crops are sampled on device
  "eval"   [image_size, image_size, 3]: Resize(image_size / crop_pct) + CenterCrop
"""
import copy
import glob
import logging
import os
import threading
from concurrent import futures

import numpy as np
from PIL import Image

from ssljax.data import decode
from ssljax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KINDS = ("digits", "npz", "tfds", "image_folder")
VIEWS = ("train", "eval")
NPZ_LAYOUT = "images uint8 [N, H, W, 3] and labels int [N]"
CORRUPT_IMAGE_POLICIES = ("skip", "fail")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
UNLABELLED = -1  # the label of every image of an unlabelled folder


class View:
  """How a host turns decoded bytes into an example: "train" (canvas) or "eval" (final)."""

  def __init__(self, kind, image_size, *, canvas_size=512, crop_pct=0.875,
               interpolation="bilinear"):
    if kind not in VIEWS:
      raise ValueError(f"view {kind!r} is not one of {VIEWS}")
    self.kind, self.size, self.canvas_size = kind, image_size, canvas_size
    self.crop_pct, self.interpolation = crop_pct, interpolation

  @classmethod
  def from_config(cls, kind, input_config):
    return cls(kind, input_config.image_size, canvas_size=input_config.canvas_size,
               crop_pct=input_config.crop_pct, interpolation=input_config.interpolation)

  @property
  def canvas(self):
    """The canvas side the pipeline places training images in; None for evaluation views."""
    return self.canvas_size if self.kind == "train" else None

  def from_bytes(self, data):
    """Image bytes -> {"image"}: the whole image fitted to the canvas (train; the pipeline
    places it, `decode.canvas_batch`), or the evaluation view [size, size, 3]."""
    if self.kind == "train":
      return {"image": decode.fitted(data, self.canvas_size)}
    return {"image": decode.eval_view(data, self.size, self.crop_pct, self.interpolation)}


def require_labels(source, purpose):
  """DataError unless every example of `source` has a class label."""
  if not getattr(source, "labelled", True):
    raise DataError(f"{purpose} needs class labels, but {source.name} is an unlabelled image "
                    "folder: point input.data_dir at a root/split/class/ layout")


class ArraySource:
  """In-memory images uint8 [N, H, W, 3] and labels int32 [N] (the "train" view: as stored)."""

  canvas = None  # examples already have one shape

  def __init__(self, images, labels, num_classes, name):
    self.images, self.labels = images, labels
    self.num_classes, self.name = num_classes, name

  def eval_view(self, view):
    """This source with every image in the evaluation view (the same object where that is
    the image as stored)."""
    height, width = self.images.shape[1:3]
    resized, crop = decode.eval_geometry(height, width, view.size, view.crop_pct)
    if resized == (height, width) and crop == (0, 0):
      return self
    images = np.stack([decode.eval_image(image, view.size, view.crop_pct, view.interpolation)
                       for image in self.images])
    return ArraySource(images, self.labels, self.num_classes, self.name)

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, index):
    return {"image": self.images[index], "label": self.labels[index]}


def digits(split, image_size, test_fraction=1 / 6, split_field="input.split"):
  """scikit-learn's 8x8 handwritten digits, upsampled bilinearly to `image_size`, as RGB.

  A fixed permutation splits the 1,797 images into "train" (1,497) and "test" (300).
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  data = load_digits()
  order = np.random.default_rng(0).permutation(len(data.target))
  num_test = int(round(len(order) * test_fraction))
  splits = {"train": order[num_test:], "test": order[:num_test]}
  if split not in splits:
    raise DataError(f"digits has splits 'train' and 'test', not {split!r}: fix "
                    f"{split_field}")
  pixels = (data.images[splits[split]] * (255.0 / 16.0)).round().astype(np.uint8)
  images = np.stack([
      np.asarray(Image.fromarray(p).resize((image_size, image_size), Image.BILINEAR))
      for p in pixels])
  images = np.repeat(images[..., None], 3, axis=-1)
  return ArraySource(images, data.target[splits[split]].astype(np.int32), 10, f"digits:{split}")


def npz_dir(path, split, split_field="input.split"):
  """All `{split}_*.npz` / `{split}.npz` shards under `path`, concatenated in file order."""
  if not path or not os.path.isdir(path):
    raise DataError(f"npz data directory {path!r} does not exist: set input.data_dir to a "
                    "directory of .npz shards")
  files = sorted(glob.glob(os.path.join(path, f"{split}_*.npz")))
  files += glob.glob(os.path.join(path, f"{split}.npz"))
  if not files:
    raise DataError(f"no {split}_*.npz or {split}.npz in {path}: check input.data_dir and "
                    f"{split_field}={split!r}")
  images, labels = [], []
  for f in files:
    try:
      with np.load(f) as shard:
        if "images" not in shard or "labels" not in shard:
          raise DataError(f"{f} has arrays {sorted(shard.files)}, not 'images' and 'labels': "
                          f"save it with {NPZ_LAYOUT}")
        images.append(shard["images"])
        labels.append(shard["labels"])
    except DataError:
      raise
    except Exception as e:  # zip/pickle errors from a damaged file
      raise DataError(f"cannot read {f} ({type(e).__name__}: {e}); replace the file") from e
    if images[-1].ndim != 4 or images[-1].shape[-1] != 3 or images[-1].dtype != np.uint8:
      raise DataError(f"{f} holds images {images[-1].dtype} {list(images[-1].shape)}: save "
                      f"it with {NPZ_LAYOUT}")
    labels[-1] = _checked_labels(f, labels[-1], len(images[-1]))
  if len({x.shape[1:] for x in images}) > 1:
    raise DataError(f"the {split} shards in {path} hold images of different sizes "
                    f"{sorted({x.shape[1:3] for x in images})}: save them at one size")
  labels = np.concatenate(labels).astype(np.int32)
  if not len(labels):
    raise DataError(f"the {split} shards in {path} hold no images: check input.data_dir")
  return ArraySource(np.concatenate(images), labels, int(labels.max()) + 1, f"npz:{path}:{split}")


MAX_CLASSES = 100_000


def _checked_labels(file, labels, num_images):
  """labels [N] or [N, 1] of whole numbers in [0, MAX_CLASSES) -> int64 [N]; else DataError."""
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  fix = f"save it with {NPZ_LAYOUT}"
  if labels.ndim != 1 or len(labels) != num_images:
    raise DataError(f"{file} has labels of shape {list(labels.shape)} for {num_images} images: "
                    f"{fix}, one label per image")
  if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)
          or labels.dtype == bool):
    raise DataError(f"{file} has labels of dtype {labels.dtype}: {fix}")
  if len(labels) and (np.any(labels != np.round(labels)) or labels.min() < 0
                      or labels.max() >= MAX_CLASSES):
    bad = labels[(labels != np.round(labels)) | (labels < 0) | (labels >= MAX_CLASSES)][0]
    raise DataError(f"{file} has label {bad.item()!r}: labels are class indices 0, 1, ... (whole "
                    f"numbers below {MAX_CLASSES}); {fix}")
  return labels.astype(np.int64)


class TfdsSource:
  """A prepared TFDS dataset read through `tfds.data_source` (array_record). Images are read
  as their stored bytes (no TFDS decoding) and decoded here for `view`."""

  def __init__(self, name, split, data_dir, view):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    root = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
        "~/tensorflow_datasets")
    how = (f"prepare it with `tfds build {name.split('/')[0]} --file_format=array_record "
           f"--data_dir={root}`" + (" (ImageNet needs its tarballs, downloaded by hand from "
                                     "image-net.org, in --manual_dir)"
                                     if name.startswith("imagenet") else "") +
           " or point input.data_dir at a prepared copy")
    if not os.path.isdir(os.path.join(root, name.split(":")[0].split("/")[0])):
      raise DataError(f"TFDS dataset {name!r} is not prepared in {root}: {how}")
    try:
      self._source = tfds.data_source(name, split=split, data_dir=root, download=False,
                                      decoders={"image": tfds.decode.SkipDecoding()})
    except Exception as e:
      raise DataError(f"TFDS dataset {name!r} split {split!r} cannot be read from {root} "
                      f"({str(e).splitlines()[0]}): {how}") from e
    self.num_classes = self._source.dataset_info.features["label"].num_classes
    self.view, self.name = view, f"tfds:{name}:{split}"

  def __len__(self):
    return len(self._source)

  @property
  def canvas(self):
    return self.view.canvas

  def __getitem__(self, index):
    example = self._source[index]
    return dict(self.view.from_bytes(example["image"]), label=np.int32(example["label"]))

  def with_view(self, view):
    other = copy.copy(self)
    other.view = view
    return other


def _list_images(directory):
  return [os.path.join(directory, f) for f in sorted(os.listdir(directory))
          if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(directory, f))]


class ImageFolderSource:
  """`root/split/class_name/*.jpg|png|...`; classes are the sorted sub-directory names.

  Without class folders (`root/split/*.jpg`, or `root/*.jpg` when there is no `split` folder)
  the folder is unlabelled (`labelled` False, every label UNLABELLED): pre-training reads it,
  runs that need labels refuse it (`require_labels`).

  A file that cannot be decoded is, with `corrupt_images="skip"`, replaced by the next
  readable file in the listing (so batches keep their size and nothing else is dropped); the
  example names the files it skipped ("skipped"), which the pipeline records in
  `skipped_files` and logs once each; with "fail" it is a DataError naming the file.
  """

  def __init__(self, root, split, view, corrupt_images="skip"):
    if corrupt_images not in CORRUPT_IMAGE_POLICIES:
      raise ConfigError(f"input.corrupt_images={corrupt_images!r} is unknown: use one of "
                        f"{', '.join(CORRUPT_IMAGE_POLICIES)}")
    self.corrupt_images, self.view = corrupt_images, view
    self.skipped_files = set()
    self._lock = threading.Lock()
    split_dir = os.path.join(root or "", split)
    if root and not os.path.isdir(split_dir) and os.path.isdir(root) and _list_images(root):
      split_dir = root  # root/*.jpg: one unlabelled folder for every split
    if not root or not os.path.isdir(split_dir):
      raise DataError(f"image folder {split_dir!r} does not exist: set input.data_dir to a "
                      "root holding split/class/image files (or split/image files)")
    classes = sorted(d for d in os.listdir(split_dir)
                     if os.path.isdir(os.path.join(split_dir, d)))
    self.files, labels = [], []
    for label, cls in enumerate(classes):
      found = _list_images(os.path.join(split_dir, cls))
      self.files += found
      labels += [label] * len(found)
    self.labelled = bool(self.files)
    if not self.files:
      self.files = _list_images(split_dir)
      labels = [UNLABELLED] * len(self.files)
    if not self.files:
      raise DataError(f"no images under {split_dir}: expected {'/'.join(IMAGE_SUFFIXES)} files "
                      "in one folder per class, or directly in the folder (unlabelled)")
    self.labels = np.asarray(labels, np.int32)
    self.num_classes = len(classes) if self.labelled else 0
    self.name = f"image_folder:{split_dir}"

  def __len__(self):
    return len(self.files)

  @property
  def canvas(self):
    return self.view.canvas

  def __getstate__(self):  # worker processes get a copy without the lock
    return {k: v for k, v in self.__dict__.items() if k != "_lock"}

  def __setstate__(self, state):
    self.__dict__.update(state, _lock=threading.Lock())

  def with_view(self, view):
    other = copy.copy(self)
    other.view, other.skipped_files, other._lock = view, set(), threading.Lock()
    return other

  def _decode(self, path):
    """The example of `path` for this view, or None if it cannot be decoded (and is skipped)."""
    try:
      with open(path, "rb") as f:
        return self.view.from_bytes(f.read())
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      reason = f"{type(e).__name__}: {e}"
    if self.corrupt_images == "fail":
      raise DataError(f"image {path} cannot be decoded ({reason}): replace or delete it, or set "
                      "input.corrupt_images=skip")
    return None

  def __getitem__(self, index):
    skipped = []
    for offset in range(len(self.files)):
      i = (index + offset) % len(self.files)
      example = self._decode(self.files[i])
      if example is not None:
        return dict(example, label=self.labels[i], skipped=tuple(skipped))
      skipped.append(self.files[i])
    raise DataError(f"no image under {self.name} can be decoded: check input.data_dir")

  def note_skipped(self, paths):
    """Records files a reader skipped (in any process) and logs each the first time this
    process meets it (the training split and an evaluator's copy of it skip the same files)."""
    with self._lock:
      new = [p for p in paths if p not in self.skipped_files]
      self.skipped_files.update(new)
    with _LOGGED_SKIPS_LOCK:
      first_seen = [p for p in new if p not in _LOGGED_SKIPS]
      _LOGGED_SKIPS.update(first_seen)
    for path in first_seen:
      log.warning("skipped image %s, which cannot be decoded; %d skipped so far in %s", path,
                  len(self.skipped_files), self.name)


_LOGGED_SKIPS = set()  # undecodable files already warned about in this process
_LOGGED_SKIPS_LOCK = threading.Lock()


def get_source(input_config, split, view="train", split_field="input.split"):
  """The source named by `input_config.source` for `split`, opened for `view` ("train":
  what the training pipeline crops on device; "eval": evaluation views). `split_field`: the
  config field that chose `split`, named by errors about it."""
  kind = input_config.source
  host_view = View.from_config(view, input_config)
  if kind == "digits":
    source = digits(split, input_config.image_size, split_field=split_field)
  elif kind == "npz":
    source = npz_dir(input_config.data_dir, split, split_field)
  elif kind == "tfds":
    return TfdsSource(input_config.name, split, input_config.data_dir, host_view)
  elif kind == "image_folder":
    return ImageFolderSource(input_config.data_dir, split, host_view,
                             input_config.get("corrupt_images", "skip"))
  else:
    raise DataError(f"input.source={kind!r} is unknown: use one of {', '.join(KINDS)}")
  return source.eval_view(host_view) if view == "eval" else source


def eval_source(source, input_config):
  """`source` (opened by `get_source`) in the evaluation view."""
  view = View.from_config("eval", input_config)
  if isinstance(source, ArraySource):
    return source.eval_view(view)
  return source.with_view(view)


def labelled_arrays(source, max_examples=None, seed=0, num_threads=None):
  """(images uint8 [N, H, W, 3], labels int32 [N]) of the whole source or a seeded subset,
  read by `num_threads` threads (decoding releases the GIL; default one per core).

  Splits may be sorted by class (CIFAR-10's test.npz is), so a cap takes a random subset.
  """
  index = np.arange(len(source))
  if max_examples and max_examples < len(index):
    index = np.sort(np.random.default_rng(seed).permutation(len(index))[:max_examples])
  if isinstance(source, ArraySource):
    return source.images[index], source.labels[index]
  with futures.ThreadPoolExecutor(num_threads or os.cpu_count()) as pool:
    examples = list(pool.map(lambda i: source[int(i)], index))
  if hasattr(source, "note_skipped"):
    source.note_skipped([p for e in examples for p in e.get("skipped", ())])
  return (np.stack([e["image"] for e in examples]),
          np.asarray([e["label"] for e in examples], np.int32))
