"""MAE ViT-L/16 pre-training on ImageNet-1k (He et al. 2022), the paper's main recipe.

  python -m ssljax.main --config=configs/mae_vitl.py --workdir=gs://BUCKET/mae_vitl
  python -m ssljax.main --config=configs/mae_vitl.py:epochs=1600 --workdir=...
  python -m ssljax.main --config=configs/mae_vitl.py:runlocal --workdir=/tmp/mae_vitl_local

Hardware: the paper used 128 TPU v3 cores at batch 4096. Needs TFDS imagenet2012 prepared
as array_record (without it the run stops at once and says how to prepare it).
Paper result (1600 epochs): fine-tune top-1 85.9, linear probe 75.8; 800 epochs: fine-tune
84.9 and the Table 1 ablations (75% masking, 8 x 512 decoder, norm-pix targets, no mask
tokens in the encoder).
Computes in bfloat16 as the paper did on TPUs (the release's GPU code: fp16 autocast);
parameters, optimizer state, norm-pix targets and the loss in float32. No remat: 32 images
per device keep 11.6 GB (docs/accelerators.md; model.remat="dots" for larger batches).
"""
from ssljax.config import loading
from ssljax.methods import recipes


def get_config(arg=None):
  c = recipes.mae_imagenet("L/16", arg)
  if not loading.parse_arg(arg, runlocal=False, epochs=800).runlocal:  # runlocal: as before
    # the release leaves the patch projection's bias at PyTorch's init
    c.model.vit_init = "xavier_torch_bias"
  return c
