"""MAE fine-tuning on ImageNet-1k of a ViT pre-trained with configs/mae_vit{b,l,h}.py.

  python -m ssljax.main --config=configs/finetune_imagenet.py:size=L \
      --config.init_from=/ckpt/mae_vitl --workdir=/ckpt/mae_vitl_finetune

The paper's recipe (He et al. 2022, appendix A.3; `recipes.finetune`): batch 1024, AdamW
(0.9, 0.999), wd 0.05, blr 5e-4 (B) or 1e-3 (L, H), layer decay 0.65 (B) or 0.75 (L, H), drop
path 0.1 / 0.2 / 0.3, 100 epochs (B) or 50 (L, H) with 5 warm-up, RandAugment (9, 0.5),
label smoothing 0.1, mixup 0.8, cutmix 1.0 (one draw per group of 32 images, as timm's Mixup
on each GPU's batch), random erasing 0.25, average pooling + norm, the position embedding
trained from the pre-training's sin-cos values; top-1 on the 50,000 validation images at
224x224. Computes in bfloat16 (the release: fp16 autocast), ViT-L/H with remat "dots".

The paper's numbers (ImageNet-1k top-1, pre-training 1600 epochs, Table 3 / Fig. 8):
  fine-tuning     ViT-B 83.6   ViT-L 85.9   ViT-H 86.9
  linear probing  ViT-B 68.0   ViT-L 75.8   ViT-H 76.6   (configs/probe_imagenet.py)
`baseline=random_init` fine-tunes the same architecture from scratch with this budget (the
paper's from-scratch ViT-L reaches 82.5 only with its longer, stronger recipe).
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, size="B", baseline="")
  c = sections.finetune_base_config()
  c.baseline = arg.baseline
  recipes.finetune(c, arg.size)
  c.finetune.mixup_group_size = 32  # timm's Mixup runs on each GPU's batch of 32
  c.finetune.learned_pos_embed = True  # timm's pos_embed is a parameter, loaded as sin-cos
  c.finetune.dtype = "bfloat16"  # the release: fp16 autocast; parameters and loss float32
  # without remat 32 images per device keep ~20 (L) / ~43 GB (H) (docs/accelerators.md)
  c.finetune.remat = "none" if arg.size == "B" else "dots"
  c.encoder_config = f"mae_vit{arg.size.lower()}"  # the architecture for baseline=random_init
  c.input.source, c.input.name = "tfds", "imagenet2012"
  c.input.image_size = 224
  c.input.interpolation = "bicubic"  # timm's create_transform in the release, train and eval
  c.finetune.test_split = "validation"
  c.finetune.eval_batch_size = 1024
  c.log_every_steps = 100
  c.eval_every_steps, c.eval_every_epochs = None, 1.0  # resolved at the final batch size
  c.checkpoint_every_steps, c.checkpoint_every_epochs = None, 1.0
  if arg.runlocal:
    c.finetune.learned_pos_embed = False  # runlocal's numbers as before
    c.finetune.dtype, c.finetune.remat = "float32", "none"
    c.encoder_config = "demo:runlocal"
    recipes.embedded_digits(c)
    c.input.batch_size, c.input.num_threads = 32, 2
    c.finetune.test_split, c.finetune.eval_batch_size = "test", 64
    c.total_epochs, c.total_steps, c.optim.warmup_epochs, c.optim.warmup_steps = None, 4, None, 1
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
    c.eval_every_epochs, c.checkpoint_every_epochs = None, None
  c.lock()
  return c
