"""Rotation prediction (RotNet, Gidaris et al. ICLR 2018) with a ResNet-50 on ImageNet-1k.

  python -m ssljax.main --config=configs/rotation_r50.py --workdir=gs://bucket/rotation_r50
  python -m ssljax.main --config=configs/rotation_r50.py:runlocal --workdir=...  # seconds

The paper's ImageNet network is an AlexNet; this is a ResNet-50 (torchvision layout, bfloat16
compute) with a linear rotation classifier on its pooled feature, ssljax's choice so that the
encoder is the one the other ImageNet recipes and probes use. The rest is the release's
(`config/ImageNet_RotNet_AlexNet.py`): batch 192 images (768 rotated views); SGD with Nesterov
momentum 0.9, lr 0.01 (not scaled with the batch), weight decay 5e-4, lr x 0.1 after epochs 15,
30 and 45 of 50 (scaled with `epochs=`); random resized crops (0.08-1) and flips before
rotating.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, rotation


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=50)
  c = sections.base_config()
  c.method = "rotation"
  c.rotation = rotation.default_config()
  recipes.pretext_imagenet(c, arg)
  c.input.batch_size = 192
  c.optim.lr, c.optim.nesterov = 0.01, True
  c.optim.step_decay_epochs = tuple(e * arg.epochs / 50 for e in (15, 30, 45))
  c.optim.step_decay_factor = 0.1
  c.aug.crop_scale = (0.08, 1.0)
  if arg.runlocal:
    recipes.pretext_runlocal(c)
  c.lock()
  return c
