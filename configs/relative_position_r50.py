"""Relative patch position (Doersch et al. ICCV 2015) with a ResNet-50 on ImageNet-1k at 224 px.

  python -m ssljax.main --config=configs/relative_position_r50.py --workdir=gs://bucket/relpos
  python -m ssljax.main --config=configs/relative_position_r50.py:runlocal --workdir=...

The paper: 96 px patches, 48 px gaps, up to 7 px jitter from images of 150K-450K pixels,
AlexNet-style towers to fc6, then fc7, fc8 (4096 each) and an 8-way fc9 on the concatenated
pair (the release's `train.py`), chromatic aberration handled by colour dropping (the release)
or projection; each patch randomly down-sampled (p 0.33) and normalised to its own RMS. Here: a
random resized crop (0.5-1) of each image to 224 px, a grid of 52 px patches with 26 px gaps
and up to 4 px jitter (the paper's proportions of a patch, the grid spanning 208 of 224 px; see
the module docstring), colour dropping, the release's down-sampling and RMS normalisation, a
ResNet-50 (bfloat16 compute) on each patch and a 3-layer head 4096 wide (fc7, fc8, fc9) on the
two concatenated features. Optimisation is ssljax's: batch 256 images, SGD momentum 0.9,
lr = 0.1 x batch / 256, weight decay 5e-4, cosine over 100 epochs. `:runlocal`: the 32 px
geometry (7 / 3 / 1) on the embedded digits.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, relative_position


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method = "relative_position"
  c.relative_position = relative_position.default_config()
  c.relative_position.patch_size, c.relative_position.gap = 52, 26
  c.relative_position.jitter, c.relative_position.head_hidden_dim = 4, 4096
  recipes.pretext_imagenet(c, arg)
  c.optim.blr = 0.1
  if arg.runlocal:
    c.relative_position.update(relative_position.default_config())
    recipes.pretext_runlocal(c)
  c.lock()
  return c
