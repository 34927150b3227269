"""MoCo v2 ResNet-18 (CIFAR variant) on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/moco_v2_cifar10.py --workdir=/tmp/moco_c10
  python -m ssljax.main --config=configs/moco_v2_cifar10.py:cpu --workdir=...       # CPU budget
  python -m ssljax.main --config=configs/moco_v2_cifar10.py:runlocal --workdir=...  # seconds

Key encoder with momentum 0.99 (the shorter CIFAR schedule; ImageNet uses 0.999), a queue of
4096 negatives (8 batches of 512), temperature 0.2, MLP head 2048 -> 128 without BN;
optimisation and augmentation are SimSiam's CIFAR recipe (`recipes.siamese_cifar10`). The
MoCo v2 note has no CIFAR-10 result. `:cpu` is width 16 with a 512-d hidden layer.
"""
from ssljax.config import sections
from ssljax.methods import moco, recipes


def get_config(arg=None):
  arg = recipes.cifar10_arg(arg)
  c = sections.base_config()
  c.method, c.moco = "moco", moco.default_config(version=2)
  c.moco.momentum, c.moco.queue_size = 0.99, 4096
  if arg.cpu:
    c.moco.hidden_dim = 512
  recipes.siamese_cifar10(c, arg)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
