"""MoCo v3 ResNet-50 on ImageNet-1k (Chen, Xie & He, ICCV 2021), the paper's settings.

  python -m ssljax.main --config=configs/moco_v3_r50.py --workdir=gs://BUCKET/moco_v3_r50
  python -m ssljax.main --config=configs/moco_v3_r50.py:runlocal --workdir=/tmp/mocov3_local

Batch 4096, LARS lr 0.6 x 4096 / 256 = 9.6, wd 1e-6, 10 warm-up epochs, cosine; no queue: the
global batch's other examples are the negatives; symmetric contrastive loss scaled by 2t,
t = 1.0; momentum 0.99 -> 1 (cosine); projector 2048 -> 4096 -> 256 and predictor
256 -> 4096 -> 256 with BN. Linear accuracy: 68.9 / 72.8 / 74.6 at 100 / 300 / 1000 epochs
(paper, Table 5 and the official repository). Needs TFDS imagenet2012 as array_record.
ViT: configs/moco_v3_vitb.py.

Heads and BatchNorm as the release: every Linear without bias (`moco.predictor_output_bias`),
initialised as PyTorch's nn.Linear (`moco.head_init`), BatchNorm running variances unbiased
(`model.bn_running_var`).
"""
from ssljax.config import loading, sections
from ssljax.methods import moco, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method, c.moco = "moco", moco.default_config(version=3)
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=0.6,
                           weight_decay=1e-6, warmup_epochs=10)
  if not arg.runlocal:
    c.moco.head_init, c.model.bn_running_var = "torch", "unbiased"
    c.moco.predictor_output_bias = False
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
