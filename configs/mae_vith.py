"""MAE ViT-H/14 pre-training on ImageNet-1k (He et al. 2022).

  python -m ssljax.main --config=configs/mae_vith.py:epochs=1600 --workdir=gs://BUCKET/mae_vith
  python -m ssljax.main --config=configs/mae_vith.py:runlocal --workdir=/tmp/mae_vith_local

Hardware: TPU v3-128 class at batch 4096. Computes in bfloat16 (the paper: bfloat16 on TPUs;
the release: fp16 autocast on GPUs) with remat "dots": without it 32 images per device keep
22 GB, over a 16 GB TPU v3 core (docs/accelerators.md).
Paper result (1600 epochs): fine-tune top-1 86.9 at 224px (87.8 at 448px), linear 76.6.
"""
from ssljax.config import loading
from ssljax.methods import recipes


def get_config(arg=None):
  c = recipes.mae_imagenet("H/14", arg)
  if not loading.parse_arg(arg, runlocal=False, epochs=800).runlocal:  # runlocal: as before
    # the release leaves the patch projection's bias at PyTorch's init
    c.model.vit_init = "xavier_torch_bias"
    c.model.remat = "dots"  # keeps the Linear outputs, recomputes norms, GELU and attention
  return c
