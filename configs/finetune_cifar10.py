"""Fine-tuning on CIFAR-10 of an encoder pre-trained with configs/mae_cifar10.py (ViT-Ti/4).

  python -m ssljax.main --config=configs/finetune_cifar10.py \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_finetune
  python -m ssljax.main --config=configs/finetune_cifar10.py:baseline=random_init \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/random_cifar10_finetune

MAE's ViT-B fine-tuning recipe (`recipes.finetune`: layer decay 0.65, drop path 0.1, RandAugment,
mixup/cutmix, label smoothing, random erasing, AdamW blr 5e-4, 100 epochs, 5 warm-up) at
batch 512 and 32x32. `:cpu` is a CPU budget: at most one epoch (`epochs` below 1 shortens it)
at batch 128, where the lr warm-up is a tenth of the run; docs/results.md runs it for two with
`--config.total_epochs=2 --config.optim.warmup_epochs=0.2`. `baseline=random_init` is the
floor: the same architecture and budget from random init.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, cpu=False, baseline="", source="npz",
                             epochs=100.0)
  c = sections.finetune_base_config()
  c.baseline = arg.baseline
  recipes.finetune(c, "B")
  c.encoder_config = "mae_cifar10"  # the architecture for baseline=random_init
  recipes.cifar10_input(c, arg.source)
  c.total_epochs = arg.epochs
  c.log_every_steps = 50
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 500
  if arg.cpu:
    c.input.batch_size = 128
    c.total_epochs = min(arg.epochs, 1.0)
    c.optim.warmup_epochs = c.total_epochs / 10
  if arg.runlocal:
    c.encoder_config = "mae_cifar10:runlocal"
    recipes.embedded_digits(c)
    c.input.batch_size, c.input.num_threads = 32, 2
    c.finetune.eval_batch_size = 64
    c.total_epochs, c.total_steps, c.optim.warmup_epochs, c.optim.warmup_steps = None, 4, None, 1
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
  c.lock()
  return c
