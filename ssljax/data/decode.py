"""Host-side decoding: image bytes -> what a host hands on, with no JAX.

  training     `fitted`: the whole image, aspect ratio kept; a JPEG larger than the canvas is
               reduced in the DCT domain while decoding (libjpeg-turbo's k/8 scaling, through
               simplejpeg) by the largest factor that fits it, other formats resized to fit.
               `canvas_batch` places a chunk of them top-left in fixed uint8 [C, C, 3]
               canvases with their extents (h, w), one copy each. Training
               crops are sampled relative to the whole image, on device
               (`ssljax.data.resized_crop`).
  evaluation   torchvision's Resize(size / crop_pct) + CenterCrop(size) with Pillow, computed
               as one Pillow resize of the centre box (the same sample positions and filter
               support, without the intermediate image).

JPEGs decode with libjpeg-turbo's accurate DCT (`benchmarks/input_pipeline.py` measured it
against Pillow and OpenCV); other formats, and JPEGs it cannot convert (CMYK), with Pillow.
"""
import io
import math

import numpy as np
import simplejpeg
from PIL import Image

_PIL_FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def _is_jpeg(data):
  return data[:3] == b"\xff\xd8\xff"


_HIGH_BIT_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


def pil_to_rgb(image):
  """A Pillow image of any mode -> uint8 [h, w, 3] RGB.

  16- and 32-bit grayscale (which Pillow's own conversion clips to white above 255) are
  scaled to 8 bits: 16-bit by 1/257, 32-bit integer from the range its values use (16-bit
  unless larger), float from [0, 1] when it lies there. Palette, CMYK, LA and RGBA convert
  as torchvision's loader converts them (`convert("RGB")`: alpha dropped).
  """
  if image.mode not in _HIGH_BIT_DEPTH:
    return np.asarray(image.convert("RGB"))
  values = np.asarray(image, np.float64)
  if image.mode == "F":
    top = 1.0 if values.size and 0.0 <= values.min() and values.max() <= 1.0 else 255.0
  elif image.mode == "I" and values.size and values.max() > 65535:
    top = float(values.max())
  else:
    top = 65535.0
  gray = np.clip(np.round(values * (255.0 / top)), 0, 255).astype(np.uint8)
  return np.repeat(gray[..., None], 3, axis=-1)


def _pil_rgb(data):
  with Image.open(io.BytesIO(data)) as image:
    return pil_to_rgb(image)


def decode(data, at_least=None):
  """bytes -> uint8 [h, w, 3] RGB.

  `at_least` (h, w): a JPEG may be reduced while decoding (libjpeg-turbo's k/8 DCT scaling)
  to the smallest such size that is at least this large; without it, or for other formats,
  the image decodes at full size, exactly as Pillow decodes it.
  """
  if _is_jpeg(data):
    try:
      kwargs = {}
      if at_least is not None:
        kwargs = dict(min_height=int(at_least[0]), min_width=int(at_least[1]))
      return simplejpeg.decode_jpeg(data, colorspace="RGB", **kwargs)
    except ValueError:
      pass  # CMYK, or a file simplejpeg rejects: Pillow decides whether it is readable
  return _pil_rgb(data)


def canvas_fit(height, width, canvas_size):
  """(h, w) of an image of `height` x `width` once its longer side fits in the canvas."""
  scale = min(1.0, canvas_size / max(height, width))
  return max(1, round(height * scale)), max(1, round(width * scale))


def fit_image(image, canvas_size):
  """uint8 [h, w, 3] -> the same image with its longer side at most `canvas_size` (resized
  with Pillow's bicubic filter only if it is larger)."""
  fit = canvas_fit(image.shape[0], image.shape[1], canvas_size)
  if fit != image.shape[:2]:
    image = np.asarray(Image.fromarray(image).resize((fit[1], fit[0]), Image.BICUBIC))
  return image


def _jpeg_size(data):
  """(h, w) from a JPEG's header, or None for other formats and unreadable headers."""
  if not _is_jpeg(data):
    return None
  try:
    return tuple(simplejpeg.decode_jpeg_header(data)[:2])
  except ValueError:
    return None


def _dct_fit(height, width, canvas_size):
  """The largest k/8 reduction (k = 1..8) of a JPEG of `height` x `width` whose longer side
  fits the canvas, as the (h, w) to ask libjpeg-turbo for; None if none fits."""
  longer = max(height, width)
  for k in range(8, 0, -1):
    if math.ceil(longer * k / 8) <= canvas_size:
      return math.ceil(height * k / 8), math.ceil(width * k / 8)
  return None


def fitted(data, canvas_size):
  """Image bytes -> uint8 [h, w, 3], the whole image, its longer side at most `canvas_size`.

  A JPEG larger than the canvas decodes reduced by the largest k/8 that fits (no resize, and
  a faster decode; the longer side lands in (canvas_size * k / (k + 1), canvas_size]); other
  images larger than the canvas are resized to fit with Pillow's bicubic filter.
  """
  size = _jpeg_size(data)
  at_least = None
  if size is not None and max(size) > canvas_size:
    at_least = _dct_fit(*size, canvas_size)
  return fit_image(decode(data, at_least), canvas_size)


def canvas_batch(images, canvas_size):
  """Images uint8 [h_i, w_i, 3] (each fitted) -> (uint8 [n, C, C, 3], extents int32 [n, 2]):
  each image top-left in its canvas, zeros elsewhere; one copy of each image."""
  canvases = np.empty((len(images), canvas_size, canvas_size, 3), np.uint8)
  extents = np.empty((len(images), 2), np.int32)
  for i, image in enumerate(images):
    h, w = image.shape[:2]
    canvases[i, :h, :w] = image
    canvases[i, h:] = 0
    canvases[i, :h, w:] = 0
    extents[i] = h, w
  return canvases, extents


def eval_geometry(height, width, size, crop_pct):
  """torchvision's Resize(int(size / crop_pct)) + CenterCrop(size) on an image of
  `height` x `width`: ((resized h, resized w), (crop top, crop left))."""
  short = int(size / crop_pct)
  if height <= width:
    resized = (short, int(short * width / height))
  else:
    resized = (int(short * height / width), short)
  top = int(round((resized[0] - size) / 2.0))
  left = int(round((resized[1] - size) / 2.0))
  return resized, (top, left)


def eval_image(image, size, crop_pct, interpolation):
  """uint8 [h, w, 3] -> uint8 [size, size, 3]: Resize(size / crop_pct) + CenterCrop(size)."""
  height, width = image.shape[:2]
  (resized_h, resized_w), (top, left) = eval_geometry(height, width, size, crop_pct)
  if (resized_h, resized_w) == (height, width) and (top, left) == (0, 0):
    return np.ascontiguousarray(image[:size, :size])
  sy, sx = height / resized_h, width / resized_w
  box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
  return np.asarray(Image.fromarray(image).resize((size, size), _PIL_FILTERS[interpolation],
                                                  box=box))


def eval_view(data, size, crop_pct, interpolation):
  """Image bytes -> uint8 [size, size, 3], the evaluation view. A JPEG at least twice the
  resized size in both sides is reduced while decoding, never below it."""
  full = _jpeg_size(data)
  at_least = None
  if full is not None:
    needed = eval_geometry(*full, size, crop_pct)[0]
    if full[0] >= 2 * needed[0] and full[1] >= 2 * needed[1]:
      at_least = needed
  return eval_image(decode(data, at_least), size, crop_pct, interpolation)
