"""The config sections every run shares: the trainer's fields, input, augmentation, model,
optimizer, mesh, evaluators; the evaluation runs' fields (linear probe, kNN, fine-tuning).

Recipes (`ssljax.methods.recipes`, `configs/*.py`) start from these and fill in the values.
"""
import ml_collections
from ml_collections.config_dict import placeholder

MODEL_DTYPES = ("float32", "bfloat16", "float16")
INTERPOLATIONS = ("bilinear", "bicubic")  # Pillow's filters, on device and on hosts
PROBE_HEAD_INITS = ("flax_truncated", "normal", "haiku", "zeros")
# Random-resized-crop box samplers (`ssljax.data.resized_crop.SAMPLERS`): torchvision's
# RandomResizedCrop; one draw clamped to the image (BYOL, MAE's linear probe); TensorFlow's
# sample_distorted_bounding_box as SimCLR calls it.
CROP_SAMPLERS = ("torchvision", "clamped", "tf_sdbb")
# Colour-jitter semantics (`ssljax.data.augment.COLOR_JITTER_OPS`): torchvision's ColorJitter;
# tf_additive, BYOL's release (additive brightness, TF's per-channel contrast and HSV
# saturation); tf_scaled, SimCLR's (multiplicative brightness, TF's contrast and saturation).
COLOR_JITTER_IMPLS = ("torchvision", "tf_additive", "tf_scaled")
VIT_INITS = ("xavier", "xavier_torch_bias", "mocov3")  # models.vit.INITS
RESNET_INITS = ("torchvision", "haiku", "tf_variance_scaling")  # models.resnet.CONV_INITS
REMAT_POLICIES = ("none", "full", "dots")  # models.vit.REMAT_POLICIES
ATTENTION_IMPLS = ("auto", "xla", "cudnn")  # models.attention.IMPLS
KMEANS_INPUTS = ("patches", "images")  # evals.kmeans.INPUTS


def input_config():
  """`config.input`: where the images come from and how hosts hand them to the device."""
  c = ml_collections.ConfigDict()
  c.source = "digits"  # digits | npz | tfds | image_folder (with or without class folders)
  c.name = ""  # TFDS dataset name
  c.data_dir = placeholder(str)
  c.split = "train"
  c.image_size = 32
  c.batch_size = 256
  # Host decoding: `num_workers` processes (None: one per host core for decoded files, none
  # for in-memory arrays), each with `num_threads` threads.
  c.num_workers = placeholder(int)
  c.num_threads = 2
  c.corrupt_images = "skip"  # image_folder: skip (log, count, use the next) | fail
  # Decoded training images keep their whole extent in a canvas of this side (larger ones are
  # reduced to fit); crops are sampled on device relative to the whole image.
  c.canvas_size = 512
  c.crop_ratio = (3 / 4, 4 / 3)  # aspect-ratio range of random resized crops
  c.crop_sampler = "torchvision"  # torchvision | clamped | tf_sdbb (CROP_SAMPLERS)
  c.interpolation = "bilinear"  # bilinear | bicubic: crops and the evaluation resize
  c.resize_antialias = True  # crops as Pillow; False: as tf.image.resize (kernel never widened)
  # Evaluation view: Resize(image_size / crop_pct) then CenterCrop(image_size).
  c.crop_pct = 0.875
  return c


def profile_config():
  """`config.profile`: a jax.profiler trace of `steps` train steps (0: none), starting
  `after_steps` steps after the process's first one, into workdir/tensorboard
  (`runtime.profiling`)."""
  return ml_collections.ConfigDict(dict(steps=0, after_steps=10))


def wandb_config():
  """`config.wandb`: a Weights & Biases run beside TensorBoard and metrics.jsonl
  (`runtime.wandb_writer`), off while `project` is "". entity "": the account's default; name
  "": the workdir's basename; tags (): the method (or protocol), model variant and dataset."""
  return ml_collections.ConfigDict(dict(project="", entity="", name="", tags=()))


def base_config():
  """Trainer fields every recipe has; recipes fill in method, model, input and durations."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = ""
  c.total_steps = placeholder(int)  # optional fields are typed, so the CLI can set them
  c.total_epochs = placeholder(float)
  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000  # or checkpoint_every_epochs (with this None)
  c.checkpoint_every_epochs = placeholder(float)
  c.keep_checkpoints = 3
  # Async saves overlap training; a save still being written when the process dies is lost
  # with it. False: every save is final before the next step (a crash loses < one interval).
  c.checkpoint_async = True
  # A step with a non-finite loss or gradient leaves the state as it was (counted in
  # `skipped_steps`); this many in a row stop the run. 0 stops at the first.
  c.max_consecutive_skips = 5
  # Gradient accumulation: the batch runs as this many micro-batches, one update (less memory).
  c.grad_accum_steps = 1
  c.profile = profile_config()
  c.wandb = wandb_config()

  c.input = input_config()

  c.aug = ml_collections.ConfigDict()
  c.aug.crop = True
  c.aug.crop_scale = (0.2, 1.0)
  c.aug.flip = True
  c.aug.color_jitter = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
  c.aug.color_jitter_prob = 0.0
  c.aug.color_jitter_impl = "torchvision"  # COLOR_JITTER_IMPLS
  c.aug.grayscale_prob = 0.0
  # Blur and solarize: one probability for every view, or a tuple with one per view (BYOL and
  # MoCo v3: blur (1.0, 0.1), solarize (0.0, 0.2)).
  c.aug.blur_prob = ml_collections.FieldReference(0.0, field_type=object)
  c.aug.solarize_prob = ml_collections.FieldReference(0.0, field_type=object)

  c.model = ml_collections.ConfigDict()
  c.model.variant = "B/16"
  c.model.width = placeholder(int)  # width/depth/num_heads/mlp_dim override the variant
  c.model.depth = placeholder(int)
  c.model.num_heads = placeholder(int)
  c.model.mlp_dim = placeholder(int)
  c.model.dtype = "float32"  # compute dtype; parameters, optimizer state and loss stay float32
  # ViT blocks' rematerialisation (models.vit.REMAT_POLICIES; True = "full", False = "none"):
  # none keeps every activation | full keeps each block's input and recomputes the block |
  # dots keeps the Linear (qkv, proj, fc1, fc2) outputs, recomputes norms, GELU and attention
  c.model.remat = ml_collections.FieldReference("none", field_type=object)
  # ViT attention kernel (models.attention.IMPLS): auto (cuDNN's fused kernel on a CUDA GPU in
  # bf16/fp16 where the head dim allows, XLA elsewhere) | xla | cudnn
  c.model.attention_impl = "auto"
  # ViT initialisation (models.vit.INITS): xavier | xavier_torch_bias (MAE: PyTorch's
  # patch-embed bias) | mocov3 (q, k, v initialised separately, cls token N(0, 1e-6))
  c.model.vit_init = "xavier"
  c.model.resnet_width = 64  # ResNet base width (64 in the papers; smaller for CPU runs)
  c.model.cifar_stem = False  # ResNet 3x3 stride-1 stem without max-pool for 32x32 images
  c.model.zero_init_residual = True  # ResNet: last BN scale of each block starts at 0
  # ResNet conv kernels (models.resnet.CONV_INITS): torchvision (kaiming normal, fan_out) |
  # haiku (truncated normal 1/sqrt(fan_in), not rescaled) | tf_variance_scaling (Keras default)
  c.model.resnet_init = "torchvision"
  # BatchNorm running variance: "biased" (Flax, Haiku, Keras) or "unbiased" (PyTorch)
  c.model.bn_running_var = "biased"
  # BatchNorm of the Siamese networks per group of this many consecutive examples (per-GPU BN
  # without SyncBN, running statistics from the first group); None: over the whole batch
  c.model.bn_group_size = placeholder(int)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.blr = 1.5e-4  # peak lr = blr * batch_size / 256 unless optim.lr is set
  c.optim.lr = placeholder(float)
  c.optim.b1 = 0.9
  c.optim.b2 = 0.95
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.05
  c.optim.wd_exclude = r"(^|/)(cls_token|mask_token|pos_embed)$"
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = placeholder(float)
  c.optim.warmup_init_lr = 0.0  # the warm-up's first lr (absolute; SwAV starts at 0.3)
  c.optim.min_lr = 0.0
  c.optim.schedule_per_epoch = False  # lr constant within an epoch (main_simsiam.py, MoCo v2)
  c.optim.clip_norm = placeholder(float)
  c.optim.decay_1d_params = False  # also decay biases and norm parameters (LARS: trust ratio)
  # LARS: False multiplies by the lr before the momentum trace (optax, SimCLR); True after it
  # (the PyTorch releases' LARS/LARC and BYOL's), which differs while the lr changes.
  c.optim.lars_lr_after_momentum = False
  c.optim.frozen_regex = placeholder(str)  # parameters that never move
  c.optim.fixed_lr_regex = placeholder(str)  # parameters kept at the constant peak lr

  # fsdp > 1: a data x fsdp mesh, the large state arrays split over fsdp (runtime.sharding).
  c.mesh = ml_collections.ConfigDict(dict(fsdp=1, fsdp_min_size=2**16))

  c.evals = ml_collections.ConfigDict()
  # A linear layer on stop-gradient encoder features, trained alongside (ssljax.run.online_probe).
  c.online_probe = ml_collections.ConfigDict(dict(enabled=False, feature="cls",
                                                  num_classes=10, lr=1e-3))
  return c


PROTOCOLS = ("linear_probe", "knn", "finetune")


def _evaluation_run_config(protocol):
  """Fields every evaluation run (`ssljax.run.run_types`) has: encoder, data, schedule, I/O."""
  c = ml_collections.ConfigDict()
  c.protocol = protocol
  c.init_from = ""  # pre-training workdir, its checkpoints/ or checkpoints/N
  c.baseline = ""  # "" (the init_from encoder) | random_init | pixels | pca | kmeans
  c.encoder_config = ""  # architecture for random_init without init_from, e.g. "mae_cifar10"
  c.seed = 0
  c.total_steps = placeholder(int)
  c.total_epochs = placeholder(float)
  c.log_every_steps = 50
  c.eval_every_steps = 1000  # test-split evaluation; or eval_every_epochs (with this None)
  c.eval_every_epochs = placeholder(float)
  c.checkpoint_every_steps = 1000
  c.checkpoint_every_epochs = placeholder(float)
  c.keep_checkpoints = 2
  c.checkpoint_async = True
  c.max_consecutive_skips = 5  # non-finite steps in a row before the run stops
  # A workdir's checkpoint trained on one encoder does not resume on another (init_from,
  # baseline, encoder_config changed): an error unless this is True.
  c.resume_with_changed_encoder = False
  c.profile = profile_config()
  c.wandb = wandb_config()

  c.input = input_config()
  c.input.image_size = 32  # pixels/pca baselines; an encoder uses its own pre-training size
  return c


def probe_base_config():
  """Fields of a linear probe or kNN run (`ssljax.run.linear_probe`, `ssljax.run.knn`);
  recipes set the values."""
  c = _evaluation_run_config("linear_probe")  # linear_probe | knn
  c.probe = ml_collections.ConfigDict()
  c.probe.feature = "cls"  # MAE: cls | patch_mean; SimSiam: backbone
  c.probe.head_norm = True  # BatchNorm without affine before the linear layer (MAE)
  # None: that BatchNorm normalises the whole batch; n: each group of n examples on its own,
  # running statistics from the first group (MAE's per-GPU BN: 512 = 16384 / 32 GPUs)
  c.probe.bn_group_size = placeholder(int)
  c.probe.augment = True  # random crop + flip on device every step (else cached features)
  c.probe.crop_scale = (0.08, 1.0)
  # flax_truncated: Flax truncated_normal(0.01), std 0.0088 | normal: N(0, 0.01^2) (timm's
  # trunc_normal_(0.01) with absolute bounds, and the PyTorch releases) | haiku: hk.Linear's
  # default, truncated at 2 sigma = 2/sqrt(D), uncorrected (BYOL) | zeros (SimCLR)
  c.probe.head_init = "flax_truncated"
  c.probe.test_split = "test"
  c.probe.eval_batch_size = 256
  c.probe.pca_dims = 256
  c.probe.pca_fit_examples = 10000
  # baseline="kmeans" (`evals.kmeans`): k-means on whitened patches (Coates & Ng 2011) or whole
  # images, fitted on kmeans_fit_examples random patches (or images) in kmeans_iterations
  # Lloyd iterations; features: triangle activations (pooled over quadrants for patches)
  c.probe.kmeans_input = "patches"  # patches | images (KMEANS_INPUTS)
  c.probe.kmeans_k = 256
  c.probe.kmeans_iterations = 20
  c.probe.kmeans_fit_examples = 50000
  c.probe.kmeans_patch_size = 6
  c.grad_accum_steps = 1  # micro-batches per update (each has the whole batch's crops)

  c.knn = ml_collections.ConfigDict()
  c.knn.k = (20, 200)
  c.knn.temperatures = (0.07, 0.1)

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "lars"
  c.optim.blr = 0.1
  c.optim.lr = placeholder(float)
  c.optim.momentum = 0.9
  c.optim.weight_decay = 0.0
  c.optim.wd_exclude = ""
  c.optim.decay_1d_params = False
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = placeholder(float)
  c.optim.warmup_init_lr = 0.0
  c.optim.min_lr = 0.0
  c.optim.schedule_per_epoch = False  # lr constant within an epoch (the PyTorch releases)
  c.optim.step_decay_epochs = ()  # non-empty: lr x step_decay_factor at each, no cosine
  c.optim.step_decay_factor = 0.1
  c.optim.nesterov = False  # sgd only
  c.optim.lars_lr_after_momentum = False  # see base_config
  return c


def finetune_base_config():
  """Fields of a fine-tuning run (`ssljax.run.finetune`): MAE's ViT-B recipe (He et al. 2022,
  appendix A.3, Table 9) at batch 1024; `recipes.finetune` adapts it per model."""
  c = _evaluation_run_config("finetune")
  c.total_epochs = 100.0
  c.max_consecutive_skips = 10
  c.grad_accum_steps = 1  # micro-batches per update (each draws its own augmentations)
  c.input.batch_size = 1024
  c.finetune = ml_collections.ConfigDict()
  c.finetune.pool = "avg"  # avg (mean of patch tokens, then LayerNorm) | cls
  c.finetune.layer_decay = 0.65  # lr of layer l: lr * layer_decay ** (depth + 1 - l)
  c.finetune.drop_path = 0.1
  c.finetune.label_smoothing = 0.1
  c.finetune.mixup_alpha = 0.8
  c.finetune.cutmix_alpha = 1.0
  c.finetune.mixup_prob = 1.0
  c.finetune.mixup_switch_prob = 0.5
  # Mixup/CutMix draws one lam and box per group of this many consecutive images (MAE: each
  # GPU's batch of 32); None: one for the whole (micro-)batch.
  c.finetune.mixup_group_size = placeholder(int)
  c.finetune.crop_scale = (0.08, 1.0)
  c.finetune.flip = True
  c.finetune.rand_augment_ops = 2  # 0 turns RandAugment off
  c.finetune.rand_augment_magnitude = 9.0
  c.finetune.rand_augment_magnitude_std = 0.5
  c.finetune.random_erase_prob = 0.25
  # Train the position embedding from the sin-cos table (timm's ViT in MAE's fine-tuning);
  # False keeps it fixed.
  c.finetune.learned_pos_embed = False
  c.finetune.dtype = "float32"  # compute dtype; parameters stay float32
  c.finetune.remat = ml_collections.FieldReference("none", field_type=object)  # as model.remat
  c.finetune.attention_impl = "auto"  # as model.attention_impl
  c.finetune.test_split = "test"
  c.finetune.eval_batch_size = 256

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adamw"
  c.optim.blr = 5e-4
  c.optim.lr = placeholder(float)
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.weight_decay = 0.05
  c.optim.wd_exclude = "cls_token|mask_token|pos_embed"
  c.optim.decay_1d_params = False
  c.optim.warmup_steps = placeholder(int)
  c.optim.warmup_epochs = 5.0
  c.optim.min_lr = 1e-6
  c.optim.clip_norm = placeholder(float)
  c.optim.momentum = 0.9  # optim.name="sgd" (the ResNet recipe, recipes.finetune_resnet)
  c.optim.nesterov = False
  return c


def knn_eval_config(every_steps=None, *, every_epochs=None, test_split="test",
                    feature="patch_mean", batch_size=256, max_train_examples=None,
                    max_test_examples=None, k=(20, 200), temperatures=(0.07,)):
  """`config.evals.knn`: weighted kNN top-1 (`evals.knn`), every `every_steps` or
  `every_epochs` (resolved after the command-line overrides)."""
  return ml_collections.ConfigDict(dict(
      type="knn", every_steps=placeholder(int) if every_steps is None else every_steps,
      every_epochs=placeholder(float) if every_epochs is None else float(every_epochs),
      train_split="train", test_split=test_split, feature=feature, k=tuple(k),
      temperatures=tuple(temperatures), batch_size=batch_size,
      max_train_examples=placeholder(int) if max_train_examples is None else max_train_examples,
      max_test_examples=placeholder(int) if max_test_examples is None else max_test_examples,
      random_init_baseline=False))
