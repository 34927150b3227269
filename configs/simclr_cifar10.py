"""SimCLR ResNet-18 (CIFAR variant) on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/simclr_cifar10.py --workdir=/tmp/simclr_c10
  python -m ssljax.main --config=configs/simclr_cifar10.py:cpu --workdir=...       # CPU budget
  python -m ssljax.main --config=configs/simclr_cifar10.py:runlocal --workdir=...  # seconds

NT-Xent at temperature 0.5 (the paper's best on CIFAR-10, appendix B.9) over the global batch
of 512 (1022 negatives per example), projection 2048 -> 128 with BN on the hidden layer;
optimisation and augmentation are SimSiam's CIFAR recipe (`recipes.siamese_cifar10`), so the
methods compare on equal terms. The paper reports about 94% linear accuracy on CIFAR-10 with
ResNet-50, batch 1024 to 4096 and 500+ epochs (appendix B.9). `:cpu` is width 16, 512-d hidden.
"""
from ssljax.config import sections
from ssljax.methods import recipes, simclr


def get_config(arg=None):
  arg = recipes.cifar10_arg(arg)
  c = sections.base_config()
  c.method, c.simclr = "simclr", simclr.default_config()
  c.simclr.temperature = 0.5
  if arg.cpu:
    c.simclr.hidden_dim = 512
  recipes.siamese_cifar10(c, arg)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
