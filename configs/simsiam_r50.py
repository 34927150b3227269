"""SimSiam ResNet-50 on ImageNet-1k (Chen & He, CVPR 2021), the paper's settings.

  python -m ssljax.main --config=configs/simsiam_r50.py --workdir=gs://BUCKET/simsiam_r50
  python -m ssljax.main --config=configs/simsiam_r50.py:epochs=800 --workdir=...
  python -m ssljax.main --config=configs/simsiam_r50.py:runlocal --workdir=/tmp/simsiam_local

Batch 512, SGD lr 0.05 x 512 / 256, momentum 0.9, wd 1e-4, cosine set once per epoch, 100
epochs by default;
3-layer projector (2048-d, BN on every layer), predictor 2048 -> 512 -> 2048 at a fixed lr;
crops 0.2-1, flip, color jitter p=0.8, grayscale p=0.2, Gaussian blur p=0.5. Hardware: the
paper used 8 V100s. Needs TFDS imagenet2012 as array_record.
Paper linear accuracy: 68.1 / 70.0 / 70.8 / 71.3 at 100 / 200 / 400 / 800 epochs (Table 4).

Heads and BatchNorm as the release (PyTorch): every head Linear initialised as nn.Linear,
BatchNorm running variances unbiased (`simsiam.head_init`, `model.bn_running_var`).
Computes in bfloat16 (the release: float32); parameters, BN statistics and the loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  recipes.simsiam_base(c)
  c.input.source = "tfds"
  c.input.name = "imagenet2012"
  c.input.image_size = 224
  c.input.batch_size = 512
  c.model.variant = "resnet50"
  c.model.dtype = "bfloat16"  # accelerator compute; parameters, BN statistics and loss float32
  c.simsiam.projector_layers = 3
  c.optim.blr = 0.05
  c.optim.weight_decay = 1e-4
  c.optim.schedule_per_epoch = True  # main_simsiam.py: adjust_learning_rate once per epoch
  c.aug.blur_prob = 0.5
  c.total_epochs = arg.epochs
  c.log_every_steps = 100
  c.checkpoint_every_steps = 2500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, test_split="validation",
                                         feature="backbone", batch_size=1024)
  if not arg.runlocal:
    c.simsiam.head_init, c.model.bn_running_var = "torch", "unbiased"
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
