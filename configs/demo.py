"""MAE on the embedded default dataset: real handwritten digits, no download, CPU minutes.

  python -m ssljax.main --config=configs/demo.py --workdir=/tmp/ssljax-demo

Pre-trains a small ViT MAE on scikit-learn's 1,497 training digits (8x8 scans upsampled to
32x32 RGB, 8x8 = 64 patches of 4x4 pixels), then reports weighted kNN top-1 on the 300
held-out digits for the trained encoder and for the same encoder at random init, and writes
the reconstruction figure. Flip is off: mirrored digits are different digits.
Expected on 2 CPU cores: see README (demo row of the results table).
Variants: `:runlocal` (seconds, for smoke tests).
"""
from ssljax.config import loading, sections
from ssljax.methods import mae, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False)
  c = sections.base_config()
  c.method = "mae"
  recipes.embedded_digits(c)
  c.input.batch_size = 128
  c.model.variant = "Ti/4"
  c.model.width, c.model.depth, c.model.num_heads, c.model.mlp_dim = 128, 4, 4, 512
  c.mae = mae.default_config()
  c.mae.decoder_width = 64
  c.mae.decoder_depth = 1
  c.mae.decoder_heads = 2
  c.aug.flip = False
  c.aug.crop_scale = (0.35, 1.0)
  c.total_steps = 400
  c.optim.blr = 1.5e-3
  c.optim.warmup_steps = 40
  c.log_every_steps = 25
  c.checkpoint_every_steps = 100
  c.evals.knn = sections.knn_eval_config(every_steps=400, batch_size=256)
  c.evals.knn.random_init_baseline = True
  c.evals.recon = mae.recon_eval_config(every_steps=400)
  if arg.runlocal:
    c.model.variant = "mu/4"
    c.model.width, c.model.depth, c.model.num_heads, c.model.mlp_dim = None, None, None, None
    c.mae.decoder_width, c.mae.decoder_depth = 32, 1
    c.input.batch_size = 32
    c.total_steps = 6
    c.log_every_steps = 1
    c.checkpoint_every_steps = 3
    c.evals.knn.every_steps = 6
    c.evals.recon.every_steps = 6
  c.lock()
  return c
