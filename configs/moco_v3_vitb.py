"""MoCo v3 ViT-B/16 on ImageNet-1k (Chen, Xie & He, ICCV 2021), the paper's ViT recipe.

  python -m ssljax.main --config=configs/moco_v3_vitb.py --workdir=gs://BUCKET/moco_v3_vitb
  python -m ssljax.main --config=configs/moco_v3_vitb.py:runlocal --workdir=/tmp/mocov3_vit

Batch 4096, AdamW lr 1.5e-4 x 4096 / 256, wd 0.1 on every parameter, 40 warm-up epochs, cosine,
300 epochs;
temperature 0.2; momentum 0.99 -> 1 (cosine); projector 3 layers and predictor 2 layers, 4096
hidden -> 256, BN; fixed 2-D sin-cos position embeddings and a frozen random patch projection
(the paper's stability fix, `optim.frozen_regex`); the release's ViT init (q, k and v each
xavier, cls token N(0, 1e-6)); features are the cls token; crops 0.08-1, blur p=1.0 / 0.1 and
solarize p=0 / 0.2 on views 1 / 2 (as the ResNet-50 recipe). Linear
accuracy: 76.7 (paper, Table 5). Needs TFDS imagenet2012 as array_record.

Heads and BatchNorm as the release: every Linear without bias, the predictor's output
through a BN without affine (`moco.predictor_last_bn`), initialised as PyTorch's nn.Linear
(`moco.head_init`), BatchNorm running variances unbiased (`model.bn_running_var`).
Computes in bfloat16 (the release: fp16 autocast with a loss scaler); state and loss float32.
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
  # main_moco.py: AdamW over model.parameters(), so biases, norms and cls_token are decayed too
  c.optim.wd_exclude, c.optim.decay_1d_params = None, True
  c.optim.frozen_regex = "^backbone/patch_embed/"
  c.model.variant = "B/16"
  if not arg.runlocal:
    c.moco.head_init, c.model.bn_running_var = "torch", "unbiased"
    c.moco.predictor_last_bn, c.moco.predictor_output_bias = True, False
  if arg.runlocal:
    recipes.siamese_runlocal(c)
    c.model.variant = "mu/4"
  else:
    recipes.asymmetric_views(c)
    c.model.vit_init = "mocov3"  # q, k, v initialised separately, cls token N(0, 1e-6)
  c.lock()
  return c
