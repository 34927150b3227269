"""Shared bodies of the recipe configs in configs/ (each file there stays a few lines).

`mae_imagenet` is the MAE paper's ImageNet-1k pre-training recipe (He et al. 2022, Table 8 /
appendix A.1): AdamW (0.9, 0.95), wd 0.05, blr 1.5e-4 with lr = blr * batch / 256, batch 4096,
40 warm-up epochs then cosine, 75% masking, 8-block 512-wide decoder, normalised-pixel targets,
random resized crop (0.2-1.0) and flip only. Weight decay as timm 0.3.2's `add_weight_decay`
in the release: every parameter but the 1-D ones (biases, norms), so cls_token and mask_token
are decayed.
"""
import os

from ssljax.config import loading, sections
from ssljax.errors import ConfigError
from ssljax.methods import mae, simsiam


def cifar10_input(c, source="npz"):
  """CIFAR-10 at 32x32, batch 512: the npz directory in $SSLJAX_CIFAR10_DIR, or TFDS;
  evaluated on the whole 32x32 image (crop_pct 1), as the CIFAR protocols do."""
  c.input.source = source
  if source == "tfds":
    c.input.name = "cifar10"
  else:
    c.input.data_dir = os.environ.get("SSLJAX_CIFAR10_DIR")
  c.input.image_size = 32
  c.input.batch_size = 512
  c.input.crop_pct = 1.0


def embedded_digits(c):
  """The embedded digits at 32x32 (`sources.digits`), evaluated whole (crop_pct 1)."""
  c.input.source, c.input.name, c.input.data_dir = "digits", "", None
  c.input.image_size, c.input.crop_pct = 32, 1.0


def mae_runlocal(c, embedded_data=True):
  """Same code path in seconds on a CPU: tiny model, few steps, capped evals; with
  `embedded_data` the input becomes the embedded digits at 32x32."""
  if embedded_data:
    embedded_digits(c)
  c.input.batch_size = 32
  c.input.num_threads = 2
  c.model.variant, c.model.dtype, c.model.remat = "mu/4", "float32", "none"
  c.mae.decoder_width, c.mae.decoder_depth, c.mae.decoder_heads = 32, 1, 2
  c.total_epochs, c.total_steps = None, 4
  c.optim.warmup_epochs, c.optim.warmup_steps = None, 1
  c.log_every_steps = 1
  c.checkpoint_every_steps = 2
  c.evals.knn = sections.knn_eval_config(every_steps=4, batch_size=64,
                                         max_train_examples=512, max_test_examples=128)
  c.evals.recon = mae.recon_eval_config(every_steps=4, num_images=4)


def mae_imagenet(variant, arg):
  """MAE pre-training on ImageNet-1k (TFDS `imagenet2012`, array_record) for a ViT `variant`,
  computed in bfloat16 (float32 parameters, optimizer state and loss); runlocal in float32."""
  arg = loading.parse_arg(arg, runlocal=False, epochs=800)
  c = sections.base_config()
  c.method = "mae"
  c.input.source = "tfds"
  c.input.name = "imagenet2012"
  c.input.image_size = 224
  c.input.batch_size = 4096
  c.input.interpolation = "bicubic"  # RandomResizedCrop(interpolation=3) in the release
  c.model.variant = variant
  # the paper trained in bfloat16 on TPUs; the release's GPU code in fp16 autocast
  c.model.dtype = "bfloat16"
  c.mae = mae.default_config()
  c.total_epochs = arg.epochs
  c.optim.warmup_epochs = 40
  c.optim.wd_exclude = ""  # main_pretrain.py:179: add_weight_decay with no skip list
  c.log_every_steps = 100
  c.checkpoint_every_steps = 1000
  c.evals.knn = sections.knn_eval_config(every_epochs=50, test_split="validation",
                                         batch_size=1024)
  c.evals.recon = mae.recon_eval_config(every_epochs=10, split="validation")
  if arg.runlocal:
    mae_runlocal(c)
  c.lock()
  return c


def simsiam_base(c):
  """SimSiam's optimisation and augmentation (Chen & He 2021, section 4 and appendix):
  SGD momentum 0.9, lr = blr * batch / 256 with cosine decay and no warm-up, weight decay on
  every parameter, the predictor at a fixed lr; crops (0.2-1), flip, color jitter
  (0.4, 0.4, 0.4, 0.1) p=0.8, grayscale p=0.2."""
  c.method = "simsiam"
  c.simsiam = simsiam.default_config()
  c.optim.name = "sgd"
  c.optim.momentum = 0.9
  c.optim.wd_exclude = None
  c.optim.decay_1d_params = True
  c.optim.fixed_lr_regex = "^predictor/"
  c.optim.warmup_steps = 0
  c.aug.color_jitter_prob = 0.8
  c.aug.grayscale_prob = 0.2


def resnet_runlocal(c):
  """Seconds on a CPU: a narrow ResNet-18, a few steps on the embedded digits, a capped kNN on
  backbone features. Configs apply it (or a wrapper) last, after every other setting."""
  embedded_digits(c)
  c.input.batch_size, c.input.num_threads = 32, 2
  c.model.variant, c.model.resnet_width, c.model.cifar_stem = "resnet18", 8, True
  c.model.dtype = "float32"
  c.total_epochs, c.total_steps = None, 4
  c.optim.warmup_epochs, c.optim.warmup_steps = None, 0
  c.log_every_steps, c.checkpoint_every_steps = 1, 2
  c.evals.knn = sections.knn_eval_config(every_steps=4, feature="backbone", batch_size=64,
                                         max_train_examples=512, max_test_examples=128)


def siamese_runlocal(c):
  """`resnet_runlocal` with small heads, for every Siamese method: `c[c.method]` is its head
  config."""
  resnet_runlocal(c)
  head = c[c.method]
  head.dim = 64
  if "hidden_dim" in head:
    head.hidden_dim = 64
  if head.get("predictor_hidden_dim"):
    head.predictor_hidden_dim = 16
  if c.method == "moco" and head.version == 2:
    head.queue_size = 64
  if c.method == "swav":
    head.num_prototypes, head.freeze_prototypes_steps, head.small_crop_size = 30, 2, 16



def siamese_imagenet(c, arg, *, batch_size, optimizer, blr, weight_decay, warmup_epochs=0.0,
                     blur_prob=0.5, interpolation="bilinear"):
  """ImageNet-1k (TFDS imagenet2012) ResNet-50 pre-training for a Siamese method `c.method`
  whose head is already in `c[c.method]`: the method's optimizer ("lars": biases and norms
  without decay or trust-ratio scaling; "sgd"), lr = blr * batch / 256, warm-up then cosine,
  the common augmentation (crops 0.08-1, flip, color jitter p=0.8, grayscale p=0.2, blur),
  crops resized with `interpolation` (torchvision's default bilinear in the PyTorch releases;
  the TensorFlow releases, SimCLR and BYOL, resize bicubic); computed in bfloat16."""
  c.input.source, c.input.name = "tfds", "imagenet2012"
  c.input.image_size, c.input.batch_size = 224, batch_size
  c.input.interpolation = interpolation
  c.model.variant = "resnet50"
  c.model.dtype = "bfloat16"  # accelerator compute; parameters, BN statistics and loss float32
  c.optim.name, c.optim.blr, c.optim.weight_decay = optimizer, blr, weight_decay
  c.optim.momentum = 0.9
  c.optim.warmup_epochs, c.optim.warmup_steps = warmup_epochs, None
  c.optim.wd_exclude = None
  c.aug.crop_scale = (0.08, 1.0)
  c.aug.color_jitter = (0.4, 0.4, 0.2, 0.1)
  c.aug.color_jitter_prob, c.aug.grayscale_prob, c.aug.blur_prob = 0.8, 0.2, blur_prob
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 100, 2500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, test_split="validation",
                                         feature="backbone", batch_size=1024)


def asymmetric_views(c):
  """BYOL's two different views (Grill et al. 2020, Table 6; deepmind-research
  byol/utils/augmentations.py), which MoCo v3 also uses (moco-v3 main_moco.py): view 1 always
  blurred and never solarized, view 2 blurred with p 0.1 and solarized with p 0.2."""
  c.aug.blur_prob, c.aug.solarize_prob = (1.0, 0.1), (0.0, 0.2)


def siamese_cifar10(c, arg):
  """CIFAR-10 ResNet-18 (CIFAR stem) for a Siamese method `c.method`: SimSiam's CIFAR recipe
  (SGD momentum 0.9, blr 0.03, wd 5e-4, cosine, batch 512, 800 epochs; crops 0.2-1, flip,
  color jitter p=0.8, grayscale p=0.2), kNN (k=200, t=0.1) on backbone features. `arg.cpu`:
  width 16, batch 256, 800 steps, capped kNN with the random-init floor; `arg.runlocal`:
  seconds on the embedded digits."""
  cifar10_input(c, arg.source)
  c.model.variant, c.model.cifar_stem = "resnet18", True
  c.optim.name, c.optim.momentum, c.optim.blr, c.optim.weight_decay = "sgd", 0.9, 0.03, 5e-4
  c.optim.wd_exclude, c.optim.decay_1d_params, c.optim.warmup_steps = None, True, 0
  c.aug.color_jitter_prob, c.aug.grayscale_prob = 0.8, 0.2
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 20, 500
  c.evals.knn = sections.knn_eval_config(every_steps=980, feature="backbone", batch_size=512)
  c.evals.knn.k, c.evals.knn.temperatures = (200,), (0.1,)
  if arg.cpu:
    c.model.resnet_width = 16
    c.input.batch_size = 256
    c.total_epochs, c.total_steps = None, 800
    c.evals.knn.every_steps = 200
    c.evals.knn.max_train_examples, c.evals.knn.max_test_examples = 10000, 2000
    c.evals.knn.random_init_baseline = True


def cifar10_arg(arg):
  """The arguments of every Siamese CIFAR-10 config: runlocal, cpu, source, epochs."""
  return loading.parse_arg(arg, runlocal=False, cpu=False, source="npz", epochs=800)


def epoch_preset(config_name, presets, epochs, fields):
  """`presets[epochs]`: a release's values for one of its epoch counts; other counts are a
  ConfigError that names the presets and how to set `fields` by hand."""
  if epochs not in presets:
    raise ConfigError(
        f"{config_name}: epochs={epochs:g} has no preset of the release: use epochs= one of "
        f"{', '.join(str(e) for e in presets)}, or the nearest with --config.total_epochs="
        f"{epochs:g} and {', '.join(f'--config.{f}' for f in fields)} set explicitly")
  return presets[epochs]


# The official linear-probe protocols' (batch size, epochs).
LINEAR_PROBES = {"mae": (16384, 90), "simsiam": (4096, 90), "moco_v2": (256, 100),
                 "moco_v3": (1024, 90), "moco_v3_vit": (1024, 90), "byol": (4096, 80),
                 "simclr": (4096, 90), "swav": (256, 100)}


def linear_probe(c, recipe, batch_size=None, paper_peak_lr=False, release=True):
  """The official linear-probe protocol `recipe` on `c` (a `sections.probe_base_config()`),
  at `batch_size` (default the release's) for the release's epochs. Features are the
  backbone's (global average pool; a ViT's cls token), a linear layer only, wd 0, head
  weights N(0, 0.01^2) and bias 0, unless said otherwise:
    mae (main_linprobe.py): cls token, BatchNorm without affine before the layer (per GPU:
      groups of 512 where the batch divides, running statistics of the first group), LARS
      (momentum 0.9), blr 0.1, 10 warm-up epochs, cosine, bicubic crops drawn once and
      clamped to the image (util/crop.py);
    simsiam (main_lincls.py): apex LARC (trust ratio on every parameter, the bias too), blr 0.1
      (the paper says 0.02; the release uses 0.1), cosine set once per epoch;
    moco_v2: SGD lr 30 (unscaled), x0.1 at epochs 60 and 80;
    moco_v3 / moco_v3_vit: SGD, blr 0.1 (ResNet) / 3.0 (ViT), cosine set once per epoch;
    byol (eval_experiment.py): SGD Nesterov, blr 0.2, cosine per step, Haiku's default head
      init, the pre-training's crops (clamped), bicubic without antialias (tf.image.resize);
    simclr (README): SGD Nesterov, blr 0.1, wd 1e-6 (bias too), zero head, tf_sdbb, byol's resize;
    swav (eval_linear.py): SGD lr 0.3 (unscaled), wd 1e-6 on weight and bias, cosine set once
      per epoch.
  LARS applies the lr after the momentum trace, as the PyTorch LARS/LARC do. LARS scales each
  step to the weight norm (step ~ lr * 0.001 * |w|), so at batches far below the release's
  `paper_peak_lr` keeps the release's peak lr instead of scaling it down with the batch.
  `release=False` keeps what the CIFAR-10 and demo rows were measured with: optax's LARS
  order, torchvision's crop sampler, Flax's truncated_normal(0.01) head, BatchNorm over the
  whole batch, and for simsiam the paper's blr 0.02, no trust ratio on the bias, a per-step
  cosine; crops antialiased. Evaluation views are Pillow's (antialiased) in every recipe.
  """
  if recipe not in LINEAR_PROBES:
    raise ConfigError(f"recipe={recipe!r} is unknown: use one of {', '.join(LINEAR_PROBES)}")
  release_batch, c.total_epochs = LINEAR_PROBES[recipe]
  c.input.batch_size = batch_size or release_batch
  c.probe.feature, c.probe.head_norm, c.probe.head_init = "backbone", False, "normal"
  c.optim.name, c.optim.momentum, c.optim.weight_decay = "sgd", 0.9, 0.0
  if recipe == "mae":
    c.probe.feature, c.probe.head_norm = "cls", True
    c.optim.name, c.optim.blr, c.optim.warmup_epochs = "lars", 0.1, 10
    c.input.interpolation = "bicubic"  # RandomResizedCrop and Resize(256), interpolation=3
    if release:
      c.input.crop_sampler = "clamped"  # util/crop.py: one draw clamped to the image
      if c.input.batch_size % 512 == 0:  # BatchNorm per GPU: 16384 on 32 GPUs
        c.probe.bn_group_size = 512
  elif recipe == "simsiam":
    c.optim.name, c.optim.blr, c.optim.decay_1d_params = "lars", 0.1, True
    c.optim.schedule_per_epoch = True
  elif recipe == "moco_v2":
    c.optim.lr, c.optim.step_decay_epochs = 30.0, (60, 80)
  elif recipe.startswith("moco_v3"):
    c.optim.blr = 3.0 if recipe == "moco_v3_vit" else 0.1
    c.optim.schedule_per_epoch = True
  elif recipe == "byol":
    c.optim.nesterov, c.optim.blr, c.probe.head_init = True, 0.2, "haiku"
    c.input.interpolation = "bicubic"
    if release:  # utils/dataset.py: the pre-training crop, tf.image.resize
      c.input.crop_sampler, c.input.resize_antialias = "clamped", False
  elif recipe == "simclr":
    c.optim.nesterov, c.optim.blr, c.probe.head_init = True, 0.1, "zeros"
    c.optim.weight_decay, c.optim.decay_1d_params = 1e-6, True
    c.input.interpolation = "bicubic"
    if release:  # data_util.py: sample_distorted_bounding_box, tf.image.resize
      c.input.crop_sampler, c.input.resize_antialias = "tf_sdbb", False
  else:  # swav
    c.optim.lr, c.optim.weight_decay, c.optim.decay_1d_params = 0.3, 1e-6, True
    c.optim.schedule_per_epoch = True
  c.optim.lars_lr_after_momentum = c.optim.name == "lars"
  if not release:
    c.optim.lars_lr_after_momentum, c.probe.head_init = False, "flax_truncated"
    if recipe == "simsiam":
      c.optim.blr, c.optim.decay_1d_params, c.optim.schedule_per_epoch = 0.02, False, False
  if paper_peak_lr and c.optim.lr is None:
    c.optim.lr = c.optim.blr * release_batch / 256


# MAE's fine-tuning settings per ViT size (He et al. 2022, Table 9): (layer decay, drop path,
# blr, epochs).
MAE_FINETUNE = {"B": (0.65, 0.1, 5e-4, 100), "L": (0.75, 0.2, 1e-3, 50),
                "H": (0.75, 0.3, 1e-3, 50)}


def finetune(c, size):
  """MAE's fine-tuning recipe for ViT `size` ("B", "L", "H") on `c` (a
  `sections.finetune_base_config()`): AdamW (0.9, 0.999), wd 0.05, lr = blr * batch / 256
  at batch 1024, 5 warm-up epochs then cosine, layer decay, drop path, RandAugment m9-mstd0.5
  n2, label smoothing 0.1, mixup 0.8, cutmix 1.0, random erasing 0.25, average pooling."""
  if size not in MAE_FINETUNE:
    raise ConfigError(f"ViT size {size!r} has no MAE fine-tuning recipe: use one of "
                      f"{', '.join(MAE_FINETUNE)}")
  decay, drop_path, blr, epochs = MAE_FINETUNE[size]
  c.finetune.layer_decay, c.finetune.drop_path = decay, drop_path
  c.optim.blr, c.total_epochs = blr, epochs
  c.input.batch_size = 1024


def pretext_cifar10(c, arg):
  """CIFAR-10 at 32 px for a pretext classifier `c.method` (rotation, relative position): the
  narrow ResNet-18 (width 16, CIFAR stem) of the Siamese `:cpu` configs, SGD momentum 0.9
  with weight decay 5e-4 on every parameter, no warm-up, `arg.epochs`; kNN (k=200, t=0.1) on
  backbone features every 10 epochs."""
  cifar10_input(c, arg.source)
  c.model.variant, c.model.resnet_width, c.model.cifar_stem = "resnet18", 16, True
  c.optim.name, c.optim.momentum, c.optim.weight_decay = "sgd", 0.9, 5e-4
  c.optim.wd_exclude, c.optim.decay_1d_params, c.optim.warmup_steps = None, True, 0
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 20, 500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, feature="backbone", batch_size=512,
                                         k=(200,), temperatures=(0.1,))


def pretext_imagenet(c, arg):
  """ImageNet-1k (TFDS imagenet2012) at 224 px with a ResNet-50 in bfloat16 for a pretext
  classifier `c.method`: SGD momentum 0.9, weight decay 5e-4 on every parameter, no warm-up,
  random resized crops (0.5-1) and flips; kNN on backbone features every 10 epochs."""
  c.input.source, c.input.name = "tfds", "imagenet2012"
  c.input.image_size, c.input.batch_size = 224, 256
  c.model.variant, c.model.dtype = "resnet50", "bfloat16"
  c.optim.name, c.optim.momentum, c.optim.weight_decay = "sgd", 0.9, 5e-4
  c.optim.wd_exclude, c.optim.decay_1d_params, c.optim.warmup_steps = None, True, 0
  c.aug.crop_scale = (0.5, 1.0)
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 100, 2500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, test_split="validation",
                                         feature="backbone", batch_size=1024)


def pretext_runlocal(c):
  """`resnet_runlocal` with a narrow head, for a pretext classifier `c.method`."""
  resnet_runlocal(c)
  c[c.method].head_hidden_dim = 32


def dense_arg(arg):
  """The arguments of the dense-pretext CIFAR-10 configs: runlocal, cpu, source, epochs."""
  return loading.parse_arg(arg, runlocal=False, cpu=False, source="npz", epochs=200)


def dense_cifar10(c, arg):
  """CIFAR-10 pre-training of a dense pretext `c.method` (denoising, context encoder,
  colorization; its section already in `c[c.method]`): the narrow ResNet-18 of
  simsiam_cifar10.py:cpu (width 16, CIFAR stem; its 4x4 map decoded by 3 upsampling stages),
  AdamW (0.9, 0.999), blr 1e-3 (lr = blr * batch / 256), wd 1e-4, 5 warm-up epochs then cosine,
  batch 256, 200 epochs, crops 0.2-1 and flip, no colour augmentation; kNN (k=200, t=0.1) on
  backbone features. `arg.cpu`: 800 steps, capped kNN with the random-init floor."""
  cifar10_input(c, arg.source)
  c.input.batch_size = 256
  c.model.variant, c.model.resnet_width, c.model.cifar_stem = "resnet18", 16, True
  c.optim.name, c.optim.b1, c.optim.b2 = "adamw", 0.9, 0.999
  c.optim.blr, c.optim.weight_decay, c.optim.warmup_epochs = 1e-3, 1e-4, 5
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 20, 500
  c.evals.knn = sections.knn_eval_config(every_epochs=20, feature="backbone", batch_size=512)
  c.evals.knn.k, c.evals.knn.temperatures = (200,), (0.1,)
  if arg.cpu:
    c.total_epochs, c.total_steps = None, 800
    c.optim.warmup_epochs, c.optim.warmup_steps = None, 40
    c.evals.knn.every_epochs, c.evals.knn.every_steps = None, 200
    c.evals.knn.max_train_examples, c.evals.knn.max_test_examples = 10000, 2000
    c.evals.knn.random_init_baseline = True
  if arg.runlocal:
    dense_runlocal(c)


def dense_runlocal(c):
  """`resnet_runlocal` with a 16-wide decoder, for a dense pretext `c.method`."""
  resnet_runlocal(c)
  c[c.method].decoder_width = 16


def dense_imagenet(c, arg, *, image_size, batch_size, lr, betas, weight_decay):
  """ImageNet-1k (TFDS imagenet2012) pre-training of a dense pretext on a ResNet-50 (the
  torchvision stem; its 1/32 map decoded by 5 upsampling stages, 512 wide at the first): Adam
  (`betas`) at the paper's unscaled `lr`, cosine, crops 0.2-1 and flip; bfloat16 compute;
  kNN on backbone features every 10 epochs. `arg.runlocal`: `dense_runlocal`."""
  c.input.source, c.input.name = "tfds", "imagenet2012"
  c.input.image_size, c.input.batch_size = image_size, batch_size
  c.model.variant, c.model.dtype = "resnet50", "bfloat16"
  c[c.method].decoder_width = 512
  c.optim.name, (c.optim.b1, c.optim.b2) = "adamw", betas
  c.optim.lr, c.optim.weight_decay, c.optim.warmup_steps = lr, weight_decay, 0
  c.total_epochs = arg.epochs
  c.log_every_steps, c.checkpoint_every_steps = 100, 2500
  c.evals.knn = sections.knn_eval_config(every_epochs=10, test_split="validation",
                                         feature="backbone", batch_size=1024)
  if arg.runlocal:
    dense_runlocal(c)


def finetune_resnet(c):
  """SimCLR's fine-tuning of a ResNet on `c` (a `sections.finetune_base_config()`): the
  release's CIFAR-10 command (`simclr/README.md`: `--train_mode=finetune --optimizer=momentum
  --learning_rate=0.1 --weight_decay=0.0 --warmup_epochs=0 --zero_init_logits_layer=True`,
  100 epochs at batch 512) with every block trained (`--fine_tune_after_block=-1`): SGD with
  Nesterov momentum 0.9, lr = 0.1 * batch / 256, cosine to 0 per step without warm-up, no
  weight decay, random resized crop (0.08-1) + flip only (no RandAugment, mixup/cutmix, label
  smoothing or random erasing), a zero-initialised head (`classifier.ResNetClassifier`); no
  layer decay, no drop path (ViT-only)."""
  c.optim.name, c.optim.momentum, c.optim.nesterov = "sgd", 0.9, True
  c.optim.blr, c.optim.weight_decay, c.optim.min_lr = 0.1, 0.0, 0.0
  c.optim.warmup_epochs, c.optim.warmup_steps = None, 0
  f = c.finetune
  f.layer_decay, f.drop_path, f.learned_pos_embed = 1.0, 0.0, False
  f.rand_augment_ops, f.mixup_alpha, f.cutmix_alpha = 0, 0.0, 0.0
  f.label_smoothing, f.random_erase_prob = 0.0, 0.0
  f.crop_scale, f.flip = (0.08, 1.0), True
  c.total_epochs = 100.0
