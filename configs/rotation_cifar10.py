"""Rotation prediction (RotNet, Gidaris et al. ICLR 2018) with a narrow ResNet-18 on CIFAR-10.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10   # directory of train_*.npz / test.npz
  python -m ssljax.main --config=configs/rotation_cifar10.py --workdir=/tmp/rotation_c10
  python -m ssljax.main --config=configs/rotation_cifar10.py:runlocal --workdir=...  # seconds
  python -m ssljax.main --config=configs/probe_cifar10.py:cpu,protocol=knn,recipe=simsiam \
      --config.init_from=/tmp/rotation_c10 --workdir=/tmp/rotation_c10_knn

The paper's CIFAR-10 recipe (NIN networks): batch 128 images, each in its 4 rotations (512
views), SGD with Nesterov momentum 0.9, lr 0.1 (not scaled with the batch), weight decay 5e-4,
lr x 0.2 at epochs 60, 120 and 160 of 200 (the release's
`config/CIFAR10_RotNet_NIN4blocks.py`; the paper's text: 30/60/80 of 100; scaled with
`epochs=`), random crops and flips before
rotating. Changed here: the encoder is the narrow ResNet-18 (width 16, CIFAR stem) the Siamese
CIFAR-10 CPU configs use, so the paradigms table compares methods on one encoder; the
classifier is a linear layer on its pooled feature; the crop is a random resized crop
(0.6-1) instead of the release's padded crop. `--config.model.variant=...` switches the
encoder (e.g. "resnet50", or a ViT such as "Ti/4").
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, rotation


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, source="npz", epochs=200)
  c = sections.base_config()
  c.method = "rotation"
  c.rotation = rotation.default_config()
  recipes.pretext_cifar10(c, arg)
  c.input.batch_size = 128
  c.optim.lr, c.optim.nesterov = 0.1, True
  c.optim.step_decay_epochs = tuple(e * arg.epochs / 100 for e in (30, 60, 80))
  c.optim.step_decay_factor = 0.2
  c.aug.crop_scale = (0.6, 1.0)
  if arg.runlocal:
    recipes.pretext_runlocal(c)
  c.lock()
  return c
