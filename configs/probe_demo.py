"""Linear probe and kNN of the demo's MAE encoder on the embedded digits (CPU minutes).

  python -m ssljax.main --config=configs/demo.py --workdir=/tmp/ssljax-demo
  python -m ssljax.main --config=configs/probe_demo.py \
      --config.init_from=/tmp/ssljax-demo --workdir=/tmp/ssljax-demo-probe
  python -m ssljax.main --config=configs/probe_demo.py:protocol=knn ...         # kNN only
  python -m ssljax.main --config=configs/probe_demo.py:baseline=pixels ...      # floors: pixels,
                                                      # pca, random_init (needs init_from)

The MAE recipe (cls token, BatchNorm without affine, LARS at the paper's peak lr 6.4) on cached
features of the un-augmented 1,497 training digits (`probe.augment=False`), batch 128, 100
epochs; top-1 on the 300 held-out digits.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, protocol="linear_probe", baseline="",
                             recipe="mae")
  c = sections.probe_base_config()
  c.protocol, c.baseline = arg.protocol, arg.baseline
  recipes.embedded_digits(c)
  recipes.linear_probe(c, arg.recipe, batch_size=128, paper_peak_lr=True,
                       release=False)
  c.probe.augment = False
  c.probe.pca_dims = 64
  c.total_epochs = 100
  c.log_every_steps = 50
  c.eval_every_steps = 500
  c.checkpoint_every_steps = 500
  if arg.runlocal:
    c.total_epochs = 3
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 5, 20, 20
  c.lock()
  return c
