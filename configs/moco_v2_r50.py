"""MoCo v2 ResNet-50 on ImageNet-1k (Chen, Fan, Girshick & He 2020), the paper's settings.

  python -m ssljax.main --config=configs/moco_v2_r50.py --workdir=gs://BUCKET/moco_v2_r50
  python -m ssljax.main --config=configs/moco_v2_r50.py:runlocal --workdir=/tmp/moco_local

Batch 256, SGD lr 0.03 x 256 / 256, momentum 0.9, wd 1e-4 on every parameter, cosine set
once per epoch, 200 epochs; key encoder
momentum 0.999; queue of 65536 keys; temperature 0.2; MLP head 2048 -> 128; crops 0.2-1,
flip, color jitter (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale p=0.2, blur p=0.5. BatchNorm as on the
release's 8 GPUs without SyncBN: per group of 32 examples in both encoders, with shuffle BN on
the key encoder (`model.bn_group_size`, `moco.shuffle_bn`). Hardware: the paper used 8 V100s.
Linear accuracy: 67.5 at 200 epochs, 71.1 at 800 (paper, Table 2); the seed's comparison
(SimSiam paper, Table 4): 67.4 / 69.9 / 71.0 / 72.2 at 100 / 200 / 400 / 800 epochs. Needs TFDS
imagenet2012 as array_record.

Heads and BatchNorm as the release (torchvision's defaults): the head initialised as
nn.Linear, BatchNorm running variances unbiased, the residual blocks' last BN scale at 1
(`moco.head_init`, `model.bn_running_var`, `model.zero_init_residual`).
Computes in bfloat16 (the release: float32); parameters, BN statistics and the loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import moco, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=200)
  c = sections.base_config()
  c.method, c.moco = "moco", moco.default_config(version=2)
  recipes.siamese_imagenet(c, arg, batch_size=256, optimizer="sgd", blr=0.03,
                           weight_decay=1e-4)
  c.optim.decay_1d_params = True  # main_moco.py: SGD over model.parameters(), BN and biases too
  c.optim.schedule_per_epoch = True  # adjust_learning_rate once per epoch
  if not arg.runlocal:
    c.aug.crop_scale, c.aug.color_jitter = (0.2, 1.0), (0.4, 0.4, 0.4, 0.1)
    c.moco.head_init, c.model.bn_running_var = "torch", "unbiased"
    c.model.zero_init_residual = False
    c.model.bn_group_size, c.moco.shuffle_bn = 256 // 8, True  # per-GPU BN, _batch_shuffle_ddp
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
