"""Rotation prediction (RotNet, Gidaris et al. ICLR 2018) with a ResNet-50 on ImageNet-1k.

  python -m ssljax.main --config=configs/rotation_r50.py --workdir=gs://bucket/rotation_r50
  python -m ssljax.main --config=configs/rotation_r50.py:runlocal --workdir=...  # seconds

The paper's ImageNet network is an AlexNet; this is a ResNet-50 (torchvision layout, bfloat16
compute) with a linear rotation classifier on its pooled feature, ssljax's choice so that the
encoder is the one the other ImageNet recipes and probes use. Batch 256 images (1,024 rotated
views); SGD with Nesterov momentum 0.9, lr = 0.1 x batch / 256, weight decay 5e-4, lr x 0.2
at 30%, 60% and 80% of 100 epochs (the paper's CIFAR schedule shape: not the paper's ImageNet
settings); random resized crops (0.5-1) and flips before rotating.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, rotation


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method = "rotation"
  c.rotation = rotation.default_config()
  recipes.pretext_imagenet(c, arg)
  c.optim.blr, c.optim.nesterov = 0.1, True
  c.optim.step_decay_epochs = tuple(e * arg.epochs / 100 for e in (30, 60, 80))
  c.optim.step_decay_factor = 0.2
  if arg.runlocal:
    recipes.pretext_runlocal(c)
  c.lock()
  return c
