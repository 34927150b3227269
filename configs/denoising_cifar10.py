"""Denoising autoencoder (Vincent et al., ICML 2008) on CIFAR-10, convolutional.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10   # directory of train_*.npz / test.npz
  python -m ssljax.main --config=configs/denoising_cifar10.py --workdir=/tmp/denoising_c10
  python -m ssljax.main --config=configs/denoising_cifar10.py:cpu --workdir=...       # CPU budget
  python -m ssljax.main --config=configs/denoising_cifar10.py:runlocal --workdir=...  # seconds

The paper: masking noise (a fixed fraction of the inputs forced to 0, 0-50% in its tables, 25%
here), one sigmoid layer with tied weights per level on 28x28 binary digits, cross-entropy
reconstruction, greedy layer-wise stacking; it has no ImageNet recipe (so no _r50 config). Here:
the narrow ResNet-18 of simsiam_cifar10.py:cpu with the shared convolutional decoder, trained
end to end on the squared error against the clean, standardised view (`recipes.dense_cifar10`).
Switches: `denoising.mask_fraction` (0: off), `denoising.gaussian_std` (additive N(0, std^2) in
[0, 1] pixel units, the journal version's Gaussian corruption; 0: off), `denoising.loss_on`
("all", the default; "corrupted": the zeroed pixels only). `--config.model.variant=Ti/4`
switches to a ViT encoder.
"""
from ssljax.config import sections
from ssljax.methods import denoising, recipes


def get_config(arg=None):
  arg = recipes.dense_arg(arg)
  c = sections.base_config()
  c.method, c.denoising = "denoising", denoising.default_config()
  recipes.dense_cifar10(c, arg)
  c.lock()
  return c
