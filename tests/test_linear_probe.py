"""Linear probe and kNN of frozen encoders and baselines (ssljax.linear_probe)."""
import json
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from conftest import load_config, load_config_with
from ssljax.config import sections, validation
from ssljax.data import augment, sources
from ssljax.errors import ConfigError
from ssljax.evals import run_record
from ssljax.models import batch_norm
from ssljax.run import linear_probe, optim, run_types, step as step_lib
from ssljax.runtime import checkpoint, metrics, pretrained, sharding


def _probe_config(arg="runlocal", **fields):
  return load_config_with("probe_demo", arg, **fields)


def _encoder_variables(workdir):
  mesh = sharding.make_mesh()
  return pretrained.load(workdir, sharding.replicated(mesh))[1]


def test_probe_never_changes_the_encoder(pretrained_workdir, tmp_path):
  before = jax.device_get(_encoder_variables(pretrained_workdir))
  config = _probe_config(init_from=pretrained_workdir, probe__augment=True, total_epochs=None,
                         total_steps=6)
  summary = run_types.run(config, str(tmp_path))
  after = jax.device_get(_encoder_variables(pretrained_workdir))
  jax.tree.map(np.testing.assert_array_equal, before, after)
  # The probe's trainable state is the linear layer alone (BatchNorm has no affine).
  restored = checkpoint.Checkpointer(str(tmp_path), keep=1)
  saved = restored._manager.item_metadata(6)["state"].tree  # pylint: disable=protected-access
  restored.close()
  assert set(saved["params"]) == {"head"} and set(saved["model_state"]["batch_stats"]) == {"norm"}
  assert summary["record"]["encoder"].startswith("mae encoder of ")


def _separable_npz(root, num=600, size=8):
  """10 classes; class c is a constant colour c/10 in one channel plus pixel noise."""
  rng = np.random.default_rng(0)
  for split, n in (("train", num), ("test", num // 3)):
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, size, size, 3))
    images[np.arange(n), :, :, labels % 3] += 20 * labels[:, None, None] + 20
    np.savez(root / f"{split}.npz", images=np.clip(images, 0, 255).astype(np.uint8),
             labels=labels)


def test_linear_probe_reaches_100_percent_on_a_linearly_separable_set(tmp_path):
  _separable_npz(tmp_path)
  config = _probe_config(baseline="pixels", input__source="npz",
                         input__data_dir=str(tmp_path), input__image_size=8,
                         input__batch_size=64, total_epochs=40)
  summary = run_types.run(config, str(tmp_path / "probe"))
  assert summary["evals"]["linear_probe/top1"] >= 0.99
  with open(tmp_path / "probe" / "results.json", encoding="utf-8") as f:
    record = json.load(f)
  assert record["encoder"] == "pixels" and record["value"] >= 0.99
  assert record["protocol"] == "linear_probe" and record["epochs"] == 40


@pytest.mark.parametrize("augment", [False, True])
def test_resumed_probe_ends_exactly_like_an_uninterrupted_one(augment, tmp_path, monkeypatch):
  loaded, load = [], sources.labelled_arrays  # the sizes of the splits read whole
  monkeypatch.setattr(sources, "labelled_arrays",
                      lambda source, *a, **k: loaded.append(len(source)) or load(source, *a,
                                                                                    **k))
  # The augmented run also has per-group BatchNorm and two micro-batches per step.
  extra = dict(grad_accum_steps=2, probe__bn_group_size=16) if augment else {}
  config = _probe_config(baseline="pixels", probe__augment=augment, total_epochs=None,
                         total_steps=30, checkpoint_every_steps=10, eval_every_steps=10,
                         **extra)
  whole = run_types.run(config, str(tmp_path / "whole"))
  # An interrupted run: the same workdir as it was at step 10 (checkpoints 20, 30 never made).
  shutil.copytree(tmp_path / "whole", tmp_path / "resumed")
  for step in ("20", "30"):
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / step)
  resumed = run_types.run(config, str(tmp_path / "resumed"))
  assert resumed["final_loss"] == whole["final_loss"]
  assert resumed["evals"] == whole["evals"]
  # The best evaluation covers the steps before the resume too (from metrics.jsonl).
  best = max(r["linear_probe/top1"] for r in metrics.read_jsonl(
      str(tmp_path / "whole" / "metrics.jsonl")) if "linear_probe/top1" in r)
  for summary in (whole, resumed):
    assert summary["record"]["best_top1"] == best
    assert summary["record"]["best_top1_step"] in (10, 20, 30)
  assert resumed["record"]["best_top1_step"] == whole["record"]["best_top1_step"]
  # The augmented probe reads its 1,497 training digits through the pipeline only (ImageNet's
  # training split whole would be ~190 GB of host memory); both read the 300 test digits.
  assert set(loaded) == ({300} if augment else {300, 1497})
  heads = [checkpoint.Checkpointer(str(tmp_path / d), keep=2) for d in
           ("whole", "resumed")]
  params = [h._manager.restore(30).state["params"] for h in heads]  # pylint: disable=protected-access
  for h in heads:
    h.close()
  jax.tree.map(np.testing.assert_array_equal, params[0], params[1])


def test_knn_protocol_and_baselines_through_the_same_harness(pretrained_workdir, tmp_path):
  results = {}
  for name, fields in {"pca": dict(baseline="pca"), "pixels": dict(baseline="pixels"),
                       "random_init": dict(baseline="random_init", encoder_config="demo"),
                       "mae": dict(init_from=pretrained_workdir)}.items():
    summary = run_types.run(_probe_config("runlocal,protocol=knn", **fields),
                               str(tmp_path / name))
    results[name] = summary["record"]
    assert set(summary["evals"]) == {f"knn/top1_k{k}_t{t}" for k in (20, 200)
                                     for t in (0.07, 0.1)}
  assert results["pca"]["encoder"] == "pca64" and results["random_init"]["encoder"] == (
      "mae encoder at random init")
  # Digits are easy for raw pixels; every floor is far above chance (0.1).
  assert min(r["value"] for r in results.values()) > 0.5
  assert results["pixels"]["value"] > 0.9


# The releases' probe optimizers (see recipes.linear_probe): name, peak lr at the release's
# batch, batch, epochs, wd, 1-D params decayed / trust-ratio scaled, per-epoch lr, step decay,
# Nesterov, LARS lr after momentum, head init.
RELEASE_PROBES = {
    "mae": ("lars", 6.4, 16384, 90, 0.0, False, False, (), False, True, "normal"),
    "simsiam": ("lars", 1.6, 4096, 90, 0.0, True, True, (), False, True, "normal"),
    "moco_v2": ("sgd", 30.0, 256, 100, 0.0, False, False, (60, 80), False, False, "normal"),
    "moco_v3": ("sgd", 0.4, 1024, 90, 0.0, False, True, (), False, False, "normal"),
    "moco_v3_vit": ("sgd", 12.0, 1024, 90, 0.0, False, True, (), False, False, "normal"),
    "byol": ("sgd", 3.2, 4096, 80, 0.0, False, False, (), True, False, "haiku"),
    "simclr": ("sgd", 1.6, 4096, 90, 1e-6, True, False, (), True, False, "zeros"),
    "swav": ("sgd", 0.3, 256, 100, 1e-6, True, True, (), False, False, "normal")}


@pytest.mark.parametrize("recipe", sorted(RELEASE_PROBES))
def test_imagenet_probe_recipes_match_the_releases(recipe):
  c = load_config("probe_imagenet", f"recipe={recipe}")
  o = c.optim
  assert (o.name, round(optim.peak_learning_rate(o, c.input.batch_size), 9),
          c.input.batch_size, c.total_epochs, o.weight_decay, o.decay_1d_params,
          o.schedule_per_epoch, tuple(o.step_decay_epochs), o.nesterov,
          o.lars_lr_after_momentum, c.probe.head_init) == RELEASE_PROBES[recipe]


@pytest.mark.parametrize("name,recipe", [("probe_cifar10", "mae"), ("probe_cifar10", "simsiam"),
                                         ("probe_demo", "mae")])
def test_cifar_and_demo_probes_keep_the_settings_their_rows_were_measured_with(name, recipe):
  o, probe = (lambda c: (c.optim, c.probe))(load_config(name, f"recipe={recipe}"))
  assert (o.name, round(o.lr, 9), o.decay_1d_params, o.schedule_per_epoch,
          o.lars_lr_after_momentum, probe.head_init) == (
              "lars", 6.4 if recipe == "mae" else 0.32, False, False, False, "flax_truncated")


@pytest.mark.parametrize("init,std", [("normal", 0.01), ("flax_truncated", 0.0088),
                                      ("haiku", 0.88 / 2048 ** 0.5), ("zeros", 0.0)])
def test_probe_head_init_scale_measured_from_its_params(init, std):
  """timm's trunc_normal_(std=0.01) has absolute bounds +-2, so in effect N(0, 0.01^2); Flax's
  truncated_normal(0.01) and Haiku's default cut at 2 sigma without correction (std 0.88 sigma)."""
  head = linear_probe.LinearHead(1000, norm=False, kernel_init=init)
  params = head.init(jax.random.key(0), np.zeros((1, 2048), np.float32), train=False)["params"]
  kernel = np.asarray(params["head"]["kernel"])
  assert kernel.std() == pytest.approx(std, rel=0.01, abs=1e-12)
  np.testing.assert_array_equal(params["head"]["bias"], 0)
  assert set(linear_probe.HEAD_INITS) == set(sections.PROBE_HEAD_INITS)


def _torch_batchnorm(groups):
  """Running mean and var of torch's BatchNorm1d(affine=False, momentum=0.1, eps=1e-6) after a
  training forward of each [n, D] array in `groups`, and its evaluation output of the last."""
  bn = torch.nn.BatchNorm1d(groups[0].shape[1], affine=False, momentum=0.1, eps=1e-6)
  for g in groups:
    bn(torch.from_numpy(g))
  bn.eval()
  with torch.no_grad():
    out = bn(torch.from_numpy(groups[-1])).numpy()
  return bn.running_mean.numpy(), bn.running_var.numpy(), out


def test_group_batchnorm_normalises_each_group_and_keeps_the_first_groups_statistics():
  """MAE's probe BN runs per GPU (512 of 16384, no SyncBN); rank 0's running statistics
  (PyTorch: unbiased variance, momentum 0.1) are the ones DDP broadcasts and saves."""
  rng = np.random.default_rng(0)
  batches = [(rng.normal(size=(3, 4, 5)) * rng.uniform(0.5, 3, (3, 1, 5))
              + rng.normal(size=(3, 1, 5)) * 4).reshape(12, 5).astype(np.float32)
             for _ in range(2)]  # 3 groups of 4 with their own means and scales
  head = linear_probe.LinearHead(3, norm=True, norm_group_size=4)
  head_variables = head.init(jax.random.key(0), batches[0], train=False)
  bn = batch_norm.BatchNorm(use_bias=False, use_scale=False, momentum=0.9, epsilon=1e-6,
                            group_size=4,
                            running_var="unbiased")  # the head's norm, as LinearHead builds it
  variables = {"batch_stats": head_variables["batch_stats"]["norm"]}
  logits, _ = head.apply(head_variables, batches[0], train=True, mutable=["batch_stats"])
  dense = head_variables["params"]["head"]
  normed, _ = bn.apply(variables, batches[0], use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(logits, normed @ dense["kernel"] + dense["bias"], atol=1e-6)
  for x in batches:
    out, state = bn.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
    variables = dict(state)
    groups = np.asarray(out).reshape(3, 4, 5)
    np.testing.assert_allclose(groups.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(groups.var(axis=1), 1, atol=1e-4)
  mean, var, evaluated = _torch_batchnorm([x[:4] for x in batches])
  np.testing.assert_allclose(variables["batch_stats"]["mean"], mean, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(variables["batch_stats"]["var"], var, rtol=1e-5)
  np.testing.assert_allclose(bn.apply(variables, batches[-1][:4], use_running_average=True),
                             evaluated,
                             rtol=1e-5, atol=1e-5)


def test_head_without_groups_is_flax_batchnorm_over_the_whole_batch():
  x = np.random.default_rng(1).normal(size=(16, 6)).astype(np.float32) * 3 + 1
  head = linear_probe.LinearHead(4, norm=True, norm_group_size=None)
  variables = head.init(jax.random.key(0), x, train=False)
  logits, state = head.apply(variables, x, train=True, mutable=["batch_stats"])
  reference = nn.BatchNorm(use_running_average=False, use_bias=False, use_scale=False,
                           momentum=0.9, epsilon=1e-6)
  normed, ref_state = reference.apply({"batch_stats": variables["batch_stats"]["norm"]}, x,
                                      mutable=["batch_stats"])
  dense = variables["params"]["head"]
  np.testing.assert_array_equal(logits, normed @ dense["kernel"] + dense["bias"])
  jax.tree.map(np.testing.assert_array_equal, state["batch_stats"]["norm"],
               ref_state["batch_stats"])


@pytest.mark.parametrize("name,arg,group", [
    ("probe_imagenet", "recipe=mae", 512), ("probe_imagenet", "recipe=mae,runlocal", None),
    ("probe_imagenet", "recipe=simsiam", None), ("probe_cifar10", "recipe=mae", None),
    ("probe_demo", "recipe=mae", None)])
def test_only_the_release_mae_probe_normalises_per_gpu_group(name, arg, group):
  config = load_config(name, arg)
  assert config.probe.bn_group_size == group
  validation.validate_probe(config)


@pytest.mark.parametrize("batch,accum,group", [(1000, 1, 512), (1024, 4, 512), (1024, 1, 1)])
def test_bn_group_size_must_divide_the_micro_batch(batch, accum, group):
  config = load_config_with("probe_imagenet", "recipe=mae", input__batch_size=batch,
                            grad_accum_steps=accum, probe__bn_group_size=group)
  with pytest.raises(ConfigError, match=rf"^probe.bn_group_size={group} does not divide the "
                     rf"\(micro-\)batch of {batch // accum} .*use a divisor"):
    validation.validate_probe(config)


def test_accumulated_probe_crops_each_example_as_the_whole_batch_does(monkeypatch):
  """Micro-batch j of `step.accumulated` holds examples j, j + accum, ...: each must get the
  crop and flip it has in the un-accumulated batch (the key of its index in the whole batch)."""
  # A view that is its key's draw (compiling real crops takes seconds; they are functions of
  # the key and the image): every example must get the same view in both.
  monkeypatch.setattr(augment, "crop_flip", lambda key, image, size, **_: jnp.full(
      (size, size, 3), jax.random.uniform(key)) + image[:size, :size])
  config = load_config_with("probe_demo", "runlocal", input__batch_size=8, grad_accum_steps=2,
                            probe__augment=True)
  images = np.random.default_rng(0).integers(0, 256, (8, 4, 4, 3), np.uint8)
  rng = jax.random.key(3)
  whole = linear_probe.train_views(config, rng, {"image": images}, 4)

  def views_as_gradient(params, state, frozen, micro, key):
    del frozen
    views = linear_probe.train_views(config, key, micro, 4)
    return (jnp.zeros(()), (state, {})), params.at[micro["example_index"]].set(views)

  _, assembled = step_lib.accumulated(views_as_gradient, 2, jnp.zeros_like(whole), {}, (),
                                  {"image": images}, rng)
  np.testing.assert_array_equal(assembled * 2, whole)


def test_best_evaluation_is_the_first_step_reaching_the_highest_value_after_resumes():
  rows = metrics.curve([
      {"step": 10, "linear_probe/top1": 0.5}, {"step": 20, "linear_probe/top1": 0.9},
      {"step": 10, metrics.RESUMED: 10},  # step 20's 0.9 was recomputed after a resume
      {"step": 20, "linear_probe/top1": 0.6}, {"step": 25, "loss": 1.0},
      {"step": 30, "linear_probe/top1": 0.6}])
  assert run_record.best_evaluation(rows, "linear_probe/top1") == {"best_top1": 0.6,
                                                                  "best_top1_step": 20}
  assert run_record.best_evaluation(rows, "finetune/top1") == {}


def test_probe_grad_accum_steps_below_one_is_a_one_line_error():
  with pytest.raises(ConfigError, match="^grad_accum_steps=0 is below 1: use 1"):
    validation.validate_probe(load_config_with("probe_demo", "runlocal", grad_accum_steps=0))
