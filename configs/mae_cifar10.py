"""MAE ViT-Ti/4 on CIFAR-10 (32x32, 64 patches), a small-scale version of the paper's recipe.

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10   # directory of train_*.npz / test.npz
  python -m ssljax.main --config=configs/mae_cifar10.py --workdir=/tmp/mae_cifar10
  python -m ssljax.main --config=configs/mae_cifar10.py:source=tfds --workdir=...  # TFDS cifar10
  python -m ssljax.main --config=configs/mae_cifar10.py:runlocal --workdir=/tmp/mae_c10_local

The npz layout is `images` uint8 [N, 32, 32, 3] and `labels` [N] per shard (see
shared/data/cifar10/README.md); `input.data_dir` defaults to $SSLJAX_CIFAR10_DIR.
The paper has no CIFAR-10 result; this recipe keeps its settings (AdamW 0.9/0.95, wd 0.05,
blr 1.5e-4, 75% masking, norm-pix) with a ViT-Ti encoder and a 4 x 128 decoder, batch 512,
400 epochs (20 warm-up). It is also the model timed by benchmarks/mae_step_vs_torch.py.
"""
from ssljax.config import loading, sections
from ssljax.methods import mae, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, source="npz", epochs=400)
  c = sections.base_config()
  c.method = "mae"
  recipes.cifar10_input(c, arg.source)
  c.model.variant = "Ti/4"
  c.mae = mae.default_config()
  c.mae.decoder_width, c.mae.decoder_depth, c.mae.decoder_heads = 128, 4, 4
  c.mae.pca_dims = 6  # for mae.target=pca: an eighth of the 48-d patch, as the paper's 96 of 768
  c.total_epochs = arg.epochs
  c.optim.warmup_epochs = 20
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000
  c.evals.knn = sections.knn_eval_config(every_steps=2000, batch_size=512)
  c.evals.recon = mae.recon_eval_config(every_steps=2000)
  if arg.runlocal:
    recipes.mae_runlocal(c, embedded_data=False)
  c.lock()
  return c
