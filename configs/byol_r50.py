"""BYOL ResNet-50 on ImageNet-1k (Grill et al., NeurIPS 2020), the paper's settings.

  python -m ssljax.main --config=configs/byol_r50.py --workdir=gs://BUCKET/byol_r50
  python -m ssljax.main --config=configs/byol_r50.py:runlocal --workdir=/tmp/byol_local

Batch 4096, LARS, 10 warm-up epochs, cosine; the release's presets per epoch count (`PRESETS`):
blr 0.45 / 0.45 / 0.3 / 0.2 (lr = blr x 4096 / 256), wd 1e-6 (1.5e-6 at 1000), target momentum
0.97 / 0.99 / 0.99 / 0.996 -> 1 (cosine) at 40 / 100 / 300 / 1000 epochs (default 100), lr
applied after the momentum trace as the release's LARS; projector and predictor 4096 hidden ->
256 (BN on the hidden layer); normalised MSE, symmetrised. Augmentation: crops 0.08-1 drawn once
and clamped to the image (the release's sampler, `input.crop_sampler="clamped"`), flip, color
jitter (0.4, 0.4, 0.2, 0.1) p=0.8 as the release does it (`aug.color_jitter_impl="tf_additive"`:
brightness x + delta, contrast around each channel's mean, saturation scaled in HSV), grayscale
p=0.2, blur p=1.0 / 0.1 and solarize p=0 / 0.2 on views 1 / 2; crops resized without antialiasing
(`input.resize_antialias=False`). Hardware: the paper used 512 TPU v3 cores. Linear accuracy: 74.3
at 1000 epochs (paper, Table 1); the seed's comparison (SimSiam paper, Table 4): 66.5 / 70.6 / 73.2
/ 74.3 at 100 / 200 / 400 / 800 epochs. Needs TFDS imagenet2012 as array_record.

Heads as the release: projector and predictor outputs without bias
(`byol.projector_output_bias`, `byol.predictor_output_bias`), Linear layers initialised as
Haiku's hk.Linear (`byol.head_init`); convolutions as hk.Conv2D's default, truncated normal
1/sqrt(fan_in) not rescaled for the cut (`model.resnet_init`).
Computes in bfloat16 (the release: float32, Haiku's default); state and loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import byol, recipes

# The release's presets per epoch count (byol/configs/byol.py): (blr, weight decay, base tau).
PRESETS = {40: (0.45, 1e-6, 0.97), 100: (0.45, 1e-6, 0.99), 300: (0.3, 1e-6, 0.99),
           1000: (0.2, 1.5e-6, 0.996)}


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  blr, weight_decay, tau = recipes.epoch_preset(
      "byol_r50", PRESETS, arg.epochs, ("optim.blr", "optim.weight_decay", "byol.momentum"))
  c = sections.base_config()
  c.method, c.byol = "byol", byol.default_config()
  c.byol.momentum = tau
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=blr,
                           weight_decay=weight_decay, warmup_epochs=10,
                           interpolation="bicubic")
  c.optim.lars_lr_after_momentum = True  # utils/optimizers.py: step = -lr * momentum trace
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  else:
    c.byol.head_init = c.model.resnet_init = "haiku"  # hk.Linear's and hk.Conv2D's defaults
    c.byol.projector_output_bias = c.byol.predictor_output_bias = False
    recipes.asymmetric_views(c)
    c.input.crop_sampler, c.input.resize_antialias = "clamped", False  # utils/dataset.py
    c.aug.color_jitter_impl = "tf_additive"  # additive brightness, TF contrast and saturation
  c.lock()
  return c
