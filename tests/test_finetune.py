"""Fine-tuning (ssljax.finetune): layer-wise lr decay, drop path, encoder loading (ViT and
ResNet), resume."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config, load_config_with
from ssljax.run import finetune, layer_decay, optim, run_types
from ssljax.run.state import TrainState
from ssljax.config import sections, validation
from ssljax import methods
from ssljax.methods import simsiam
from ssljax.data import augment
from ssljax.runtime import metrics, pretrained, sharding
from ssljax.errors import ConfigError
from ssljax.models import classifier, vit


def _finetune_config(arg="runlocal", **fields):
  return load_config_with("finetune_demo", arg, **fields)


def _expected_multiplier(name, depth, decay):
  """MAE's lr_decay.py written out: embedding layer 0, block i layer i + 1, the rest last."""
  parts = name.split("/")
  if any(p in ("patch_embed", "cls_token", "mask_token") for p in parts):
    layer = 0
  elif any(p.startswith("blocks_") for p in parts):
    layer = int(next(p for p in parts if p.startswith("blocks_"))[len("blocks_"):]) + 1
  else:
    layer = depth + 1
  return decay ** (depth + 1 - layer)


@pytest.mark.parametrize("variant,decay", [("B/16", 0.65), ("L/16", 0.75)])
def test_layer_decay_multipliers_match_the_formula_for_every_block(variant, decay):
  spec = vit.parse_variant(variant)
  model = classifier.ViTClassifier(spec, num_classes=1000)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0),
                                             jnp.zeros((1, 224, 224, 3))))["params"]
  scales = layer_decay.multipliers(params, spec["depth"], decay)
  names = {optim.path_name(p): s for p, s in jax.tree_util.tree_leaves_with_path(scales)}
  blocks = {n.split("/")[1] for n in names if "/blocks_" in n}
  assert blocks == {f"blocks_{i}" for i in range(spec["depth"])}
  for name, scale in names.items():
    assert scale == _expected_multiplier(name, spec["depth"], decay), name
  assert names["head/kernel"] == 1.0
  assert names[f"encoder/blocks_{spec['depth'] - 1}/mlp/fc2/kernel"] == decay
  assert names["encoder/patch_embed/kernel"] == decay ** (spec["depth"] + 1)


def test_the_optimizer_scales_each_update_by_its_layer_multiplier():
  spec = vit.parse_variant("mu/4")
  model = classifier.ViTClassifier(spec, num_classes=10)
  params = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  rng = np.random.default_rng(0)
  grads = jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params)
  c = sections.finetune_base_config()
  plain, _ = optim.make(c.optim, 256, total_steps=10, warmup_steps=2)
  decayed = optax.chain(plain, layer_decay.scale_by_layer(spec["depth"], 0.5))
  scales = layer_decay.multipliers(params, spec["depth"], 0.5)
  plain_state, decayed_state = plain.init(params), decayed.init(params)
  plain_update, decayed_update = jax.jit(plain.update), jax.jit(decayed.update)
  for _ in range(3):  # AdamW steps (warm-up, weight decay) on the same parameters and grads
    u_plain, plain_state = plain_update(grads, plain_state, params)
    u_decayed, decayed_state = decayed_update(grads, decayed_state, params)
    jax.tree.map(lambda a, b, s: np.testing.assert_allclose(b, a * s, rtol=1e-6), u_plain,
                 u_decayed, scales)


def test_the_head_starts_at_std_2e_5_untruncated():
  """timm's trunc_normal_(std=2e-5) has absolute bounds +-2: a plain N(0, 2e-5^2) (Flax's
  truncated_normal(2e-5) would cut at 2 sigma and give std 1.76e-5)."""
  spec = dict(width=32, depth=0, num_heads=1, mlp_dim=32, patch_size=4)  # no blocks: cheap
  model = classifier.ViTClassifier(spec, num_classes=1000)
  kernel = np.asarray(jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))[
      "params"]["head"]["kernel"])
  assert kernel.shape == (32, 1000)
  np.testing.assert_allclose(kernel.std(), 2e-5, rtol=0.02)
  assert np.abs(kernel).max() > 3 * 2e-5


def test_drop_path_is_off_in_eval_and_drops_whole_branches_in_training():
  spec = vit.parse_variant("mu/4")
  x = jax.random.normal(jax.random.key(0), (8, 16, 16, 3))
  dropping = vit.ViT(**spec, drop_path=1.0 - 1e-7)  # last block's branches always dropped
  plain = vit.ViT(**spec)
  variables = jax.jit(plain.init)(jax.random.key(1), x)
  np.testing.assert_array_equal(dropping.apply(variables, x)[0], plain.apply(variables, x)[0])
  trained = dropping.apply(variables, x, deterministic=False,
                           rngs={"dropout": jax.random.key(2)})[0]
  assert not np.allclose(trained, plain.apply(variables, x)[0])
  # with depth 2 the rates are 0 and ~1: block 0 runs, block 1 is skipped for every example
  one_block = vit.ViT(**dict(spec, depth=1))
  kept = {k: v for k, v in variables["params"].items() if k != "blocks_1"}
  np.testing.assert_allclose(trained, one_block.apply({"params": kept}, x)[0], atol=1e-5)


def test_rematerialised_blocks_drop_the_same_paths_and_give_the_same_gradients():
  spec = vit.parse_variant("mu/4")
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  plain, remat = vit.ViT(**spec, drop_path=0.5), vit.ViT(**spec, drop_path=0.5, remat=True)
  variables = jax.jit(plain.init)(jax.random.key(1), x)

  def grads(model):
    return jax.jit(jax.grad(lambda v: model.apply(v, x, deterministic=False, rngs={
        "dropout": jax.random.key(2)})[0].sum()))(variables)

  # the same paths dropped: equal up to float rounding of the recomputed activations
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               grads(plain), grads(remat))


def test_finetuning_starts_from_the_checkpoint_encoder(pretrained_workdir):
  config = _finetune_config()
  mesh = sharding.make_mesh()
  _, variables, _ = pretrained.load(pretrained_workdir, sharding.replicated(mesh))
  spec = vit.spec_from_config(load_config("demo", "runlocal").model)
  model = classifier.ViTClassifier(spec, 10, pool=config.finetune.pool)
  fresh = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  loaded = finetune.load_encoder(fresh, variables["params"]["encoder"])
  np.testing.assert_array_equal(loaded["encoder"]["blocks_1"]["attn"]["qkv"]["kernel"],
                                variables["params"]["encoder"]["blocks_1"]["attn"]["qkv"][
                                    "kernel"])
  np.testing.assert_array_equal(loaded["head"]["kernel"], fresh["head"]["kernel"])
  assert "norm" not in loaded["encoder"]  # average pooling: MAE's fc_norm replaces it
  wider = jax.eval_shape(classifier.ViTClassifier(dict(spec, width=64), 10).init,
                         jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  with pytest.raises(ConfigError, match="encoder/.* has shape .* in the checkpoint"):
    finetune.load_encoder(wider, variables["params"]["encoder"])


def test_a_learned_position_embedding_loads_from_a_pretraining_checkpoint(pretrained_workdir):
  """The pre-training checkpoint has no pos_embed: it keeps its sin-cos init; MAE gives it
  no weight decay and the embedding layer's lr scale, decay ** (depth + 1)."""
  _, variables, _ = pretrained.load(pretrained_workdir, sharding.replicated(sharding.make_mesh()))
  spec = vit.spec_from_config(load_config("demo", "runlocal").model)
  model = classifier.ViTClassifier(spec, 10, learned_pos_embed=True)
  fresh = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  assert "pos_embed" not in variables["params"]["encoder"]
  loaded = finetune.load_encoder(fresh, variables["params"]["encoder"])
  np.testing.assert_array_equal(loaded["encoder"]["pos_embed"], fresh["encoder"]["pos_embed"])
  np.testing.assert_array_equal(loaded["encoder"]["cls_token"],
                                variables["params"]["encoder"]["cls_token"])
  scales = layer_decay.multipliers(loaded, spec["depth"], 0.65)
  assert scales["encoder"]["pos_embed"] == 0.65 ** (spec["depth"] + 1)
  config = load_config("finetune_imagenet")
  assert config.finetune.learned_pos_embed
  decayed = optim.weight_decay_mask(loaded, config.optim.wd_exclude)
  assert not decayed["encoder"]["pos_embed"] and decayed["encoder"]["blocks_0"]["mlp"]["fc1"][
      "kernel"]


def test_accumulated_micro_batches_keep_each_examples_view_and_draw_their_own_mixes(
    monkeypatch):
  """grad_accum_steps=2: micro-batch j holds examples j, j + 2, ... with their indices
  (`step.accumulated`). Each example keeps the view it has in the whole batch, so micro-batches
  of one repeated image see different views; mixup and drop path get a key per micro-batch."""
  # a view that shows its key (the real one costs ~10 s of compilation on a CPU)
  monkeypatch.setattr(finetune, "train_view", lambda config, key, image, size, extent=None:
                      image + jax.random.uniform(key, image.shape))
  config = _finetune_config(input__batch_size=8)
  images = jnp.zeros((8, 4, 4, 3))  # one image, repeated
  key = jax.random.key(3)
  views = lambda batch: finetune.train_views(config, key, batch, 4)
  whole = np.asarray(views({"image": images}))
  micro = [{"image": images[j::2], "example_index": jnp.arange(j, 8, 2)} for j in (0, 1)]
  for j in (0, 1):
    np.testing.assert_array_equal(views(micro[j]), whole[j::2])
  assert not np.allclose(whole[0::2], whole[1::2])
  key_data = lambda batch: np.asarray(jax.random.key_data(finetune.micro_batch_key(key, batch)))
  np.testing.assert_array_equal(key_data({}), jax.random.key_data(key))
  assert not np.array_equal(key_data(micro[0]), key_data(micro[1]))


def _random_numpy(shapes, seed):
  """Arrays of `shapes` without running initialisers: N(0, 1), BatchNorm variances in [0.5, 2]."""
  rng = np.random.default_rng(seed)
  def value(path, shape):
    if optim.path_name(path).endswith("/var"):
      return rng.uniform(0.5, 2.0, shape.shape).astype(np.float32)
    return rng.normal(size=shape.shape).astype(np.float32)
  return jax.tree_util.tree_map_with_path(value, shapes)


RESNET_RUNLOCAL = "recipe=resnet,runlocal"


@pytest.fixture(scope="module")
def resnet_plans():
  """(SimSiam checkpoint variables, the fine-tuning plan loading them, the random-init
  baseline's plan): configs/finetune_cifar10.py:recipe=resnet,runlocal. The checkpoint has
  a pre-training's shapes and random values, batch stats included (no initialiser runs)."""
  pre_config = load_config("simsiam_cifar10", "runlocal")
  checkpoint = _random_numpy(jax.eval_shape(
      lambda key: simsiam.init(pre_config, key, (1, 32, 32, 3)), jax.random.key(0)), seed=1)
  mesh = sharding.make_mesh()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(pretrained, "load", lambda init_from, placement: (
        pre_config, checkpoint, f"{init_from}/checkpoints/2"))
    loaded = finetune.plan(load_config_with("finetune_cifar10", RESNET_RUNLOCAL,
                                            init_from="/simsiam"), mesh)
  baseline = finetune.plan(load_config_with("finetune_cifar10", f"{RESNET_RUNLOCAL},baseline="
                                            "random_init"), mesh)
  return checkpoint, loaded, baseline


def _equal(a, b):
  return jax.tree.structure(a) == jax.tree.structure(b) and all(
      np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_a_resnet_backbone_loads_with_its_batch_stats_and_random_init_differs_only_there(
    resnet_plans):
  checkpoint, loaded, baseline = resnet_plans
  shapes = jax.eval_shape(loaded.init, jax.random.key(0))
  assert shapes == jax.eval_shape(baseline.init, jax.random.key(0))  # the same classifier
  params, model_state = _random_numpy(shapes, seed=2)
  assert set(params) == {"backbone", "head"} and set(model_state["batch_stats"]) == {"backbone"}
  fresh = TrainState.create(params, (), model_state)
  started = loaded.start(fresh)
  assert _equal(started.params["backbone"], checkpoint["params"]["backbone"])
  assert _equal(started.model_state["batch_stats"]["backbone"],
                checkpoint["batch_stats"]["backbone"])
  assert _equal(started.params["head"], params["head"])
  assert not _equal(started.params["backbone"], params["backbone"])
  assert baseline.start(fresh) is fresh  # random init: the same state less the checkpoint
  assert loaded.record["feature"] == "backbone" and loaded.record["layer_decay"] == 1.0
  assert "simsiam encoder of /simsiam/checkpoints/2" in loaded.description
  assert "at random init" in baseline.description


class _MeanPool(nn.Module):
  """A stand-in backbone with a ResNet's interface: images -> (pooled [B, C], intermediates)."""

  @nn.compact
  def __call__(self, images, train=False):
    del train
    return images.mean(axis=(1, 2)), {}


def test_the_resnet_classifier_head_starts_at_zero_on_the_pooled_backbone_features():
  """SimCLR's `--zero_init_logits_layer`: every image starts at uniform predictions."""
  model = classifier.ResNetClassifier(_MeanPool(), num_classes=10)
  images = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
  variables = jax.jit(model.init)(jax.random.key(0), images)
  assert variables["params"]["head"]["kernel"].shape == (3, 10)
  assert not any(np.any(leaf) for leaf in jax.tree.leaves(variables["params"]["head"]))
  moved = {"head": {"kernel": np.ones((3, 10), np.float32), "bias": np.arange(10.0)}}
  np.testing.assert_allclose(jax.jit(model.apply)({"params": moved}, images),
                             images.mean((1, 2)).sum(-1, keepdims=True) + np.arange(10.0),
                             rtol=1e-5)


def test_a_resnet_fine_tunes_with_batchnorm_on_batch_statistics(resnet_plans, monkeypatch):
  """From the zero head: ln(10) and no gradient to the backbone at the first step; SGD on one
  fixed batch lowers the loss; BatchNorm's running statistics move toward the batch's."""
  # the un-augmented image as the view (the real one costs ~10 s of compilation on a CPU)
  monkeypatch.setattr(finetune, "train_view", lambda config, key, image, size, extent=None:
                      augment.standardize(image / 255.0))
  checkpoint, loaded, _ = resnet_plans
  # random values for what the checkpoint replaces, the head at its init (the test above):
  # the real initialisers compile for ~20 s on a CPU
  params, model_state = _random_numpy(jax.eval_shape(loaded.init, jax.random.key(0)), seed=2)
  params["head"] = jax.tree.map(np.zeros_like, params["head"])
  state = loaded.start(TrainState.create(params, (), model_state))
  train_source = loaded.source
  batch = {"image": np.stack([train_source[i]["image"] for i in range(16)]),
           "label": np.array([train_source[i]["label"] for i in range(16)], np.int32)}
  grad_fn = jax.jit(jax.value_and_grad(loaded.objective, has_aux=True))
  params, model_state, opt_state = state.params, state.model_state, loaded.tx.init(state.params)
  losses = []
  for step in range(3):
    (loss, (model_state, metrics)), grads = grad_fn(params, model_state, (), batch,
                                                    jax.random.key(7))
    if step == 0:
      np.testing.assert_allclose(loss, np.log(10), rtol=1e-6)
      assert not any(np.any(g) for g in jax.tree.leaves(grads["backbone"]))
      assert all(np.any(g) for g in jax.tree.leaves(grads["head"]))
      moved = jax.tree.map(lambda a, b: not np.allclose(a, b),
                           model_state["batch_stats"]["backbone"],
                           checkpoint["batch_stats"]["backbone"])
      assert all(jax.tree.leaves(moved))
    updates, opt_state = loaded.tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    losses.append(float(loss))
  assert losses[2] < losses[1] < losses[0], losses
  assert "train_top1" in metrics

@pytest.mark.parametrize("field,value,message", [
    ("finetune__mixup_group_size", 24, "finetune.mixup_group_size=24 does not divide the "
     "micro-batch of 1024 images"),
    ("finetune__mixup_group_size", 0, "finetune.mixup_group_size=0"),
    ("grad_accum_steps", 0, "grad_accum_steps=0 is below 1"),
])
def test_bad_finetuning_fields_are_one_line_errors(field, value, message):
  config = load_config_with("finetune_imagenet", None, **{field: value})
  with pytest.raises(ConfigError, match=message):
    validation.validate_probe(config)


def _losses(workdir):
  return [r["loss"] for r in metrics.read_jsonl(f"{workdir}/metrics.jsonl") if "loss" in r]


# Slow (~3 min of CPU: a ResNet pre-training and two fine-tunings compile); the default tests
# above cover the loading, the zero head, BatchNorm in training and the ResNet-only refusals.
@pytest.mark.slow
def test_a_simsiam_checkpoint_fine_tunes_and_its_random_init_baseline_differs_in_the_backbone(
    simsiam_workdir, tmp_path):
  fields = dict(total_steps=8, eval_every_steps=8, checkpoint_every_steps=8, optim__lr=0.2)
  mesh = sharding.make_mesh()
  _, variables, _ = pretrained.load(simsiam_workdir, sharding.replicated(mesh))
  config = load_config_with("finetune_cifar10", RESNET_RUNLOCAL, init_from=simsiam_workdir,
                            **fields)
  baseline_config = load_config_with("finetune_cifar10", f"{RESNET_RUNLOCAL},baseline="
                                     "random_init", init_from=simsiam_workdir, **fields)
  plan, baseline_plan = finetune.plan(config, mesh), finetune.plan(baseline_config, mesh)
  params, model_state = _random_numpy(jax.eval_shape(plan.init, jax.random.key(0)), seed=0)
  fresh = TrainState.create(params, (), model_state)
  started = plan.start(fresh)
  assert _equal(started.params["backbone"], jax.device_get(variables["params"]["backbone"]))
  assert _equal(started.model_state["batch_stats"]["backbone"],
                jax.device_get(variables["batch_stats"]["backbone"]))
  assert _equal(started.params["head"], params["head"]) and baseline_plan.start(fresh) is fresh
  summaries = {name: run_types.run(c, str(tmp_path / name))
               for name, c in (("simsiam", config), ("random_init", baseline_config))}
  for name, summary in summaries.items():
    losses = _losses(tmp_path / name)
    assert len(losses) == 8 and abs(losses[0] - np.log(10)) < 1e-5, (name, losses)
    assert np.mean(losses[-3:]) < losses[0], (name, losses)  # below uniform predictions
    assert 0 <= summary["evals"]["finetune/top1"] <= 1
    assert summary["record"]["feature"] == "backbone"


def test_the_cifar10_recipe_argument_names_the_recipes():
  assert load_config("finetune_cifar10", "recipe=resnet").optim.nesterov
  with pytest.raises(ConfigError, match="recipe='cnn' is unknown: use one of vit, resnet"):
    load_config("finetune_cifar10", "recipe=cnn")


def test_every_siamese_method_names_its_backbone_and_a_vit_backbone_loads_into_the_classifier():
  for name in ("simsiam", "simclr", "moco_v2", "byol", "swav", "npid", "rotation",
               "relative_position", "denoising", "context_encoder", "colorization"):
    config = load_config(f"{name}_cifar10", "runlocal")
    spec = methods.get(config.method).finetune_encoder(config)
    assert (spec["kind"], spec["part"]) == ("resnet", "backbone"), name
    assert spec["module"].width == config.model.resnet_width
    pretrained = jax.eval_shape(lambda key: methods.get(config.method).init(
        config, key, (1, 32, 32, 3)), jax.random.key(0))["params"]["backbone"]
    fresh = jax.eval_shape(spec["module"].init, jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
    assert jax.tree.map(lambda a: a.shape, pretrained) == jax.tree.map(
        lambda a: a.shape, fresh["params"]), name
  config = load_config_with("simsiam_cifar10", "runlocal", model__variant="mu/4")
  spec = methods.get("simsiam").finetune_encoder(config)
  assert (spec["kind"], spec["part"]) == ("vit", "backbone")
  backbone = _random_numpy(jax.eval_shape(lambda key: simsiam.init(
      config, key, (1, 32, 32, 3)), jax.random.key(0)), seed=0)["params"]["backbone"]
  shapes = jax.eval_shape(classifier.ViTClassifier(spec["vit"], 10).init, jax.random.key(0),
                          jnp.zeros((1, 32, 32, 3)))["params"]
  loaded = finetune.load_encoder(_random_numpy(shapes, seed=1), backbone)
  assert _equal(loaded["encoder"]["blocks_0"], backbone["blocks_0"])
