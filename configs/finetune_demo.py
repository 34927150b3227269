"""Fine-tuning of the demo's MAE encoder on the embedded digits (CPU minutes).

  python -m ssljax.main --config=configs/demo.py --workdir=/tmp/ssljax-demo
  python -m ssljax.main --config=configs/finetune_demo.py \
      --config.init_from=/tmp/ssljax-demo --workdir=/tmp/ssljax-demo-finetune
  python -m ssljax.main --config=configs/finetune_demo.py:baseline=random_init \
      --config.init_from=/tmp/ssljax-demo --workdir=/tmp/ssljax-demo-finetune-random

MAE's fine-tuning recipe (`recipes.finetune`, ViT-B settings) with what digits need: no flip
(a mirrored digit is another digit), crops of 35-100% as in the demo's pre-training, batch
128, `steps` steps (default 300) of which 30 warm up; top-1 on the 300 held-out digits.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, baseline="", steps=300)
  c = sections.finetune_base_config()
  c.baseline = arg.baseline
  recipes.finetune(c, "B")
  c.encoder_config = "demo"
  recipes.embedded_digits(c)
  c.input.batch_size = 128
  c.finetune.flip = False
  c.finetune.crop_scale = (0.35, 1.0)
  c.finetune.eval_batch_size = 300
  c.total_epochs, c.total_steps = None, arg.steps
  c.optim.warmup_epochs, c.optim.warmup_steps = None, arg.steps // 10
  c.log_every_steps = 25
  c.eval_every_steps = 100
  c.checkpoint_every_steps = 100
  if arg.runlocal:
    c.encoder_config = "demo:runlocal"
    c.input.batch_size, c.input.num_threads = 32, 2
    c.total_steps, c.optim.warmup_steps = 4, 1
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 1, 4, 2
  c.lock()
  return c
