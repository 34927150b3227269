"""ViT encoder and MAE decoder: layout, masking paths, position embeddings."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax.config import validation
from ssljax.errors import ConfigError
from ssljax.models import posemb, vit


def _tiny_encoder():
  return vit.ViT(**vit.parse_variant("mu/4"))


def test_param_names_follow_the_official_layout():
  enc = _tiny_encoder()
  variables = enc.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  names = {"/".join(k.key for k in path)
           for path, _ in jax.tree_util.tree_leaves_with_path(variables["params"])}
  for expected in ("patch_embed/kernel", "cls_token", "blocks_0/norm1/scale",
                   "blocks_0/attn/qkv/kernel", "blocks_0/attn/proj/bias",
                   "blocks_1/mlp/fc1/kernel", "blocks_1/mlp/fc2/kernel", "norm/scale"):
    assert expected in names
  assert not any("pos_embed" in n for n in names)  # fixed, not trained


def test_keeping_every_patch_in_order_equals_the_full_encoder():
  enc = _tiny_encoder()
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  variables = enc.init(jax.random.key(0), x)
  full, _ = enc.apply(variables, x)
  kept, _ = enc.apply(variables, x, keep_indices=jnp.broadcast_to(jnp.arange(16), (2, 16)))
  np.testing.assert_allclose(full, kept, atol=1e-6)
  # dropping patches changes the cls output, and only visible patches are returned
  some, _ = enc.apply(variables, x, keep_indices=jnp.asarray([[0, 5, 9, 15]] * 2))
  assert some.shape == (2, 5, 32)
  assert not np.allclose(some[:, 0], full[:, 0], atol=1e-4)


def test_decoder_returns_a_prediction_per_patch_in_patch_order():
  dec = vit.MAEDecoder(width=32, depth=1, num_heads=2, mlp_dim=64, patch_size=4)
  tokens = jax.random.normal(jax.random.key(2), (2, 1 + 4, 24))
  restore = jnp.stack([jax.random.permutation(jax.random.key(i), 16) for i in range(2)])
  variables = dec.init(jax.random.key(0), tokens, restore)
  pred, _ = dec.apply(variables, tokens, restore)
  assert pred.shape == (2, 16, 4 * 4 * 3)
  # the decoder is permutation-equivariant up to position embeddings: a different restore
  # order gives different per-patch predictions
  other, _ = dec.apply(variables, tokens, jnp.flip(restore, axis=1))
  assert not np.allclose(pred, other)


def test_sincos_position_embedding_properties():
  emb = posemb.sincos_2d(64, 4)
  assert emb.shape == (16, 64)
  np.testing.assert_allclose((emb ** 2).sum(-1), 32.0, rtol=1e-6)  # 32 sin^2 + cos^2 pairs
  # first half encodes the column, second half the row
  np.testing.assert_allclose(emb[0, :32], emb[4, :32])  # same column, next row
  np.testing.assert_allclose(emb[0, 32:], emb[1, 32:])  # same row, next column
  assert len({tuple(np.round(r, 5)) for r in emb}) == 16


@pytest.mark.parametrize("bad", ["B", "Q/16", "B/x", ""])
def test_unknown_variant_is_a_clear_error(bad):
  with pytest.raises(ValueError, match="unknown ViT variant"):
    vit.parse_variant(bad)


def test_sizes_match_the_vit_paper():
  assert vit.parse_variant("B/16") == dict(width=768, depth=12, num_heads=12, mlp_dim=3072,
                                           patch_size=16)
  assert vit.parse_variant("L/16")["depth"] == 24
  assert vit.parse_variant("H/14") == dict(width=1280, depth=32, num_heads=16, mlp_dim=5120,
                                           patch_size=14)


def test_bfloat16_compute_keeps_float32_parameters():
  x = jax.random.normal(jax.random.key(4), (2, 16, 16, 3))
  enc32 = vit.ViT(**vit.parse_variant("mu/4"))
  enc16 = vit.ViT(**vit.parse_variant("mu/4"), dtype=jnp.bfloat16)
  variables = enc16.init(jax.random.key(0), x)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  out16, _ = enc16.apply(variables, x)
  out32, _ = enc32.apply(variables, x)
  assert out16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out16, np.float32), out32, atol=0.1)


def test_a_learned_position_embedding_starts_at_the_sincos_table_and_is_trained():
  """timm's ViT (MAE fine-tuning) trains `pos_embed` [1, 1+L, D], loaded as sin-cos with a
  zero cls row."""
  x = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  learned = vit.ViT(width=32, depth=0, num_heads=2, mlp_dim=32, patch_size=4,
                    learned_pos_embed=True)  # no blocks: the embedding and the final norm

  def init_and_grad(key):
    variables = learned.init(key, x)
    loss = lambda v: (learned.apply(v, x)[0] * jnp.arange(32.0)).sum()  # LN outputs sum to 0
    return variables, jax.grad(loss)(variables)

  variables, grad = jax.jit(init_and_grad)(jax.random.key(0))
  pos_embed = variables["params"]["pos_embed"]
  assert pos_embed.shape == (1, 17, 32)
  np.testing.assert_array_equal(pos_embed[0, 0], 0.0)
  np.testing.assert_array_equal(pos_embed[0, 1:], posemb.sincos_2d(32, 4))
  assert np.abs(grad["params"]["pos_embed"][0, 0]).max() > 0  # the cls row too
  assert np.abs(grad["params"]["pos_embed"][0, 1:]).min(axis=-1).max() > 0


def test_vit_inits_follow_the_releases():
  """mae: PyTorch's Conv2d bias U(+-1/sqrt(3 p^2)) for the patch projection (MAE re-inits only
  Linear and LayerNorm); mocov3 (moco-v3 vits.py): q, k, v each xavier, bound sqrt(6 / 2D)
  instead of the fused kernel's sqrt(6 / 4D), and the cls token N(0, 1e-6)."""
  encoder = lambda init: vit.ViT(width=64, depth=1, num_heads=2, mlp_dim=64, patch_size=8,
                                 weight_init=init)
  x = jnp.zeros((1, 16, 16, 3))
  mae, mocov3 = jax.jit(lambda key: [encoder(i).init(key, x)["params"]
                                     for i in ("xavier_torch_bias", "mocov3")])(jax.random.key(0))
  for params, qkv_bound, cls_std, bias_bound in ((mae, (6 / (64 + 192)) ** 0.5, 0.02,
                                                  (3 * 8 * 8) ** -0.5),
                                                 (mocov3, (6 / (64 + 64)) ** 0.5, 1e-6, 0.0)):
    qkv = np.asarray(params["blocks_0"]["attn"]["qkv"]["kernel"])  # [64, 3 * 64]
    assert 0.97 * qkv_bound < np.abs(qkv).max() <= qkv_bound
    np.testing.assert_allclose(qkv.std(), qkv_bound / 3 ** 0.5, rtol=0.03)
    np.testing.assert_allclose(np.asarray(params["cls_token"]).std(), cls_std, rtol=0.3)
    bias = np.abs(np.asarray(params["patch_embed"]["bias"]))
    assert 0.8 * bias_bound <= bias.max() <= bias_bound


def test_the_imagenet_recipes_choose_their_releases_init_and_bad_names_are_refused():
  for name, init in (("mae_vitb", "xavier_torch_bias"), ("mae_vitl", "xavier_torch_bias"),
                     ("mae_vith", "xavier_torch_bias"),
                     ("moco_v3_vitb", "mocov3"), ("mae_cifar10", "xavier"), ("demo", "xavier"),
                     ("mae_vitl:runlocal", "xavier"), ("moco_v3_vitb:runlocal", "xavier")):
    assert load_config(*name.split(":")).model.vit_init == init, name
  with pytest.raises(ConfigError, match="model.vit_init='moco' is unknown: use one of xavier, "
                     "xavier_torch_bias, mocov3"):
    validation.validate(load_config_with("mae_vitb", None, model__vit_init="moco"))
