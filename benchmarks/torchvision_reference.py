"""torchvision's RandomResizedCrop.get_params, written out (torchvision's wheel does not import
beside the CPU torch wheel used here), with the random draws passed in: torch's RNG in the
benchmark's DataLoader peer (`input_pipeline.py`), Python's in the tests of ssljax's sampler."""
import math


def crop_params(height, width, uniform, randint, scale, ratio=(3 / 4, 4 / 3)):
  """(top, left, h, w) of a random resized crop of a `height` x `width` image.

  uniform(lo, hi) -> float and randint(lo, hi) -> int in [lo, hi) are the random draws.
  """
  area = height * width
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target = area * uniform(scale[0], scale[1])
    aspect = math.exp(uniform(log_ratio[0], log_ratio[1]))
    w = int(round(math.sqrt(target * aspect)))
    h = int(round(math.sqrt(target / aspect)))
    if 0 < w <= width and 0 < h <= height:
      return randint(0, height - h + 1), randint(0, width - w + 1), h, w
  in_ratio = width / height  # no draw fits: the centre crop, clamped to the ratio range
  if in_ratio < min(ratio):
    w, h = width, int(round(width / min(ratio)))
  elif in_ratio > max(ratio):
    h, w = height, int(round(height * max(ratio)))
  else:
    w, h = width, height
  return (height - h) // 2, (width - w) // 2, h, w
