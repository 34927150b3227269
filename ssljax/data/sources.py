"""Host-side data sources: random access to {"image": uint8 [H, W, 3], "label": int32}.

Four kinds, chosen by `config.input.source`:
  "digits"        scikit-learn's 1,797 real handwritten digits, upsampled (ships with
                  scikit-learn: the embedded default, no download)
  "npz"           a directory of .npz shards with `images` [N, H, W, 3] uint8 and `labels` [N]
                  (`{split}_*.npz` or `{split}.npz`, e.g. the CIFAR-10 copy in shared/data)
  "tfds"          a prepared TFDS dataset via `tfds.data_source` (array_record; no TensorFlow)
  "image_folder"  `root/split/class/*.png|jpg`
Hosts only read, decode and resize to a fixed size; augmentations run on device.
"""
import glob
import logging
import os
import threading

import numpy as np
from PIL import Image

from ssljax.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KINDS = ("digits", "npz", "tfds", "image_folder")
NPZ_LAYOUT = "images uint8 [N, H, W, 3] and labels int [N]"
CORRUPT_IMAGE_POLICIES = ("skip", "fail")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def fit_image(image, size):
  """uint8 [h, w, C] -> uint8 [size, size, 3]: resize the shorter side, centre-crop."""
  pil = Image.fromarray(np.asarray(image)).convert("RGB")
  if pil.size != (size, size):
    w, h = pil.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    pil = pil.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    pil = pil.crop((left, top, left + size, top + size))
  return np.asarray(pil, dtype=np.uint8)


class ArraySource:
  """In-memory images uint8 [N, H, W, 3] and labels int32 [N]."""

  def __init__(self, images, labels, num_classes, name):
    self.images, self.labels = images, labels
    self.num_classes, self.name = num_classes, name

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, index):
    return {"image": self.images[index], "label": self.labels[index]}


def digits(split, image_size, test_fraction=1 / 6):
  """scikit-learn's 8x8 handwritten digits, upsampled bilinearly to `image_size`, as RGB.

  A fixed permutation splits the 1,797 images into "train" (1,497) and "test" (300).
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  data = load_digits()
  order = np.random.default_rng(0).permutation(len(data.target))
  num_test = int(round(len(order) * test_fraction))
  splits = {"train": order[num_test:], "test": order[:num_test]}
  if split not in splits:
    raise DataError(f"digits has splits 'train' and 'test', not {split!r}: fix input.split")
  pixels = (data.images[splits[split]] * (255.0 / 16.0)).round().astype(np.uint8)
  images = np.stack([
      np.asarray(Image.fromarray(p).resize((image_size, image_size), Image.BILINEAR))
      for p in pixels])
  images = np.repeat(images[..., None], 3, axis=-1)
  return ArraySource(images, data.target[splits[split]].astype(np.int32), 10, f"digits:{split}")


def npz_dir(path, split):
  """All `{split}_*.npz` / `{split}.npz` shards under `path`, concatenated in file order."""
  if not path or not os.path.isdir(path):
    raise DataError(f"npz data directory {path!r} does not exist: set input.data_dir to a "
                    "directory of .npz shards")
  files = sorted(glob.glob(os.path.join(path, f"{split}_*.npz")))
  files += glob.glob(os.path.join(path, f"{split}.npz"))
  if not files:
    raise DataError(f"no {split}_*.npz or {split}.npz in {path}: check input.data_dir and "
                    "the split name")
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
  labels = np.concatenate(labels).astype(np.int32)
  return ArraySource(np.concatenate(images), labels, int(labels.max()) + 1, f"npz:{path}:{split}")


class TfdsSource:
  """A prepared TFDS dataset read through `tfds.data_source` (array_record), images fitted."""

  def __init__(self, name, split, data_dir, image_size):
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
      self._source = tfds.data_source(name, split=split, data_dir=root, download=False)
    except Exception as e:
      raise DataError(f"TFDS dataset {name!r} split {split!r} cannot be read from {root} "
                      f"({str(e).splitlines()[0]}): {how}") from e
    self.num_classes = self._source.dataset_info.features["label"].num_classes
    self.image_size, self.name = image_size, f"tfds:{name}:{split}"

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    example = self._source[index]
    return {"image": fit_image(example["image"], self.image_size),
            "label": np.int32(example["label"])}


class ImageFolderSource:
  """`root/split/class_name/*.png|jpg`; classes are the sorted sub-directory names.

  A file that cannot be decoded is, with `corrupt_images="skip"`, logged once, recorded in
  `skipped_files`, and replaced by the next readable file in the listing (so batches keep their
  size and nothing else is dropped); with "fail" it is a DataError naming the file.
  """

  def __init__(self, root, split, image_size, corrupt_images="skip"):
    if corrupt_images not in CORRUPT_IMAGE_POLICIES:
      raise ConfigError(f"input.corrupt_images={corrupt_images!r} is unknown: use one of "
                        f"{', '.join(CORRUPT_IMAGE_POLICIES)}")
    self.corrupt_images = corrupt_images
    self.skipped_files = set()
    self._lock = threading.Lock()
    split_dir = os.path.join(root or "", split)
    if not root or not os.path.isdir(split_dir):
      raise DataError(f"image folder {split_dir!r} does not exist: set input.data_dir to a "
                      "root holding split/class/image files")
    classes = sorted(d for d in os.listdir(split_dir)
                     if os.path.isdir(os.path.join(split_dir, d)))
    self.files, labels = [], []
    for label, cls in enumerate(classes):
      for f in sorted(os.listdir(os.path.join(split_dir, cls))):
        if f.lower().endswith(IMAGE_SUFFIXES):
          self.files.append(os.path.join(split_dir, cls, f))
          labels.append(label)
    if not self.files:
      raise DataError(f"no images under {split_dir}/<class>/: expected "
                      f"{'/'.join(IMAGE_SUFFIXES)} files in one folder per class")
    self.labels = np.asarray(labels, np.int32)
    self.num_classes, self.image_size = len(classes), image_size
    self.name = f"image_folder:{split_dir}"

  def __len__(self):
    return len(self.files)

  def _decode(self, path):
    """uint8 [size, size, 3], or None if the file cannot be decoded (and is skipped)."""
    try:
      with Image.open(path) as im:
        return fit_image(np.asarray(im.convert("RGB")), self.image_size)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
      reason = f"{type(e).__name__}: {e}"
    if self.corrupt_images == "fail":
      raise DataError(f"image {path} cannot be decoded ({reason}): replace or delete it, or set "
                      "input.corrupt_images=skip")
    with self._lock:
      first_time = path not in self.skipped_files
      self.skipped_files.add(path)
    if first_time:
      log.warning("skipping image %s, which cannot be decoded (%s); %d skipped so far", path,
                  reason, len(self.skipped_files))
    return None

  def __getitem__(self, index):
    for offset in range(len(self.files)):
      i = (index + offset) % len(self.files)
      image = self._decode(self.files[i])
      if image is not None:
        return {"image": image, "label": self.labels[i]}
    raise DataError(f"no image under {self.name} can be decoded: check input.data_dir")


def get_source(input_config, split):
  """The source named by `input_config.source` for `split`."""
  kind = input_config.source
  if kind == "digits":
    return digits(split, input_config.image_size)
  if kind == "npz":
    return npz_dir(input_config.data_dir, split)
  if kind == "tfds":
    return TfdsSource(input_config.name, split, input_config.data_dir, input_config.image_size)
  if kind == "image_folder":
    return ImageFolderSource(input_config.data_dir, split, input_config.image_size,
                             input_config.get("corrupt_images", "skip"))
  raise DataError(f"input.source={kind!r} is unknown: use one of {', '.join(KINDS)}")


def labelled_arrays(source, max_examples=None, seed=0):
  """(images uint8 [N, H, W, 3], labels int32 [N]) of the whole source or a seeded subset.

  Splits may be sorted by class (CIFAR-10's test.npz is), so a cap takes a random subset.
  """
  index = np.arange(len(source))
  if max_examples and max_examples < len(index):
    index = np.sort(np.random.default_rng(seed).permutation(len(index))[:max_examples])
  if isinstance(source, ArraySource):
    return source.images[index], source.labels[index]
  examples = [source[int(i)] for i in index]
  return (np.stack([e["image"] for e in examples]),
          np.asarray([e["label"] for e in examples], np.int32))
