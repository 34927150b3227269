"""MoCo v3 ResNet-50 on ImageNet-1k (Chen, Xie & He, ICCV 2021), the paper's settings.

  python -m ssljax.main --config=configs/moco_v3_r50.py --workdir=gs://BUCKET/moco_v3_r50
  python -m ssljax.main --config=configs/moco_v3_r50.py:runlocal --workdir=/tmp/mocov3_local

Batch 4096, LARS, 10 warm-up epochs, cosine; the release's recipes per epoch count (`PRESETS`):
lr 0.6 x 4096 / 256 = 9.6 at 100 epochs, 0.3 x 16 at 300 and 1000, wd 1e-6 (1.5e-6 at 1000),
momentum 0.99 (0.996 at 1000) -> 1 (cosine); no queue: the global batch's other examples are
the negatives; symmetric contrastive loss scaled by 2t, t = 1.0; projector 2048 -> 4096 -> 256
and predictor 256 -> 4096 -> 256 with BN; crops 0.2-1 (`--crop-min=.2`), flip, color jitter
(0.4, 0.4, 0.2, 0.1) p=0.8, grayscale p=0.2, blur p=1.0 / 0.1 and solarize p=0 / 0.2 on views
1 / 2. Linear accuracy: 68.9 / 72.8 / 74.6 at 100 / 300 / 1000 epochs (paper, Table 5 and the
official repository). Needs TFDS imagenet2012 as array_record.
ViT: configs/moco_v3_vitb.py.

Heads and BatchNorm as the release: every Linear without bias (`moco.predictor_output_bias`),
initialised as PyTorch's nn.Linear (`moco.head_init`), BatchNorm running variances unbiased
(`model.bn_running_var`).
Computes in bfloat16 (the release: fp16 autocast with a loss scaler); state and loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import moco, recipes

# The release's ResNet-50 recipes per epoch count (CONFIG.md): (blr, weight decay, momentum).
PRESETS = {100: (0.6, 1e-6, 0.99), 300: (0.3, 1e-6, 0.99), 1000: (0.3, 1.5e-6, 0.996)}


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  blr, weight_decay, momentum = recipes.epoch_preset(
      "moco_v3_r50", PRESETS, arg.epochs, ("optim.blr", "optim.weight_decay", "moco.momentum"))
  c = sections.base_config()
  c.method, c.moco = "moco", moco.default_config(version=3)
  c.moco.momentum = momentum
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=blr,
                           weight_decay=weight_decay, warmup_epochs=10)
  c.optim.lars_lr_after_momentum = True  # moco/optimizer.py: p -= lr * (momentum trace)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  else:
    c.moco.head_init, c.model.bn_running_var = "torch", "unbiased"
    c.moco.predictor_output_bias = False
    recipes.asymmetric_views(c)
    c.aug.crop_scale = (0.2, 1.0)  # --crop-min=.2 in every R-50 command (CONFIG.md)
  c.lock()
  return c
