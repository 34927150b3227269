"""Host input throughput on ImageNet-sized JPEGs: ssljax's pipeline against a torchvision
DataLoader, in one run, and the host cores per accelerator the rates imply.

  python benchmarks/input_pipeline.py                            # makes 512 JPEGs, 2 workers
  python benchmarks/input_pipeline.py --folder=/data/imagenet_subset --workers=16 --batches=40

The folder (made once if it does not exist): `root/train/<class>/*.jpg`, crops of the real
photographs that ship with scikit-learn and scikit-image at ImageNet's sizes and aspect ratios
(mostly 500x375, 500x333 and their portraits; some smaller, 5% up to 1260 px), with a little
sensor-like noise and quality 96, which puts the average file near ImageNet's 110 KB.

Lines printed (img/s in total and per host core; per core = total / the host's cores, all of
which every pipeline may use; the decode floor runs in one process):
  decode floor    decoding alone, one process: simplejpeg (libjpeg-turbo), Pillow, and OpenCV
                  where it is installed (PyTurboJPEG needs a system libturbojpeg)
  ssljax MAE      `pipeline.train_iterator` over the image folder in the training view
                  (decode + canvas), `--workers` processes; one view is cut on device
  ssljax SimSiam  the same host work: both views are cut on device from the one canvas
  ssljax eval     `sources.labelled_arrays` in the evaluation view (Resize 256 + CenterCrop 224)
  torch peer      `torch.utils.data.DataLoader(num_workers=--workers)` running what
                  torchvision's ImageFolder + RandomResizedCrop(224, bicubic) + flip +
                  ToTensor + Normalize run (Pillow operations, torchvision's crop sampling);
                  SimSiam: two such views per image (its colour jitter and blur, which ssljax
                  runs on device, are left out, which favours the peer); eval: Resize(256) +
                  CenterCrop(224). Real torchvision is used where it imports.
  device augment  the jitted on-device part (MAE: one bicubic crop + flip; SimSiam: two views
                  with colour jitter, grayscale, blur) on this machine's JAX devices
  CIFAR-10        with $SSLJAX_CIFAR10_DIR: the in-memory path (host batches of 512, and the
                  CIFAR recipes' on-device views at 32 px)
and the ratios ssljax / peer, and host cores per accelerator for MAE ViT-L/16 at 50% MFU.
"""
import argparse
import glob
import io
import os
import random
import time

import numpy as np
from PIL import Image

import torchvision_reference

BATCH = 64


# ----------------------------------------------------------------- the JPEG folder

def photographs():
  """The real colour photographs in scikit-learn's and scikit-image's wheels."""
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  photos = [np.asarray(p) for p in load_sample_images().images]
  try:
    import skimage.data  # pylint: disable=g-import-not-at-top
    for name in ("astronaut", "chelsea", "coffee", "rocket", "retina", "hubble_deep_field"):
      photos.append(np.asarray(getattr(skimage.data, name)())[..., :3])
  except ImportError:
    pass
  return photos


def imagenet_size(rng):
  """(h, w) drawn like ImageNet's: most 500 px wide landscapes or portraits, a few others."""
  kind = rng.random()
  if kind < 0.80:
    h, w = (375, 500) if rng.random() < 0.6 else (333, 500)
  elif kind < 0.95:
    side = int(rng.integers(200, 500))
    h, w = side, min(500, int(side * rng.uniform(1.0, 1.5)))
  else:
    side = int(rng.integers(600, 900))
    h, w = side, int(side * rng.uniform(1.2, 1.4))
  return (w, h) if rng.random() < 0.25 else (h, w)


def make_folder(root, count, classes=8, seed=0):
  """`count` ImageNet-like JPEGs in root/train/<class>/; returns their mean size in bytes."""
  rng = np.random.default_rng(seed)
  photos = photographs()
  sizes = []
  for i in range(count):
    photo = photos[int(rng.integers(len(photos)))]
    h, w = imagenet_size(rng)
    scale = max(h / photo.shape[0], w / photo.shape[1], rng.uniform(0.6, 1.0))
    image = Image.fromarray(photo)
    if scale > 1 or rng.random() < 0.5:
      image = image.resize((max(w, int(photo.shape[1] * scale)),
                            max(h, int(photo.shape[0] * scale))), Image.BICUBIC)
    top = int(rng.integers(0, image.size[1] - h + 1))
    left = int(rng.integers(0, image.size[0] - w + 1))
    pixels = np.asarray(image.crop((left, top, left + w, top + h)), np.float32)
    pixels = np.clip(pixels + rng.normal(0, 5, pixels.shape), 0, 255).astype(np.uint8)
    folder = os.path.join(root, "train", f"class{i % classes:02d}")
    os.makedirs(folder, exist_ok=True)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=96)
    with open(os.path.join(folder, f"{i:05d}.jpg"), "wb") as f:
      f.write(buffer.getvalue())
    sizes.append(len(buffer.getvalue()))
  return float(np.mean(sizes))


def jpeg_files(root):
  return sorted(glob.glob(os.path.join(root, "train", "*", "*.jpg")))


# ----------------------------------------------------------------- the torchvision peer

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def torchvision_transforms(size, two_views, evaluation):
  """Real torchvision's transforms, or None where torchvision does not import."""
  try:
    from torchvision import transforms as T  # pylint: disable=g-import-not-at-top
  except Exception:  # pylint: disable=broad-except
    return None
  if evaluation:
    one = T.Compose([T.Resize(int(size / 0.875), T.InterpolationMode.BICUBIC),
                     T.CenterCrop(size), T.ToTensor(), T.Normalize(MEAN, STD)])
  else:
    one = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0),
                                         interpolation=T.InterpolationMode.BICUBIC),
                     T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
  return (lambda image: (one(image), one(image))) if two_views else one


class PeerDataset:
  """torchvision's ImageFolder + transforms as torchvision runs them on Pillow images:
  RandomResizedCrop.get_params with torch's RNG, crop then resize (bicubic), flip with p 1/2,
  ToTensor (uint8 HWC -> float CHW / 255) and Normalize; or Resize + CenterCrop."""

  def __init__(self, files, size, two_views=False, evaluation=False):
    self.files, self.size = files, size
    self.two_views, self.evaluation = two_views, evaluation
    self.transform = torchvision_transforms(size, two_views, evaluation)

  def __len__(self):
    return len(self.files)

  @staticmethod
  def _load(path):  # torchvision.datasets.folder.pil_loader
    with open(path, "rb") as f:
      return Image.open(f).convert("RGB")

  @staticmethod
  def _crop_params(width, height):
    import torch  # pylint: disable=g-import-not-at-top
    return torchvision_reference.crop_params(
        height, width, lambda lo, hi: torch.empty(1).uniform_(lo, hi).item(),
        lambda lo, hi: torch.randint(lo, hi, size=(1,)).item(), scale=(0.2, 1.0))

  def _to_tensor(self, image):
    import torch  # pylint: disable=g-import-not-at-top
    x = torch.from_numpy(np.array(image, np.uint8, copy=True))
    x = x.view(image.size[1], image.size[0], 3).permute((2, 0, 1)).contiguous()
    x = x.to(dtype=torch.float32).div(255)
    mean = torch.as_tensor(MEAN).view(-1, 1, 1)
    std = torch.as_tensor(STD).view(-1, 1, 1)
    return x.sub_(mean).div_(std)

  def _train_view(self, image):
    import torch  # pylint: disable=g-import-not-at-top
    i, j, h, w = self._crop_params(*image.size)
    view = image.crop((j, i, j + w, i + h)).resize((self.size, self.size), Image.BICUBIC)
    if torch.rand(1) < 0.5:
      view = view.transpose(Image.FLIP_LEFT_RIGHT)
    return self._to_tensor(view)

  def _eval_view(self, image):
    width, height = image.size
    short = int(self.size / 0.875)
    if width <= height:
      new = (short, int(short * height / width))
    else:
      new = (int(short * width / height), short)
    image = image.resize(new, Image.BICUBIC)
    left = int(round((new[0] - self.size) / 2.0))
    top = int(round((new[1] - self.size) / 2.0))
    return self._to_tensor(image.crop((left, top, left + self.size, top + self.size)))

  def __getitem__(self, index):
    image = self._load(self.files[index])
    if self.transform is not None:
      return self.transform(image), 0
    if self.evaluation:
      return self._eval_view(image), 0
    if self.two_views:
      return (self._train_view(image), self._train_view(image)), 0
    return self._train_view(image), 0


def time_torch(files, workers, batches, **kwargs):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1)
  loader = torch.utils.data.DataLoader(
      PeerDataset(files, 224, **kwargs), batch_size=BATCH, shuffle=True, num_workers=workers,
      drop_last=True, persistent_workers=workers > 0, prefetch_factor=2 if workers else None)
  return _rate(iter(_forever(loader)), batches)


def _forever(loader):
  while True:
    yield from loader


def _rate(iterator, batches):
  """img/s over `batches` batches after two warm-up batches (worker start-up excluded)."""
  next(iterator)
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * BATCH / (time.perf_counter() - start)


# ----------------------------------------------------------------- ssljax

def time_ssljax_train(root, workers, threads, batches):
  from ssljax.data import pipeline, sources  # pylint: disable=g-import-not-at-top
  source = sources.ImageFolderSource(root, "train", sources.View("train", 224))
  iterator = pipeline.train_iterator(source, BATCH, seed=0, process_index=0, process_count=1,
                                     num_workers=workers, num_threads=threads)
  try:
    return _rate(iterator, batches)
  finally:
    iterator.close()


def time_ssljax_eval(root, threads, count):
  from ssljax.data import sources  # pylint: disable=g-import-not-at-top
  source = sources.ImageFolderSource(root, "train", sources.View(
      "eval", 224, crop_pct=0.875, interpolation="bicubic"))
  sources.labelled_arrays(source, max_examples=BATCH, num_threads=threads)  # warm-up
  start = time.perf_counter()
  sources.labelled_arrays(source, max_examples=count, seed=1, num_threads=threads)
  return count / (time.perf_counter() - start)


def time_decode_floor(files):
  import simplejpeg  # pylint: disable=g-import-not-at-top
  data = [open(f, "rb").read() for f in files[:200]]
  rates = {}
  decoders = [("simplejpeg", simplejpeg.decode_jpeg),
              ("Pillow", lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB")))]
  try:
    import cv2  # pylint: disable=g-import-not-at-top
    cv2.setNumThreads(1)
    decoders.append(("OpenCV", lambda b: cv2.imdecode(np.frombuffer(b, np.uint8),
                                                      cv2.IMREAD_COLOR)))
  except ImportError:
    pass
  for name, fn in decoders:
    fn(data[0])
    start = time.perf_counter()
    for b in data:
      fn(b)
    rates[name] = len(data) / (time.perf_counter() - start)
  return rates


def time_device_augment(steps=3):
  """On-device augmentation img/s: MAE's view and SimSiam's two views of a batch of canvases."""
  import jax  # pylint: disable=g-import-not-at-top
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  from ssljax.data import augment  # pylint: disable=g-import-not-at-top
  canvases = np.random.default_rng(0).integers(0, 256, (BATCH, 512, 512, 3), np.uint8)
  extent = np.tile(np.asarray([[375, 500]], np.int32), (BATCH, 1))
  mae, simsiam = loading.load("mae_vitl"), loading.load("simsiam_r50")
  batch = {"image": canvases, "extent": extent}
  fns = {
      "MAE (1 view)": lambda b, k: augment.crop_flip_views(
          k, b["image"], 224, crop_scale=mae.aug.crop_scale, **augment.geometry(b, mae)),
      "SimSiam (2 views)": lambda b, k: augment.siamese_views(
          k, b["image"], 224, simsiam.aug, **augment.geometry(b, simsiam)),
  }
  rates = {}
  for name, fn in fns.items():
    jitted = jax.jit(fn)
    jax.block_until_ready(jitted(batch, jax.random.key(0)))
    start = time.perf_counter()
    for i in range(steps):
      jax.block_until_ready(jitted(batch, jax.random.key(i)))
    rates[name] = steps * BATCH / (time.perf_counter() - start)
  return rates, jax.devices()[0].device_kind


def time_cifar10(data_dir, batches=40, batch=512):
  """In-memory CIFAR-10: host batches/s of `pipeline.train_iterator` and the on-device views
  of the CIFAR recipes (MAE: crop + flip; SimSiam: two views) at 32 px, img/s."""
  import jax  # pylint: disable=g-import-not-at-top
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  from ssljax.data import augment, pipeline, sources  # pylint: disable=g-import-not-at-top
  source = sources.npz_dir(data_dir, "train")
  iterator = pipeline.train_iterator(source, batch, seed=0, process_index=0, process_count=1)
  next(iterator)
  start = time.perf_counter()
  for _ in range(batches):
    images = next(iterator)["image"]
  rates = {"host": batches * batch / (time.perf_counter() - start)}
  mae, simsiam = loading.load("mae_cifar10"), loading.load("simsiam_cifar10")
  views = {"MAE view": jax.jit(lambda k, x: augment.crop_flip_views(
               k, x, 32, crop_scale=mae.aug.crop_scale, **augment.geometry({}, mae))),
           "SimSiam views": jax.jit(lambda k, x: augment.siamese_views(
               k, x, 32, simsiam.aug, **augment.geometry({}, simsiam)))}
  for name, fn in views.items():
    jax.block_until_ready(fn(jax.random.key(0), images))
    start = time.perf_counter()
    for i in range(5):
      jax.block_until_ready(fn(jax.random.key(i), images))
    rates[name] = 5 * batch / (time.perf_counter() - start)
  return rates


# ----------------------------------------------------------------- report

def accelerator_demand():
  """img/s one H100 and one TPU v4 host (4 chips) consume for MAE ViT-L/16 at 50% MFU."""
  from ssljax import methods  # pylint: disable=g-import-not-at-top
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  config = loading.load("mae_vitl")
  per_image = methods.get(config.method).flops_per_example(config)
  peak = dict(flops.PEAK_TFLOPS)
  return {"H100 (MAE ViT-L/16, 50% MFU)": 0.5 * peak["H100"] * 1e12 / per_image,
          "TPU v4 host, 4 chips (same)": 4 * 0.5 * peak["TPU v4"] * 1e12 / per_image}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--folder", default="/tmp/ssljax_imagenet_like")
  parser.add_argument("--images", type=int, default=512)
  parser.add_argument("--workers", type=int, default=os.cpu_count())
  parser.add_argument("--threads", type=int, default=2, help="ssljax threads per worker")
  parser.add_argument("--batches", type=int, default=24)
  parser.add_argument("--skip-device", action="store_true")
  args = parser.parse_args()
  if not jpeg_files(args.folder):
    print(f"making {args.images} ImageNet-like JPEGs in {args.folder} ...", flush=True)
    make_folder(args.folder, args.images)
  files = jpeg_files(args.folder)
  sizes = [Image.open(f).size for f in files]
  print(f"{len(files)} JPEGs, mean {np.mean([os.path.getsize(f) for f in files]) / 1e3:.0f} "
        f"KB, mean {np.mean([s[0] for s in sizes]):.0f}x{np.mean([s[1] for s in sizes]):.0f} "
        f"px; {args.workers} workers on {os.cpu_count()} cores, batch {BATCH}", flush=True)
  cores = os.cpu_count()  # every pipeline here may use all of the host's cores
  line = lambda name, rate, n=cores: print(
      f"  {name:<34} {rate:8.0f} img/s  {rate / n:6.0f} per core", flush=True)
  random.seed(0)

  floor = time_decode_floor(files)
  for name, rate in floor.items():
    line(f"decode floor, {name}", rate, 1)
  ours = {"MAE": time_ssljax_train(args.folder, args.workers, args.threads, args.batches)}
  ours["SimSiam"] = ours["MAE"]  # the same host work: views are cut on device
  ours["eval"] = time_ssljax_eval(args.folder, cores, args.batches * BATCH)
  peer = {"MAE": time_torch(files, args.workers, args.batches),
          "SimSiam": time_torch(files, args.workers, args.batches, two_views=True),
          "eval": time_torch(files, args.workers, args.batches, evaluation=True)}
  real = torchvision_transforms(224, False, False) is not None
  for task in ("MAE", "SimSiam", "eval"):
    line(f"ssljax {task}", ours[task])
    line(f"torch{'vision' if real else ''} peer {task}", peer[task])
    print(f"  {'ratio ssljax / peer':<34} {ours[task] / peer[task]:8.2f}x", flush=True)
  if not args.skip_device:
    rates, kind = time_device_augment()
    for name, rate in rates.items():
      print(f"  {'device augment ' + name:<34} {rate:8.0f} img/s on {kind}", flush=True)
  cifar10 = os.environ.get("SSLJAX_CIFAR10_DIR")
  if cifar10 and not args.skip_device:
    for name, rate in time_cifar10(cifar10).items():
      print(f"  {'CIFAR-10 in memory, ' + name:<34} {rate:8.0f} img/s", flush=True)
  per_core = ours["MAE"] / cores
  for name, demand in accelerator_demand().items():
    print(f"  {name:<34} {demand:8.0f} img/s -> {demand / per_core:5.1f} host cores at "
          f"ssljax's {per_core:.0f} img/s/core, {demand / (peer['MAE'] / cores):5.1f} at the "
          "peer's", flush=True)


if __name__ == "__main__":
  main()
