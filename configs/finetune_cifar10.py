"""Fine-tuning on CIFAR-10 of an encoder pre-trained with configs/mae_cifar10.py (ViT-Ti/4), or
with `:recipe=resnet` of a ResNet backbone (configs/simsiam_cifar10.py, simclr_, moco_v2_,
byol_, swav_cifar10.py: ResNet-18).

  python -m ssljax.main --config=configs/finetune_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_finetune
  python -m ssljax.main --config=configs/finetune_cifar10.py:baseline=random_init \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/random_cifar10_finetune
  python -m ssljax.main --config=configs/finetune_cifar10.py:recipe=resnet \
      --config.init_from=/tmp/simsiam_cifar10 --workdir=/tmp/simsiam_cifar10_finetune
  python -m ssljax.main --config=configs/finetune_cifar10.py:recipe=resnet,baseline=random_init \
      --config.init_from=/tmp/simsiam_cifar10 --workdir=/tmp/random_r18_cifar10_finetune

`recipe=vit` (default): MAE's ViT-B fine-tuning recipe (`recipes.finetune`: layer decay 0.65,
drop path 0.1, RandAugment, mixup/cutmix, label smoothing, random erasing, AdamW blr 5e-4, 100
epochs, 5 warm-up) at batch 512 and 32x32. `recipe=resnet`: SimCLR's CIFAR-10 fine-tuning
(`recipes.finetune_resnet`: SGD Nesterov 0.9, lr 0.1 x 512 / 256, cosine without warm-up, no
weight decay, crop + flip only, zero-initialised head, 100 epochs); the ViT-only layer decay
and drop path are off, and a ResNet refuses them. `:cpu` is a CPU budget: at most one epoch
(`epochs` below 1 shortens it) at batch 128, where the ViT recipe's lr warm-up is a tenth of the
run; docs/results.md runs it for two with `--config.total_epochs=2
--config.optim.warmup_epochs=0.2`. `baseline=random_init` is the floor: the same architecture
and budget from random init (without init_from: `encoder_config`'s architecture).
"""
from ssljax.config import loading, sections
from ssljax.errors import ConfigError
from ssljax.methods import recipes

RECIPES = {"vit": "mae_cifar10", "resnet": "simsiam_cifar10"}  # -> encoder_config


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, cpu=False, baseline="", source="npz",
                             epochs=100.0, recipe="vit")
  if arg.recipe not in RECIPES:
    raise ConfigError(f"recipe={arg.recipe!r} is unknown: use one of {', '.join(RECIPES)}")
  c = sections.finetune_base_config()
  c.baseline = arg.baseline
  recipes.finetune(c, "B")
  if arg.recipe == "resnet":
    recipes.finetune_resnet(c)
  c.encoder_config = RECIPES[arg.recipe]  # the architecture for baseline=random_init
  recipes.cifar10_input(c, arg.source)
  c.total_epochs = arg.epochs
  c.log_every_steps = 50
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 500
  if arg.cpu:
    c.input.batch_size = 128
    c.total_epochs = min(arg.epochs, 1.0)
    if arg.recipe == "vit":
      c.optim.warmup_epochs = c.total_epochs / 10
  if arg.runlocal:
    c.encoder_config = f"{RECIPES[arg.recipe]}:runlocal"
    recipes.embedded_digits(c)
    c.input.batch_size, c.input.num_threads = 32, 2
    c.finetune.eval_batch_size = 64
    c.total_epochs, c.total_steps, c.optim.warmup_epochs = None, 4, None
    c.optim.warmup_steps = 1 if arg.recipe == "vit" else 0
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
  c.lock()
  return c
