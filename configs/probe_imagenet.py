"""The official ImageNet linear-probe protocols (`recipes.linear_probe`), for encoders from
configs/mae_vit*.py and configs/*_r50.py, configs/moco_v3_vitb.py.

  python -m ssljax.main --config=configs/probe_imagenet.py:recipe=mae \
      --config.init_from=gs://bucket/mae_vitl --workdir=gs://bucket/mae_vitl_linprobe

recipe=mae (He et al. 2022, A.2; main_linprobe.py): cls token, BatchNorm without affine per
group of 512 (per GPU, probe.bn_group_size), LARS, batch 16384, blr 0.1 (lr = blr * batch /
256), wd 0, 90 epochs, 10 warm-up, crop (one draw clamped to the image,
`input.crop_sampler="clamped"`, as the release's util/crop.py) + flip; top-1 of the last epoch
(best_top1 in results.json: the release prints the best epoch's). The
paper's linear top-1 after 1600-epoch pre-training: ViT-B/16 68.0, ViT-L/16 75.8, ViT-H/14 76.6
(fine-tuning: 83.6 / 85.9 / 86.9).
recipe=simsiam (main_lincls.py): ResNet-50 backbone features, linear layer, LARC on every
parameter, batch 4096, blr 0.1 (the release; the paper says 0.02), wd 0, 90 epochs, cosine per
epoch. The paper: 68.1 top-1 after 100 epochs of pre-training (70.0 after 200, 71.3 after 800).
recipe=moco_v2: SGD lr 30, batch 256, 100 epochs, x0.1 at 60 and 80 (67.5 after 200 epochs).
recipe=moco_v3 / moco_v3_vit: SGD, blr 0.1 / 3.0, batch 1024, 90 epochs, cosine per epoch.
recipe=byol: SGD Nesterov, blr 0.2, batch 4096, 80 epochs, clamped crops, bicubic, no antialias.
recipe=simclr: as byol, but blr 0.1, wd 1e-6, 90 epochs, tf_sdbb crops, zero head.
recipe=swav: SGD lr 0.3, wd 1e-6, batch 256, 100 epochs, cosine per epoch.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, recipe="mae", protocol="linear_probe")
  c = sections.probe_base_config()
  c.protocol = arg.protocol
  c.input.source, c.input.name, c.input.image_size = "tfds", "imagenet2012", 224
  c.probe.test_split = "validation"
  recipes.linear_probe(c, arg.recipe)  # the release's batch size and epochs
  c.eval_every_steps = 5000
  c.checkpoint_every_steps = 1000
  if arg.runlocal:
    recipes.embedded_digits(c)
    c.input.batch_size, c.probe.bn_group_size = 64, None
    c.probe.test_split = "test"
    c.total_epochs, c.optim.warmup_epochs = 2, None
    c.log_every_steps, c.eval_every_steps, c.checkpoint_every_steps = 5, 20, 20
  c.lock()
  return c
