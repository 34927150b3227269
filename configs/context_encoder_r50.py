"""Context encoder (Pathak et al., CVPR 2016) on ImageNet-1k at the paper's 128 px, ResNet-50.

  python -m ssljax.main --config=configs/context_encoder_r50.py --workdir=gs://BUCKET/ce_r50
  python -m ssljax.main --config=configs/context_encoder_r50.py:runlocal --workdir=/tmp/ce_local

The paper's central-region inpainting: 128 px images, the central 64 x 64 (1/4 of the area)
filled with the mean colour, the release's 4 px overlap weighted 10x, batch 64, Adam with beta1
0.5 (DCGAN's) at a constant lr 2e-4 without weight decay: the release's (`train.lua`) for the
L2-only loss trained here (it raises the encoder-decoder's lr 10x only when the adversarial
term is on, 0 < wtl2 < 1). Changed: a ResNet-50 encoder (the paper: AlexNet), the shared
convolutional decoder instead of its fully-connected bottleneck, no adversarial loss, `epochs`
(default 100; the paper does not state a length).
Needs TFDS imagenet2012 as array_record.
"""
from ssljax.config import loading, sections
from ssljax.methods import context_encoder, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method, c.context_encoder = "context_encoder", context_encoder.default_config()
  c.context_encoder.overlap = 4
  recipes.dense_imagenet(c, arg, image_size=128, batch_size=64, lr=2e-4, betas=(0.5, 0.999),
                         weight_decay=0.0)
  c.optim.min_lr = c.optim.lr  # the cosine from 2e-4 to 2e-4: constant, as the release
  if arg.runlocal:
    c.context_encoder.overlap = 2
  c.lock()
  return c
