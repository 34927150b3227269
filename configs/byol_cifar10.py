"""BYOL ResNet-18 (CIFAR variant) on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/byol_cifar10.py --workdir=/tmp/byol_c10
  python -m ssljax.main --config=configs/byol_cifar10.py:cpu --workdir=...       # CPU budget
  python -m ssljax.main --config=configs/byol_cifar10.py:runlocal --workdir=...  # seconds

Online network with predictor, EMA target (momentum 0.99 -> 1, cosine: the shorter CIFAR
schedule moves the target faster than ImageNet's 0.996), normalised MSE, symmetrised; heads
4096 hidden -> 256; optimisation and augmentation are SimSiam's CIFAR recipe
(`recipes.siamese_cifar10`). The BYOL paper has no CIFAR-10 pre-training result.
`:cpu` is width 16 with 512-d hidden layers.
"""
from ssljax.config import sections
from ssljax.methods import byol, recipes


def get_config(arg=None):
  arg = recipes.cifar10_arg(arg)
  c = sections.base_config()
  c.method, c.byol = "byol", byol.default_config()
  c.byol.momentum = 0.99
  if arg.cpu:
    c.byol.hidden_dim, c.byol.predictor_hidden_dim = 512, 512
  recipes.siamese_cifar10(c, arg)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
