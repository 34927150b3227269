"""Relative patch position (Doersch et al. ICCV 2015) with a narrow ResNet-18 on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10   # directory of train_*.npz / test.npz
  python -m ssljax.main --config=configs/relative_position_cifar10.py --workdir=/tmp/relpos_c10
  python -m ssljax.main --config=configs/relative_position_cifar10.py:runlocal --workdir=...
  python -m ssljax.main --config=configs/probe_cifar10.py:cpu,protocol=knn,recipe=simsiam \
      --config.init_from=/tmp/relpos_c10 --workdir=/tmp/relpos_c10_knn

The paper: 96 px patches, 48 px gaps, jitter up to 7 px, on images of 150K-450K pixels, with
AlexNet-style towers (shared weights) up to fc6, concatenated, then fc7, fc8 and an 8-way fc9;
chromatic aberration removed by colour dropping (the release) or projection; each patch
randomly down-sampled (p 0.33) and normalised to its own RMS. Here at 32 px (the module
docstring says why): 7 px patches, 3 px gaps, 1 px jitter, colour dropping, the release's
down-sampling and RMS normalisation, the narrow ResNet-18 (width 16, CIFAR stem) the Siamese
CIFAR-10 CPU configs use, applied to each 7 px patch, and a 3-layer 512-wide head on the two
concatenated features; the whole 32 px image, no crop or flip. Optimisation is ssljax's (the
paper trained for weeks with Caffe's SGD): batch 256 images (one pair each), SGD momentum 0.9,
lr = 0.1 x batch / 256, weight decay 5e-4, cosine over 200 epochs. Evaluated on the whole 32 px
image, as the paper applies its network to whole images.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, relative_position


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, source="npz", epochs=200)
  c = sections.base_config()
  c.method = "relative_position"
  c.relative_position = relative_position.default_config()
  recipes.pretext_cifar10(c, arg)
  c.input.batch_size = 256
  c.optim.blr = 0.1
  c.aug.crop, c.aug.flip = False, False
  if arg.runlocal:
    recipes.pretext_runlocal(c)
  c.lock()
  return c
