"""Every config loads (default and runlocal), validates, and is locked against typos."""
import glob
import os

import pytest

from conftest import REPO, load_config
from ssljax.config import durations, loading, sections
from ssljax.errors import ConfigError
from ssljax.run import pretrain, run_types

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs",
                                                                          "*.py")))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "runlocal"])
def test_config_loads_validates_and_is_locked(name, arg):
  c = load_config(name, arg)
  run_types.for_config(c).validate(c)  # the run type's checks, a method's own included
  if "protocol" in c:  # an evaluation run of a pre-trained encoder
    assert c.protocol in sections.PROTOCOLS and c.input.batch_size > 0
  else:
    assert c.method and c.input.batch_size > 0
  with pytest.raises(AttributeError):
    c.input.batch_sise = 8  # a typo is an error, not a new field


def test_paper_settings_of_the_imagenet_recipes():
  for name, variant in (("mae_vitb", "B/16"), ("mae_vitl", "L/16"), ("mae_vith", "H/14")):
    c = load_config(name)
    assert c.model.variant == variant
    assert (c.input.batch_size, c.input.image_size) == (4096, 224)
    assert (c.optim.blr, c.optim.weight_decay, c.optim.b1, c.optim.b2) == (1.5e-4, 0.05, 0.9,
                                                                           0.95)
    assert (c.total_epochs, c.optim.warmup_epochs) == (800, 40)
    assert (c.mae.mask_ratio, c.mae.target) == (0.75, "norm_pixel")
    assert (c.mae.decoder_depth, c.mae.decoder_width) == (8, 512)
  assert load_config("mae_vitl", "epochs=1600").total_epochs == 1600


def test_paper_settings_of_the_siamese_imagenet_recipes():
  # config: (batch, optimizer, peak lr, weight decay, warm-up epochs, method fields)
  papers = {
      "simclr_r50": (4096, "lars", 4.8, 1e-6, 10, dict(temperature=0.1, dim=128)),
      "moco_v2_r50": (256, "sgd", 0.03, 1e-4, 0, dict(version=2, temperature=0.2,
                                                      momentum=0.999, queue_size=65536)),
      "moco_v3_r50": (4096, "lars", 9.6, 1e-6, 10, dict(version=3, temperature=1.0,
                                                        momentum=0.99, dim=256)),
      "moco_v3_vitb": (4096, "adamw", 2.4e-3, 0.1, 40, dict(version=3, temperature=0.2)),
      "byol_r50": (4096, "lars", 7.2, 1e-6, 10, dict(momentum=0.99, dim=256,  # 100-ep preset
                                                     hidden_dim=4096)),
      "swav_r50": (4096, "lars", 4.8, 1e-6, 10, dict(num_prototypes=3000, temperature=0.1,
                                                    epsilon=0.05, sinkhorn_iterations=3,
                                                    num_small_crops=6,
                                                    freeze_prototypes_steps=313)),
  }
  from ssljax.run import optim  # pylint: disable=g-import-not-at-top
  for name, (batch, optimizer, peak, wd, warmup, fields) in papers.items():
    c = load_config(name)
    assert c.input.batch_size == batch and c.optim.name == optimizer, name
    assert optim.peak_learning_rate(c.optim, batch) == pytest.approx(peak), name
    assert (c.optim.weight_decay, c.optim.warmup_epochs or 0) == (wd, warmup), name
    for field, value in fields.items():
      assert c[c.method][field] == value, (name, field)
  assert load_config("moco_v3_vitb").optim.frozen_regex == "^backbone/patch_embed/"


def test_config_arguments_are_parsed_and_checked():
  arg = loading.parse_arg("runlocal,epochs=1600", runlocal=False, epochs=800)
  assert arg.runlocal is True and arg.epochs == 1600
  with pytest.raises(ConfigError, match="'epoch' is unknown"):
    loading.parse_arg("epoch=3", runlocal=False, epochs=800)


@pytest.mark.parametrize("field,value,message", [
    ("input.image_size", 30, "image_size 30 is not divisible by patch_size 4"),
    ("mae.mask_ratio", 1.0, r"mask_ratio=1.0 is outside \(0, 1\)"),
    ("optim.blr", -1.0, "optim.blr=-1.0 is not a number >= 0"),
    ("model.variant", "Q/4", "unknown ViT variant"),
])
def test_bad_values_are_named_with_the_fix(field, value, message):
  c = load_config("demo")
  section, key = field.split(".")
  with c.unlocked():
    c[section][key] = value
  with pytest.raises(ConfigError, match=message):
    pretrain.validate(c)


def test_durations_in_steps_or_epochs():
  c = load_config("mae_vitb")
  assert durations.steps(c, "total", steps_per_epoch=312) == 800 * 312
  assert durations.steps(c.optim, "warmup", steps_per_epoch=312) == 40 * 312
  with c.unlocked():
    c.total_steps = 5
  with pytest.raises(ConfigError, match="set only one"):
    durations.steps(c, "total", steps_per_epoch=312)


def test_paper_settings_of_the_finetuning_recipes():
  for size, decay, drop_path, blr, epochs in (("B", 0.65, 0.1, 5e-4, 100),
                                              ("L", 0.75, 0.2, 1e-3, 50),
                                              ("H", 0.75, 0.3, 1e-3, 50)):
    c = load_config("finetune_imagenet", f"size={size}")
    assert (c.finetune.layer_decay, c.finetune.drop_path, c.optim.blr, c.total_epochs) == (
        decay, drop_path, blr, epochs)
    assert (c.input.batch_size, c.input.image_size, c.optim.warmup_epochs) == (1024, 224, 5)
    assert (c.optim.name, c.optim.b1, c.optim.b2, c.optim.weight_decay) == ("adamw", 0.9, 0.999,
                                                                            0.05)
    f = c.finetune
    assert (f.label_smoothing, f.mixup_alpha, f.cutmix_alpha, f.random_erase_prob) == (
        0.1, 0.8, 1.0, 0.25)
    assert (f.rand_augment_ops, f.rand_augment_magnitude, f.rand_augment_magnitude_std,
            f.pool) == (2, 9.0, 0.5, "avg")
    assert load_config(c.encoder_config).model.variant.startswith(size + "/")


IMAGENET_TRAIN = 1281167


def test_epoch_cadences_are_resolved_at_the_final_batch_size():
  for batch_size in (None, 1024):  # the recipe's 4096, and --config.input.batch_size=1024
    c = load_config("mae_vitb")
    if batch_size:
      with c.unlocked():
        c.input.batch_size = batch_size
    per_epoch = IMAGENET_TRAIN // c.input.batch_size
    schedule = durations.schedule(c, IMAGENET_TRAIN)
    assert schedule.steps_per_epoch == per_epoch
    assert (schedule.total_steps, schedule.warmup_steps) == (800 * per_epoch, 40 * per_epoch)
    assert durations.steps(c.evals.knn, "every", per_epoch) == 50 * per_epoch
    assert durations.steps(c.evals.recon, "every", per_epoch) == 10 * per_epoch
  c = load_config("finetune_imagenet")
  with c.unlocked():
    c.input.batch_size = 512
  schedule = durations.schedule(c, IMAGENET_TRAIN)
  assert schedule.eval_every_steps == schedule.checkpoint_every_steps == IMAGENET_TRAIN // 512
  for name in ("simsiam_r50", "byol_r50"):
    c = load_config(name)
    assert c.evals.knn.every_epochs == 10 and c.evals.knn.every_steps is None


def _accepts_runlocal(name):
  try:
    load_config(name, "runlocal")
  except ConfigError:
    return False
  return True


@pytest.mark.parametrize("name", [n for n in CONFIGS if _accepts_runlocal(n)])
def test_runlocal_shrinking_is_applied_last(name):
  c = load_config(name, "runlocal")
  schedule = durations.schedule(c, 1497)  # the embedded digits' training split
  assert schedule.total_steps <= 50 and c.input.batch_size <= 128, name
  assert c.input.source == "digits" or name == "mae_cifar10", name
  for eval_name, eval_config in c.get("evals", {}).items():
    every = durations.steps(eval_config, "every", schedule.steps_per_epoch, default=0)
    assert 0 < every <= schedule.total_steps, (name, eval_name)
