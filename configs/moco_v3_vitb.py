"""MoCo v3 ViT-B/16 on ImageNet-1k (Chen, Xie & He, ICCV 2021), the paper's ViT recipe.

  python -m ssljax.main --config=configs/moco_v3_vitb.py --workdir=gs://BUCKET/moco_v3_vitb
  python -m ssljax.main --config=configs/moco_v3_vitb.py:runlocal --workdir=/tmp/mocov3_vit

Batch 4096, AdamW lr 1.5e-4 x 4096 / 256, wd 0.1, 40 warm-up epochs, cosine, 300 epochs;
temperature 0.2; momentum 0.99 -> 1 (cosine); projector 3 layers and predictor 2 layers, 4096
hidden -> 256, BN; fixed 2-D sin-cos position embeddings and a frozen random patch projection
(the paper's stability fix, `optim.frozen_regex`); the release's ViT init (q, k and v each
xavier, cls token N(0, 1e-6)); features are the cls token. Linear
accuracy: 76.7 (paper, Table 5). Needs TFDS imagenet2012 as array_record.
"""
from ssljax.config import loading, sections
from ssljax.methods import moco, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=300)
  c = sections.base_config()
  c.method, c.moco = "moco", moco.default_config(version=3)
  c.moco.temperature, c.moco.projector_layers = 0.2, 3
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="adamw", blr=1.5e-4,
                           weight_decay=0.1, warmup_epochs=40)
  c.optim.b1, c.optim.b2 = 0.9, 0.999
  c.optim.wd_exclude = r"(^|/)(cls_token|pos_embed)$"
  c.optim.frozen_regex = "^backbone/patch_embed/"
  c.model.variant = "B/16"
  if arg.runlocal:  # the init runlocal always had
    recipes.siamese_runlocal(c)
    c.model.variant = "mu/4"
  else:
    c.model.vit_init = "mocov3"  # q, k, v initialised separately, cls token N(0, 1e-6)
  c.lock()
  return c
