"""BYOL ResNet-50 on ImageNet-1k (Grill et al., NeurIPS 2020), the paper's settings.

  python -m ssljax.main --config=configs/byol_r50.py --workdir=gs://BUCKET/byol_r50
  python -m ssljax.main --config=configs/byol_r50.py:runlocal --workdir=/tmp/byol_local

Batch 4096, LARS lr 0.2 x 4096 / 256 = 3.2, wd 1.5e-6, 10 warm-up epochs, cosine; target
momentum 0.996 -> 1 (cosine); projector and predictor 4096 hidden -> 256 (BN on the hidden
layer); normalised MSE, symmetrised. Augmentation: crops 0.08-1, flip, color jitter p=0.8,
grayscale p=0.2, blur p=0.5 on both views (the paper's asymmetric blur 1.0/0.1 and solarize
0/0.2 are not reproduced). Hardware: the paper used 512 TPU v3 cores. Linear accuracy: 74.3 at
1000 epochs (paper, Table 1); the seed's comparison (SimSiam paper, Table 4): 66.5 / 70.6 /
73.2 / 74.3 at 100 / 200 / 400 / 800 epochs. Needs TFDS imagenet2012 as array_record.

Heads as the release: projector and predictor outputs without bias
(`byol.projector_output_bias`, `byol.predictor_output_bias`), Linear layers initialised as
Haiku's hk.Linear (`byol.head_init`).
"""
from ssljax.config import loading, sections
from ssljax.methods import byol, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method, c.byol = "byol", byol.default_config()
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=0.2,
                           weight_decay=1.5e-6, warmup_epochs=10, interpolation="bicubic")
  if not arg.runlocal:
    c.byol.head_init = "haiku"
    c.byol.projector_output_bias = c.byol.predictor_output_bias = False
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
