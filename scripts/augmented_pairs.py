"""Writes a PNG grid of Siamese augmented view pairs, to look at what the method trains on.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python scripts/augmented_pairs.py --out=/tmp/views.png                  # simsiam_cifar10
  python scripts/augmented_pairs.py --config=simsiam_r50:runlocal --out=/tmp/views.png

Each row is one training image: the original and two views drawn exactly as the train step
draws them (`augment.siamese_views` with the config's `aug`: random resized crop, flip, color
jitter, grayscale, blur), denormalised for display.
"""
import argparse

import jax
import numpy as np

from ssljax.config import loading
from ssljax.runtime import metrics
from ssljax.data import augment, sources
from ssljax.evals import recon

COLUMNS = ("original", "view 1", "view 2")


def view_pairs(config, num_images, seed):
  """{column: float [N, size, size, 3] in [0, 1]} for the first-split images of `config`."""
  images, _ = sources.labelled_arrays(sources.get_source(config.input, "train"), num_images,
                                      seed=seed)
  size = config.input.image_size
  view1, view2 = augment.siamese_views(jax.random.key(seed), images, size, config.aug)
  original = augment.denormalize(augment.eval_view(images, size))
  return {"original": original, "view 1": augment.denormalize(view1),
          "view 2": augment.denormalize(view2)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="simsiam_cifar10",
                      help='config name in configs/ or path, with ":arg" (default simsiam_cifar10)')
  parser.add_argument("--out", required=True, help="PNG file to write")
  parser.add_argument("--num", type=int, default=8, help="number of images (rows)")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  config = loading.load(args.config)
  grid = recon.figure(view_pairs(config, args.num, args.seed), titles=COLUMNS)
  with open(args.out, "wb") as f:
    f.write(metrics.png_bytes(np.asarray(grid)))
  print(f"wrote {args.out}: {args.num} images x (original, two views), config {args.config}")


if __name__ == "__main__":
  main()
