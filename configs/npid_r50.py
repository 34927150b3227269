"""Instance discrimination (NPID, Wu, Xiong, Yu & Lin, CVPR 2018) ResNet-50 on ImageNet-1k,
the paper's recipe.

  python -m ssljax.main --config=configs/npid_r50.py --workdir=gs://BUCKET/npid_r50
  python -m ssljax.main --config=configs/npid_r50.py:runlocal --workdir=/tmp/npid_local

Batch 256, SGD lr 0.03 (unscaled), momentum 0.9, wd 1e-4 on every parameter, 200 epochs, lr
x0.1 at epochs 120 and 160 ("scaled down by 10 every 40 epochs after the first 120"); a 128-d
embedding, temperature 0.07, NCE with 4096 negatives, bank momentum 0.5 over the 1,281,167
training images (a bank of 656 MB, sharded over the devices); one view: crops 0.2-1, grayscale
p=0.2, colour jitter (0.4, 0.4, 0.4, 0.4), flip. Reported: 54.0% top-1 with a linear
classifier on conv5 and 46.5% kNN on the embedding (paper, Table 2; these are the paper's
numbers, not measured here). Needs TFDS imagenet2012 as array_record.

As the PyTorch release: the embedding initialised as nn.Linear, BatchNorm running variances
unbiased, residual blocks' last BN scale at 1. Differences: BatchNorm over the whole batch
(the release's DataParallel normalises per GPU), colour jitter before grayscale, Z from the
negatives only (see `ssljax.methods.npid`); computes in bfloat16 (the release: float32) with
parameters, BN statistics, the bank and the loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import npid, recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=200)
  c = sections.base_config()
  c.method, c.npid = "npid", npid.default_config()
  c.input.source, c.input.name = "tfds", "imagenet2012"
  c.input.image_size, c.input.batch_size = 224, 256
  c.model.variant, c.model.dtype = "resnet50", "bfloat16"
  c.model.zero_init_residual, c.model.bn_running_var = False, "unbiased"
  c.npid.head_init = "torch"
  c.optim.name, c.optim.lr, c.optim.momentum, c.optim.weight_decay = "sgd", 0.03, 0.9, 1e-4
  c.optim.wd_exclude, c.optim.decay_1d_params, c.optim.warmup_steps = None, True, 0
  c.optim.step_decay_epochs, c.optim.step_decay_factor = (120, 160), 0.1
  c.aug.crop_scale = (0.2, 1.0)
  c.aug.color_jitter, c.aug.color_jitter_prob, c.aug.grayscale_prob = (0.4,) * 4, 1.0, 0.2
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 100, 2500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, test_split="validation",
                                         feature="embedding", batch_size=1024)
  if arg.runlocal:
    recipes.siamese_runlocal(c)
    c.npid.negatives = 256
    c.optim.step_decay_epochs = ()
  c.lock()
  return c
