"""The bad-input catalogue: each case, run for real, and the one-line error ssljax gives.

  python scripts/bad_input_catalogue.py > /tmp/catalogue.md

Every case starts from `configs/demo.py:runlocal` (or the config the case names)
on 8 (fake CPU) devices, breaks one thing, and calls the trainer; the error is what `python -m ssljax.main` prints after "ssljax: error: "
(exit status 2, no traceback unless --verbose). tests/test_bad_input.py runs the same cases and
checks that each message is one line naming the field or path, the bad value and a fix.
"""
import os
import sys

if __name__ == "__main__":
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_num_cpu_devices", 8)

import ml_collections  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from ssljax.run import run_types  # pylint: disable=wrong-import-position
from ssljax.config import loading
from ssljax.errors import UserError  # pylint: disable=wrong-import-position


def _set(**fields):
  """A case's setup that only sets config fields ("input__batch_size" = input.batch_size)."""
  def setup(config, tmp):
    del tmp
    for name, value in fields.items():
      loading.set_field(config, name.replace("__", "."), value)
  return setup


def _npz_dir(tmp, **arrays):
  path = os.path.join(tmp, "npz")
  os.makedirs(path, exist_ok=True)
  if arrays:
    np.savez(os.path.join(path, "train.npz"), **arrays)
  return path


def _npz(**arrays):
  def setup(config, tmp):
    config.input.source, config.input.data_dir = "npz", _npz_dir(tmp, **arrays)
  return setup


def _damaged_npz(config, tmp):
  path = _npz_dir(tmp)
  with open(os.path.join(path, "train.npz"), "wb") as f:
    f.write(b"PK\x03\x04 not really a zip file")
  config.input.source, config.input.data_dir = "npz", path


def _empty_image_folder(config, tmp):
  os.makedirs(os.path.join(tmp, "images", "train", "cat"))
  config.input.source, config.input.data_dir = "image_folder", os.path.join(tmp, "images")


def _unlabelled_image_folder(config, tmp):
  """A probe pointed at a folder of images without class folders."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for split in ("train", "test"):
    os.makedirs(os.path.join(tmp, "photos", split))
    for i in range(4):
      Image.fromarray(_IMAGES[i]).save(
          os.path.join(tmp, "photos", split, f"{i}.png"))
  config.input.source, config.input.data_dir = "image_folder", os.path.join(tmp, "photos")


def _checkpoints_is_a_file(config, tmp):
  del config
  os.makedirs(os.path.join(tmp, "run"))
  with open(os.path.join(tmp, "run", "checkpoints"), "w", encoding="utf-8") as f:
    f.write("not a directory")
  return os.path.join(tmp, "run")


def _workdir_under_a_file(config, tmp):
  del config
  with open(os.path.join(tmp, "a_file"), "w", encoding="utf-8") as f:
    f.write("not a directory")
  return os.path.join(tmp, "a_file", "run")


def _checkpoint_of_another_shape(config, tmp):
  """Trains 1 step of the unmodified config in the workdir, then changes the model."""
  workdir = os.path.join(tmp, "run")
  config.evals = ml_collections.ConfigDict()
  first = config.copy_and_resolve_references()
  first.total_steps = 1
  run_types.run(first, workdir)
  config.model.mlp_dim = 200
  return workdir


def _npz_shards_of_two_sizes(config, tmp):
  path = _npz_dir(tmp)
  np.savez(os.path.join(path, "train_0.npz"), images=_IMAGES, labels=_LABELS)
  np.savez(os.path.join(path, "train_1.npz"), images=np.zeros((8, 28, 28, 3), np.uint8),
           labels=_LABELS[:8])
  config.input.source, config.input.data_dir = "npz", path


def _workdir_is_init_from(config, tmp):
  config.init_from = os.path.join(tmp, "run")
  return os.path.join(tmp, "run")


def _init_from_a_probe_workdir(config, tmp):
  """init_from naming a linear probe's workdir (a checkpoint with a probe's config)."""
  import json  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  step = os.path.join(tmp, "probe_run", "checkpoints", "5")
  os.makedirs(os.path.join(step, "state"))
  with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as writer:
    writer.save(os.path.join(step, "config"), {"config": json.dumps(
        {"protocol": "linear_probe", "init_from": "/runs/mae_pretrain"})})
  config.init_from = os.path.join(tmp, "probe_run")


_IMAGES = np.zeros((64, 32, 32, 3), np.uint8)
_LABELS = np.zeros((64,), np.int32)

# (name, what is wrong, setup(config, tmp) -> workdir or None, strings the message must name,
#  optionally the config to start from instead of demo:runlocal)
CASES = [
    ("image_size_vs_patch", "image size not divisible by the patch size",
     _set(input__image_size=30), ["input.image_size", "30", "patch_size 4"]),
    ("mask_ratio", "mask ratio outside [0, 1)", _set(mae__mask_ratio=1.0),
     ["mae.mask_ratio", "1.0"]),
    ("batch_vs_devices", "batch size not divisible by the number of devices",
     _set(input__batch_size=36), ["input.batch_size", "36", "8 devices"]),
    ("batch_vs_dataset", "batch size larger than the dataset",
     _set(input__batch_size=4096), ["input.batch_size", "4096", "1497"]),
    ("no_masking", "MAE mask ratio 0 (nothing to reconstruct)", _set(mae__mask_ratio=0.0),
     ["mae.mask_ratio", "0.0", "masked patches"]),
    ("no_visible_patch", "MAE mask ratio that leaves no visible patch",
     _set(mae__mask_ratio=0.999), ["mae.mask_ratio", "0.999", "no visible patch", "64"]),
    ("decoder_heads", "MAE decoder width not divisible by its heads",
     _set(mae__decoder_heads=3), ["mae.decoder_width", "mae.decoder_heads=3"]),
    ("negative_clip_norm", "negative gradient-clipping norm", _set(optim__clip_norm=-1.0),
     ["optim.clip_norm", "-1.0", "gradient ascent"]),
    ("zero_steps", "zero training steps", _set(total_steps=0), ["total_steps", "0"]),
    ("negative_epochs", "negative number of epochs",
     _set(total_steps=None, total_epochs=-1.0), ["total_epochs", "-1.0"]),
    ("negative_warmup", "negative warm-up", _set(optim__warmup_steps=-5),
     ["optim.warmup_steps", "-5"]),
    ("crop_scale_reversed", "crop area range reversed", _set(aug__crop_scale=(1.0, 0.2)),
     ["aug.crop_scale", "(1.0, 0.2)", "min <= max"]),
    ("knn_k_zero", "kNN with k = 0", _set(evals__knn__k=(0,)), ["evals.knn.k", "(0,)"]),
    ("knn_temperature_zero", "kNN with temperature 0", _set(evals__knn__temperatures=(0.0,)),
     ["evals.knn.temperatures", "(0.0,)"]),
    ("knn_batch_zero", "kNN batch size 0", _set(evals__knn__batch_size=0),
     ["evals.knn.batch_size", "0"]),
    ("unknown_method", "unknown method", _set(method="mea"), ["config.method", "'mea'"]),
    ("unknown_variant", "unknown model variant", _set(model__variant="Q/4"),
     ["model.variant", "Q"]),
    ("width_vs_heads", "model width not divisible by the number of heads",
     _set(model__width=30, model__num_heads=4), ["width 30", "num_heads 4"]),
    ("unknown_dtype", "unknown compute dtype", _set(model__dtype="fp8"),
     ["model.dtype", "'fp8'"]),
    ("unknown_optimizer", "unknown optimizer", _set(optim__name="adam"),
     ["optim.name", "'adam'"]),
    ("negative_lr", "negative learning rate", _set(optim__lr=-0.001),
     ["optim.lr", "-0.001"]),
    ("negative_weight_decay", "negative weight decay", _set(optim__weight_decay=-0.05),
     ["optim.weight_decay", "-0.05"]),
    ("steps_and_epochs", "both total_steps and total_epochs set",
     _set(total_steps=10, total_epochs=1.0), ["total_steps", "total_epochs"]),
    ("no_duration", "neither total_steps nor total_epochs set", _set(total_steps=None),
     ["total_steps", "total_epochs"]),
    ("checkpoint_interval", "checkpoint interval of 0 steps", _set(checkpoint_every_steps=0),
     ["checkpoint_every_steps", "0"]),
    ("keep_checkpoints", "keep no checkpoints", _set(keep_checkpoints=0),
     ["keep_checkpoints", "0"]),
    ("max_skips", "negative limit of non-finite steps", _set(max_consecutive_skips=-1),
     ["max_consecutive_skips", "-1"]),
    ("unknown_source", "unknown dataset kind", _set(input__source="csv"),
     ["input.source", "'csv'"]),
    ("unknown_split", "split the dataset does not have", _set(input__split="validation"),
     ["input.split", "'validation'"]),
    ("missing_data_dir", "data directory missing",
     _set(input__source="npz", input__data_dir="/nonexistent/cifar10"),
     ["input.data_dir", "/nonexistent/cifar10"]),
    ("empty_data_dir", "data directory without data", _npz(), ["input.data_dir", "npz"]),
    ("npz_keys", "npz without `images`/`labels`", _npz(x=_IMAGES, y=_LABELS),
     ["train.npz", "'x'", "'images'"]),
    ("npz_rank", "images of the wrong rank", _npz(images=_IMAGES[..., 0], labels=_LABELS),
     ["train.npz", "[64, 32, 32]", "[N, H, W, 3]"]),
    ("npz_dtype", "images of the wrong dtype",
     _npz(images=_IMAGES.astype(np.float32), labels=_LABELS), ["train.npz", "float32"]),
    ("npz_damaged", "damaged npz file", _damaged_npz, ["train.npz", "replace the file"]),
    ("npz_float_labels", "npz labels that are not whole numbers",
     _npz(images=_IMAGES, labels=_LABELS + 0.5), ["train.npz", "label 0.5", "class indices"]),
    ("npz_negative_labels", "negative npz labels", _npz(images=_IMAGES, labels=_LABELS - 1),
     ["train.npz", "label -1", "class indices"]),
    ("npz_few_labels", "fewer npz labels than images",
     _npz(images=_IMAGES, labels=_LABELS[:10]), ["train.npz", "[10]", "64 images"]),
    ("npz_huge_labels", "npz label far beyond any class count",
     _npz(images=_IMAGES, labels=_LABELS + 10**9), ["train.npz", "1000000000", "100000"]),
    ("tfds_not_prepared", "TFDS dataset not prepared",
     _set(input__source="tfds", input__name="imagenet2012", input__data_dir="/nonexistent/tfds"),
     ["imagenet2012", "/nonexistent/tfds", "tfds build"]),
    ("image_folder_empty", "image folder without images", _empty_image_folder,
     ["images/train", "one folder per class"]),
    ("unlabelled_folder_probe", "a linear probe on an image folder without class folders",
     _unlabelled_image_folder, ["photos/train", "unlabelled", "root/split/class/"],
     "probe_demo:runlocal"),
    ("interpolation", "unknown interpolation", _set(input__interpolation="lanczos"),
     ["input.interpolation", "'lanczos'", "bicubic"]),
    ("crop_pct", "evaluation crop fraction above 1", _set(input__crop_pct=1.2),
     ["input.crop_pct", "1.2", "(0, 1]"]),
    ("canvas_size", "canvas smaller than the image size", _set(input__canvas_size=16),
     ["input.canvas_size", "16", "input.image_size=32"]),
    ("crop_ratio", "aspect-ratio range reversed", _set(input__crop_ratio=(1.33, 0.75)),
     ["input.crop_ratio", "(1.33, 0.75)", "min <= max"]),
    ("num_workers", "negative number of decoding processes", _set(input__num_workers=-2),
     ["input.num_workers", "-2"]),
    ("workdir_not_writable", "workdir not writable", _workdir_under_a_file,
     ["a_file/run", "--workdir"]),
    ("checkpoints_is_a_file", "the workdir's checkpoints path is a file",
     _checkpoints_is_a_file, ["run/checkpoints", "move it away", "--workdir"]),
    ("checkpoint_vs_config", "config changed incompatibly against the workdir's checkpoint",
     _checkpoint_of_another_shape, ["model.mlp_dim", "200", "--workdir"]),
    ("init_from_empty", "evaluation `init_from` path without a checkpoint",
     _set(init_from="/nonexistent/pretraining"), ["init_from=/nonexistent/pretraining"],
     "probe_demo:runlocal"),
    ("unknown_protocol", "unknown evaluation protocol", _set(protocol="finetune_all"),
     ["protocol", "'finetune_all'"], "probe_demo:runlocal"),
    ("unknown_baseline", "unknown evaluation baseline", _set(baseline="sift"),
     ["baseline", "'sift'"], "probe_demo:runlocal"),
    ("layer_decay", "fine-tuning layer decay above 1", _set(finetune__layer_decay=1.5),
     ["finetune.layer_decay", "1.5", "(0, 1]"], "finetune_demo:runlocal"),
    ("finetune_resnet_layer_decay", "ViT layer decay fine-tuning a ResNet (SimSiam) encoder",
     _set(baseline="random_init", encoder_config="simsiam_cifar10:runlocal"),
     ["finetune.layer_decay=0.65", "ResNet", "finetune.layer_decay=1.0", "recipe=resnet"],
     "finetune_demo:runlocal"),
    ("finetune_resnet_drop_path", "drop path fine-tuning a ResNet (SimSiam) encoder",
     _set(baseline="random_init", finetune__drop_path=0.1),
     ["finetune.drop_path=0.1", "ResNet", "finetune.drop_path=0.0"],
     "finetune_cifar10:recipe=resnet,runlocal"),
    ("finetune_sgd_momentum", "fine-tuning SGD momentum of 1", _set(optim__momentum=1.0),
     ["optim.momentum=1.0", "[0, 1)"], "finetune_cifar10:recipe=resnet,runlocal"),
    ("finetune_baseline", "fine-tuning the pixels baseline", _set(baseline="pixels"),
     ["baseline", "'pixels'", "random_init"], "finetune_demo:runlocal"),
    ("moco_queue", "MoCo queue not a multiple of the batch", _set(moco__queue_size=100),
     ["moco.queue_size=100", "input.batch_size=32", "multiple"], "moco_v2_cifar10:runlocal"),
    ("moco_version", "unknown MoCo version", _set(moco__version=4),
     ["moco.version=4", "2 or 3"], "moco_v2_cifar10:runlocal"),
    ("variant_patch_zero", "ViT variant with patch size 0", _set(model__variant="B/0"),
     ["model.variant='B/0'", "patch_size >= 1"]),
    ("width_negative", "negative model width", _set(model__width=-32),
     ["model.width", "-32", "width >= 1"]),
    ("heads_zero", "zero attention heads", _set(model__num_heads=0),
     ["model.num_heads", "num_heads >= 1"]),
    ("decoder_depth", "negative MAE decoder depth", _set(mae__decoder_depth=-1),
     ["mae.decoder_depth=-1", "1 block"]),
    ("seed_negative", "negative seed", _set(seed=-1), ["seed=-1", "[0, 2**31)"]),
    ("lr_nan", "NaN learning rate", _set(optim__lr=float("nan")), ["optim.lr=nan", ">= 0"]),
    ("beta_above_one", "Adam beta above 1", _set(optim__b2=1.5), ["optim.b2=1.5", "[0, 1)"]),
    ("npz_no_images", "npz shards with no images",
     _npz(images=_IMAGES[:0], labels=_LABELS[:0]), ["npz", "no images", "input.data_dir"]),
    ("npz_image_sizes", "npz shards of different image sizes", _npz_shards_of_two_sizes,
     ["train shards", "different sizes"]),
    ("probe_zero_steps", "a probe whose epochs round to 0 steps",
     _set(baseline="pixels", total_epochs=0.0001),
     ["total_epochs=0.0001", "0 steps", "at least one step"], "probe_demo:runlocal"),
    ("probe_test_split", "a probe's test split the dataset does not have",
     _set(baseline="pixels", probe__test_split="validation"),
     ["'validation'", "probe.test_split"], "probe_demo:runlocal"),
    ("probe_batch_vs_dataset", "a probe's batch larger than its training split",
     _set(baseline="pixels", input__batch_size=4096), ["input.batch_size", "4096"],
     "probe_demo:runlocal"),
    ("knn_workdir_is_init_from", "a kNN run writing into the workdir it evaluates",
     _workdir_is_init_from, ["--workdir", "init_from", "new --workdir"],
     "probe_demo:runlocal,protocol=knn"),
    ("init_from_probe_workdir", "init_from naming a linear probe's workdir",
     _init_from_a_probe_workdir, ["probe_run", "linear_probe", "/runs/mae_pretrain"],
     "probe_demo:runlocal"),
    ("mae_target", "unknown MAE reconstruction target", _set(mae__target="dvae"),
     ["mae.target='dvae'", "norm_pixel"]),
    ("mae_target_vs_alias", "norm_pix_loss contradicting mae.target",
     _set(mae__target="tokens", mae__norm_pix_loss=False),
     ["mae.norm_pix_loss=False", "mae.target='tokens'"]),
    ("mae_pca_dims", "more PCA coefficients than a patch has",
     _set(mae__target="pca", mae__pca_dims=96), ["mae.pca_dims=96", "[1, 48]"]),
    ("mae_codebook_size", "a one-centroid token codebook",
     _set(mae__target="tokens", mae__token_codebook_size=1), ["mae.token_codebook_size=1"]),
    ("mae_tokenizer", "a tokenizer the repo does not build", _set(mae__tokenizer="dvae"),
     ["mae.tokenizer='dvae'", "kmeans"]),
    ("mae_kmeans_iterations", "zero k-means iterations", _set(mae__kmeans_iterations=0),
     ["mae.kmeans_iterations=0", "Lloyd"]),
    ("mae_target_fit_examples", "no images to fit the target on",
     _set(mae__target="tokens", mae__target_fit_examples=0), ["mae.target_fit_examples=0"]),
    ("npid_loss", "unknown NPID estimator", _set(npid__loss="infonce"),
     ["npid.loss='infonce'", "nce or softmax"], "npid_cifar10:runlocal"),
    ("npid_dim", "zero-width NPID embedding", _set(npid__dim=0),
     ["npid.dim=0", ">= 1"], "npid_cifar10:runlocal"),
    ("npid_temperature", "non-positive NPID temperature", _set(npid__temperature=0.0),
     ["npid.temperature=0.0", "> 0"], "npid_cifar10:runlocal"),
    ("npid_negatives", "no NCE negatives", _set(npid__negatives=0),
     ["npid.negatives=0", "at least 1"], "npid_cifar10:runlocal"),
    ("npid_z_batches", "Z estimated from no batch", _set(npid__nce_z_batches=0),
     ["npid.nce_z_batches=0", "at least 1"], "npid_cifar10:runlocal"),
    ("npid_bank_momentum", "bank momentum of 1 (the bank never moves)",
     _set(npid__bank_momentum=1.0), ["npid.bank_momentum=1.0", "[0, 1)"],
     "npid_cifar10:runlocal"),
    ("npid_proximal", "negative proximal weight", _set(npid__proximal_weight=-1.0),
     ["npid.proximal_weight=-1.0", ">= 0"], "npid_cifar10:runlocal"),
    ("npid_head_init", "unknown NPID embedding init", _set(npid__head_init="xavier"),
     ["npid.head_init='xavier'", "torch"], "npid_cifar10:runlocal"),
    ("denoising_mask_fraction", "denoising mask fraction of 1 or more",
     _set(denoising__mask_fraction=1.5), ["denoising.mask_fraction=1.5", "[0, 1)"],
     "denoising_cifar10:runlocal"),
    ("denoising_gaussian_std", "negative denoising Gaussian std",
     _set(denoising__gaussian_std=-0.1), ["denoising.gaussian_std=-0.1", "std >= 0"],
     "denoising_cifar10:runlocal"),
    ("denoising_no_noise", "denoising with no corruption",
     _set(denoising__mask_fraction=0.0), ["denoising.mask_fraction=0", "gaussian_std=0"],
     "denoising_cifar10:runlocal"),
    ("denoising_loss_on", "unknown denoising loss region", _set(denoising__loss_on="masked"),
     ["denoising.loss_on='masked'", "all, corrupted"], "denoising_cifar10:runlocal"),
    ("denoising_corrupted_without_mask", "denoising loss on corrupted pixels without masking",
     _set(denoising__loss_on="corrupted", denoising__mask_fraction=0.0,
          denoising__gaussian_std=0.1), ["loss_on='corrupted'", "mask_fraction=0"],
     "denoising_cifar10:runlocal"),
    ("dense_decoder_width", "a dense decoder too narrow to halve", _set(denoising__decoder_width=2),
     ["denoising.decoder_width=2", "3 upsampling stages", ">= 4"], "denoising_cifar10:runlocal"),
    ("dense_image_size", "a dense pretext image size off the feature-map grid",
     _set(input__image_size=36), ["input.image_size=36", "power-of-two", "5x5"],
     "denoising_cifar10:runlocal"),
    ("context_encoder_region", "unknown context-encoder region",
     _set(context_encoder__region="random_region"),
     ["context_encoder.region='random_region'", "center, random_blocks"],
     "context_encoder_cifar10:runlocal"),
    ("context_encoder_mask_fraction", "context-encoder square as large as the image",
     _set(context_encoder__mask_fraction=1.0), ["context_encoder.mask_fraction=1.0", "(0, 1)"],
     "context_encoder_cifar10:runlocal"),
    ("context_encoder_block_fraction", "context-encoder blocks of zero side",
     _set(context_encoder__region="random_blocks", context_encoder__block_fraction=0.0),
     ["context_encoder.block_fraction=0.0", "(0, 1)"], "context_encoder_cifar10:runlocal"),
    ("context_encoder_overlap", "context-encoder overlap that hides nothing",
     _set(context_encoder__overlap=8), ["context_encoder.overlap=8", "16-pixel", "[0, 7]"],
     "context_encoder_cifar10:runlocal"),
    ("context_encoder_num_blocks", "context encoder with no random block",
     _set(context_encoder__region="random_blocks", context_encoder__num_blocks=0),
     ["context_encoder.num_blocks=0", "at least 1"], "context_encoder_cifar10:runlocal"),
    ("context_encoder_overlap_weight", "negative context-encoder overlap weight",
     _set(context_encoder__overlap_weight=-1.0), ["context_encoder.overlap_weight=-1.0", ">= 0"],
     "context_encoder_cifar10:runlocal"),
    ("colorization_loss", "unknown colorization loss", _set(colorization__loss="l1"),
     ["colorization.loss='l1'", "classification, regression"], "colorization_cifar10:runlocal"),
    ("colorization_grid", "colorization ab grid of 0", _set(colorization__grid=0),
     ["colorization.grid=0", "> 0"], "colorization_cifar10:runlocal"),
    ("colorization_soft_neighbours", "colorization soft encoding over no bin",
     _set(colorization__soft_neighbours=0), ["colorization.soft_neighbours=0", ">= 1"],
     "colorization_cifar10:runlocal"),
    ("colorization_soft_sigma", "colorization soft-encoding width of 0",
     _set(colorization__soft_sigma=0.0), ["colorization.soft_sigma=0.0", "> 0"],
     "colorization_cifar10:runlocal"),
    ("colorization_rebalance_lambda", "colorization rebalancing mix above 1",
     _set(colorization__rebalance_lambda=1.5), ["colorization.rebalance_lambda=1.5", "[0, 1]"],
     "colorization_cifar10:runlocal"),
    ("colorization_rebalance_sigma", "negative colorization smoothing width",
     _set(colorization__rebalance_sigma=-5.0), ["colorization.rebalance_sigma=-5.0", "> 0"],
     "colorization_cifar10:runlocal"),
    ("colorization_prior_examples", "colorization prior fitted on no image",
     _set(colorization__prior_examples=0), ["colorization.prior_examples=0", ">= 1"],
     "colorization_cifar10:runlocal"),
    ("rotation_head_layers", "a rotation classifier of 0 layers",
     _set(rotation__head_layers=0), ["rotation.head_layers", "0", "linear"],
     "rotation_cifar10:runlocal"),
    ("rotation_head_hidden_dim", "a 2-layer rotation head of hidden width 0",
     _set(rotation__head_layers=2, rotation__head_hidden_dim=0),
     ["rotation.head_hidden_dim", "0", "width"], "rotation_cifar10:runlocal"),
    ("relpos_patch_size", "relative-position patches too large for the image",
     _set(relative_position__patch_size=12),
     ["relative_position.patch_size=12", "44 px", "input.image_size=32"],
     "relative_position_cifar10:runlocal"),
    ("relpos_gap", "a relative-position gap below twice the jitter",
     _set(relative_position__gap=1), ["relative_position.gap=1", "overlap"],
     "relative_position_cifar10:runlocal"),
    ("relpos_jitter", "a negative relative-position jitter",
     _set(relative_position__jitter=-1), ["relative_position.jitter", "-1"],
     "relative_position_cifar10:runlocal"),
    ("relpos_chroma", "an unknown chromatic-aberration treatment",
     _set(relative_position__chroma="gray"), ["relative_position.chroma", "'gray'", "project"],
     "relative_position_cifar10:runlocal"),
    ("colorization_gray_threshold", "a negative grayscale threshold for colorization",
     _set(colorization__gray_threshold=-1.0), ["colorization.gray_threshold=-1.0", "None"],
     "colorization_cifar10:runlocal"),
    ("relpos_patch_norm", "an unknown relative-position patch normalisation",
     _set(relative_position__patch_norm="l2"), ["relative_position.patch_norm", "'l2'", "rms"],
     "relative_position_cifar10:runlocal"),
    ("relpos_downsample_prob", "a relative-position down-sampling probability above 1",
     _set(relative_position__downsample_prob=1.5),
     ["relative_position.downsample_prob=1.5", "[0, 1]"], "relative_position_cifar10:runlocal"),
    ("relpos_head_hidden_dim", "a relative-position head of hidden width 0",
     _set(relative_position__head_hidden_dim=0), ["relative_position.head_hidden_dim", "0"],
     "relative_position_cifar10:runlocal"),
    ("kmeans_input", "an unknown k-means input", _set(probe__kmeans_input="pixels"),
     ["probe.kmeans_input", "'pixels'", "patches"], "probe_demo:runlocal,baseline=kmeans"),
    ("kmeans_k", "k-means with 0 centroids", _set(probe__kmeans_k=0),
     ["probe.kmeans_k", "0"], "probe_demo:runlocal,baseline=kmeans"),
    ("kmeans_iterations", "k-means with 0 iterations", _set(probe__kmeans_iterations=0),
     ["probe.kmeans_iterations", "0"], "probe_demo:runlocal,baseline=kmeans"),
    ("kmeans_fit_examples", "k-means fitted on fewer points than centroids",
     _set(probe__kmeans_fit_examples=10), ["probe.kmeans_fit_examples", "10", "kmeans_k=256"],
     "probe_demo:runlocal,baseline=kmeans"),
    ("kmeans_patch_size", "k-means patches larger than the image",
     _set(probe__kmeans_patch_size=40), ["probe.kmeans_patch_size", "40", "image_size=32"],
     "probe_demo:runlocal,baseline=kmeans"),
]

def error_message(case, tmp):
  """The UserError message of `case` run in the fresh directory `tmp`; raises if none."""
  name, _, setup, _, *base = case
  config = loading.load(base[0] if base else "demo:runlocal")
  with config.unlocked():
    workdir = setup(config, tmp) or os.path.join(tmp, "run")
  run = run_types.run  # as main does
  try:
    run(config, workdir)
  except UserError as e:
    return str(e)
  raise AssertionError(f"case {name}: no error")


def markdown_table(rows):
  """rows of (what is wrong, message) -> a markdown table."""
  lines = ["| bad input | `ssljax: error: ...` (exit status 2) |", "|---|---|"]
  lines += [f"| {what} | {message.replace('|', '/')} |" for what, message in rows]
  return "\n".join(lines)


def main():
  import tempfile  # pylint: disable=g-import-not-at-top
  rows = []
  for case in CASES:
    with tempfile.TemporaryDirectory() as tmp:
      message = error_message(case, tmp).replace(tmp, "$TMP")
    rows.append((case[1], message))
  print(markdown_table(rows))


if __name__ == "__main__":
  sys.exit(main())
