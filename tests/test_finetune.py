"""Fine-tuning (ssljax.finetune): layer-wise lr decay, drop path, encoder loading, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config, load_config_with
from ssljax.run import finetune, layer_decay, optim, run_types
from ssljax.config import sections, validation
from ssljax.runtime import pretrained, sharding
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


def test_finetuning_a_simsiam_encoder_is_refused_with_the_fix(tmp_path):
  config = _finetune_config(baseline="random_init", encoder_config="simsiam_cifar10:runlocal")
  with pytest.raises(ConfigError, match="not simsiam: evaluate simsiam with protocol=linear_probe or knn"):
    run_types.run(config, str(tmp_path))


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
