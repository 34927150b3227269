"""MAE ViT-B/16 pre-training on ImageNet-1k (He et al. 2022).

  python -m ssljax.main --config=configs/mae_vitb.py --workdir=gs://BUCKET/mae_vitb
  python -m ssljax.main --config=configs/mae_vitb.py:epochs=1600 --workdir=...
  python -m ssljax.main --config=configs/mae_vitb.py:runlocal --workdir=/tmp/mae_vitb_local

Hardware: the paper used 64 V100 / TPU v3 pods at batch 4096; any v4-64 / 32xA100 class
slice runs it. Needs TFDS imagenet2012 prepared as array_record.
Paper result (1600 epochs): fine-tune top-1 83.6, linear probe 68.0 (Table 3 and appendix);
800 epochs: fine-tune 83.4 (Table 1 setting: 75% masking, 8-block decoder, norm-pix).
Computes in bfloat16 as the paper did on TPUs (the release's GPU code: fp16 autocast);
parameters, optimizer state, norm-pix targets and the loss in float32.
"""
from ssljax.config import loading
from ssljax.methods import recipes


def get_config(arg=None):
  c = recipes.mae_imagenet("B/16", arg)
  if not loading.parse_arg(arg, runlocal=False, epochs=800).runlocal:  # runlocal: as before
    # the release leaves the patch projection's bias at PyTorch's init
    c.model.vit_init = "xavier_torch_bias"
  return c
