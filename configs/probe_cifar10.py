"""Linear probe and kNN on CIFAR-10 of an encoder pre-trained with configs/mae_cifar10.py or
configs/simsiam_cifar10.py (or a baseline).

  python -m ssljax.main --config=configs/probe_cifar10.py:recipe=mae \
      --config.init_from=/tmp/mae_cifar10 --workdir=/tmp/mae_cifar10_probe
  python -m ssljax.main --config=configs/probe_cifar10.py:recipe=simsiam ...
  python -m ssljax.main --config=configs/probe_cifar10.py:protocol=knn ...
  python -m ssljax.main --config=configs/probe_cifar10.py:baseline=pca ...   # or pixels, random_init,
                                                                             # kmeans

Paper recipes (see `recipes.linear_probe`; LARS at the papers' peak lr) at batch 512, 90
epochs with on-device crop + flip;
`:cpu` trains the head on cached features of the un-augmented images instead (50 epochs), the
CPU budget of docs/results.md.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, cpu=False, protocol="linear_probe",
                             baseline="", recipe="mae", source="npz", epochs=90.0)
  c = sections.probe_base_config()
  c.protocol, c.baseline = arg.protocol, arg.baseline
  recipes.cifar10_input(c, arg.source)
  recipes.linear_probe(c, arg.recipe, batch_size=512, paper_peak_lr=True,
                       release=False)
  c.total_epochs = arg.epochs
  c.eval_every_steps = 2000
  c.checkpoint_every_steps = 1000
  if arg.recipe == "mae":
    c.optim.warmup_epochs = min(10, arg.epochs / 9)
  if arg.cpu:
    c.probe.augment = False
    c.total_epochs = min(arg.epochs, 50)
  if arg.runlocal:
    recipes.embedded_digits(c)
    c.input.batch_size = 64
    c.total_epochs, c.optim.warmup_epochs = 2, None
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 5, 20, 20
  c.lock()
  return c
