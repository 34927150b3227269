"""Colorization (Zhang, Isola & Efros, ECCV 2016) on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/colorization_cifar10.py --workdir=/tmp/color_c10
  python -m ssljax.main --config=configs/colorization_cifar10.py:cpu --workdir=...
  python -m ssljax.main --config=configs/colorization_cifar10.py:runlocal --workdir=...

The paper: L in, ab out as a classification over grid-10 ab bins with soft targets (5 nearest,
sigma 5) and class rebalancing (lambda 0.5, sigma 5) from ImageNet's ab distribution, a VGG-style
network, Adam. Here: the same loss with the in-gamut bins computed from the conversion and the
distribution of 2000 training images (`fit_state`), the release's 10 nearest bins and its
weight 0 for grayscale images, the narrow ResNet-18 of simsiam_cifar10.py:cpu and the shared
decoder at full resolution (`recipes.dense_cifar10`). `:runlocal` weighs every image (its
embedded digits are all gray).
`--config.colorization.loss=regression` is the paper's L2 baseline.
"""
from ssljax.config import sections
from ssljax.methods import colorization, recipes


def get_config(arg=None):
  arg = recipes.dense_arg(arg)
  c = sections.base_config()
  c.method, c.colorization = "colorization", colorization.default_config()
  recipes.dense_cifar10(c, arg)
  if arg.runlocal:
    c.colorization.prior_examples = 256
    c.colorization.gray_threshold = None  # the embedded digits are gray: each would weigh 0
  c.lock()
  return c
