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
from ssljax import config_lib, recipes


def get_config(arg=None):
  arg = config_lib.parse_arg(arg, runlocal=False, cpu=False, source="npz", epochs=800)
  c = config_lib.base_config()
  recipes.simsiam_base(c)
  recipes.cifar10_input(c, arg.source)
  c.model.variant = "resnet18"
  c.model.cifar_stem = True
  c.simsiam.projector_layers = 2
  c.optim.blr = 0.03
  c.optim.weight_decay = 5e-4
  c.total_epochs = arg.epochs
  c.log_every_steps = 20
  c.checkpoint_every_steps = 500
  c.evals.knn = config_lib.knn_eval_config(every_steps=980, feature="backbone", batch_size=512)
  c.evals.knn.k, c.evals.knn.temperature = (200,), 0.1
  if arg.cpu:
    c.model.resnet_width = 16
    c.simsiam.dim, c.simsiam.predictor_hidden_dim = 512, 128
    c.input.batch_size = 256
    c.total_epochs, c.total_steps = None, 800
    c.evals.knn.every_steps = 200
    c.evals.knn.max_train_examples, c.evals.knn.max_test_examples = 10000, 2000
    c.evals.knn.random_init_baseline = True
  if arg.runlocal:
    recipes.simsiam_runlocal(c)
  c.lock()
  return c
