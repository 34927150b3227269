"""Colorization (Zhang, Isola & Efros, ECCV 2016) on ImageNet-1k, ResNet-50 at 224 px.

  python -m ssljax.main --config=configs/colorization_r50.py --workdir=gs://BUCKET/color_r50
  python -m ssljax.main --config=configs/colorization_r50.py:runlocal --workdir=/tmp/color_local

The paper: L in, ab as a classification over grid-10 ab bins, soft targets (5 nearest, sigma 5),
class rebalancing (lambda 0.5, sigma 5) from ImageNet's ab distribution; Adam (0.9, 0.99), lr
3e-5, weight decay 1e-3, batch 40, about 450k iterations with step drops of the lr. Changed: a
ResNet-50 encoder (the paper: a VGG-style network with dilated convolutions) and the shared
decoder, the ab map at 224 px (the paper: 56 px), the bins from the sRGB gamut (261, not 313),
the distribution from 2000 training images (`fit_state`), a cosine schedule over `epochs`
(default 15, about 450k iterations of 40). Needs TFDS imagenet2012 as array_record.
"""
from ssljax.config import loading, sections
from ssljax.methods import colorization, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=15)
  c = sections.base_config()
  c.method, c.colorization = "colorization", colorization.default_config()
  recipes.dense_imagenet(c, arg, image_size=224, batch_size=40, lr=3e-5, betas=(0.9, 0.99),
                         weight_decay=1e-3)
  if arg.runlocal:
    c.colorization.prior_examples = 256
  c.lock()
  return c
