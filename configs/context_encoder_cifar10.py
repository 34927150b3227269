"""Context encoder (Pathak et al., CVPR 2016) on CIFAR-10, reconstruction loss only.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/context_encoder_cifar10.py --workdir=/tmp/ce_c10
  python -m ssljax.main --config=configs/context_encoder_cifar10.py:cpu --workdir=...
  python -m ssljax.main --config=configs/context_encoder_cifar10.py:runlocal --workdir=...

The paper: a 128 px image with its central 64x64 square (1/4 of the area) filled with the mean
colour, an AlexNet-style encoder, a channel-wise fully-connected bottleneck and an up-convolution
decoder; L2 on the hole, 10x on a thin overlap border, plus an adversarial loss (left out
here). Here: the central 16x16 of 32 px (`context_encoder.mask_fraction=0.5`) with a 2 px
overlap, the narrow ResNet-18 of simsiam_cifar10.py:cpu and the shared decoder
(`recipes.dense_cifar10`). `--config.context_encoder.region=random_blocks` is the random-block
variant (`num_blocks` squares of side `block_fraction`).
"""
from ssljax.config import sections
from ssljax.methods import context_encoder, recipes


def get_config(arg=None):
  arg = recipes.dense_arg(arg)
  c = sections.base_config()
  c.method, c.context_encoder = "context_encoder", context_encoder.default_config()
  recipes.dense_cifar10(c, arg)
  c.lock()
  return c
