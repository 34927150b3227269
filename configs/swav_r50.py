"""SwAV ResNet-50 on ImageNet-1k (Caron et al., NeurIPS 2020), the paper's settings.

  python -m ssljax.main --config=configs/swav_r50.py --workdir=gs://BUCKET/swav_r50
  python -m ssljax.main --config=configs/swav_r50.py:runlocal --workdir=/tmp/swav_local

Batch 4096, LARC (on every parameter) lr 0.3 x 4096 / 256 = 4.8, wd 1e-6, 10 warm-up epochs
linear from 0.3, cosine to 0.0048; 3000 prototypes frozen for the
first 313 steps, temperature 0.1, Sinkhorn-Knopp epsilon 0.05 with 3 iterations over the
global batch; head 2048 -> 128; multi-crop 2 x 224px (scale 0.14-1) + 6 x 96px (0.05-0.14),
each with flip, color jitter (0.8, 0.8, 0.8, 0.2) p=0.8, grayscale p=0.2, blur p=0.5.
Linear accuracy: 72.1 at 100 epochs with multi-crop, 75.3 at 800 (paper, Table 11 / 1); the
seed's comparison (SimSiam paper, Table 4, without multi-crop): 66.5 / 69.1 / 70.7 / 71.8 at
100 / 200 / 400 / 800 epochs. Needs TFDS imagenet2012 as array_record.

Heads and BatchNorm as the release: the projector runs once on all crops, its BN over every
crop (`swav.projector_over_all_crops`); head and prototypes initialised as PyTorch's nn.Linear
(`swav.head_init`); BatchNorm running variances unbiased and the residual blocks' last BN
scale at 1 (`model.bn_running_var`, `model.zero_init_residual`).
Computes in bfloat16 (the release: fp16, apex AMP O1); state and loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, swav


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method, c.swav = "swav", swav.default_config()
  c.swav.freeze_prototypes_steps = 313  # main_swav.py: no prototype gradient if iteration < 313
  c.swav.num_small_crops = 6
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=0.3,
                           weight_decay=1e-6, warmup_epochs=10)
  c.optim.warmup_init_lr, c.optim.min_lr = 0.3, 0.0048  # start_warmup, final_lr
  # apex LARC over model.parameters(): BN and biases get weight decay and the trust ratio too
  c.optim.decay_1d_params, c.optim.lars_lr_after_momentum = True, True
  c.aug.crop_scale = (0.14, 1.0)
  if not arg.runlocal:
    c.swav.head_init, c.swav.projector_over_all_crops = "torch", True
    c.model.bn_running_var, c.model.zero_init_residual = "unbiased", False
  if arg.runlocal:
    c.swav.num_small_crops = 2
    recipes.siamese_runlocal(c)
  else:
    c.aug.color_jitter = (0.8, 0.8, 0.8, 0.2)  # get_color_distortion(s=1.0)
  c.lock()
  return c
