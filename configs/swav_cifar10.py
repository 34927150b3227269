"""SwAV ResNet-18 (CIFAR variant) on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10
  python -m ssljax.main --config=configs/swav_cifar10.py --workdir=/tmp/swav_c10
  python -m ssljax.main --config=configs/swav_cifar10.py:cpu --workdir=...       # CPU budget
  python -m ssljax.main --config=configs/swav_cifar10.py:runlocal --workdir=...  # seconds

3000 prototypes, temperature 0.1, Sinkhorn-Knopp (epsilon 0.05, 3 iterations) over the global
batch, swapped prediction between 2 crops of 32px (multi-crop: `--config.swav.num_small_crops=4
--config.swav.small_crop_size=16`), prototypes frozen for the first epoch (97 steps at batch
512; 40 steps for `:cpu`); head 2048 -> 128; optimisation and augmentation are SimSiam's CIFAR
recipe (`recipes.siamese_cifar10`). The SwAV paper has no CIFAR-10 pre-training result.
"""
from ssljax.config import sections
from ssljax.methods import recipes, swav


def get_config(arg=None):
  arg = recipes.cifar10_arg(arg)
  c = sections.base_config()
  c.method, c.swav = "swav", swav.default_config()
  c.swav.freeze_prototypes_steps = 50000 // 512
  if arg.cpu:
    c.swav.hidden_dim, c.swav.freeze_prototypes_steps = 512, 40
  recipes.siamese_cifar10(c, arg)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
