"""SimSiam ResNet-18 (CIFAR variant) on CIFAR-10, the paper's CIFAR recipe (appendix D).

  export SSLJAX_CIFAR10_DIR=/path/to/cifar10   # directory of train_*.npz / test.npz
  python -m ssljax.main --config=configs/simsiam_cifar10.py --workdir=/tmp/simsiam_c10
  python -m ssljax.main --config=configs/simsiam_cifar10.py:cpu --workdir=...      # CPU budget
  python -m ssljax.main --config=configs/simsiam_cifar10.py:runlocal --workdir=...  # seconds

Batch 512, SGD lr 0.03 x 512 / 256, wd 5e-4, momentum 0.9, 800 epochs, cosine; 2-layer
projector (2048-d), predictor bottleneck 512; crops 0.2-1, flip, color jitter p=0.8,
grayscale p=0.2, no blur. The paper reports about 91.8% linear accuracy (kNN monitor, k=200,
T=0.1, is what runs here during training). Ablations: `--config.simsiam.stop_gradient=False`,
`--config.simsiam.predictor=False`, `--config.optim.frozen_regex=^predictor/` (predictor
fixed at random init), `--config.optim.fixed_lr_regex=None` (predictor lr decayed too).
`:cpu` is a narrow ResNet-18 (width 16) with 512-d heads for minutes-long CPU runs.
"""
from ssljax.config import sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = recipes.cifar10_arg(arg)
  c = sections.base_config()
  recipes.simsiam_base(c)
  c.simsiam.projector_layers = 2
  if arg.cpu:
    c.simsiam.dim, c.simsiam.predictor_hidden_dim = 512, 128
  recipes.siamese_cifar10(c, arg)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
