"""ViT remat policies (`model.remat`): the gradients never change, what the forward keeps for
the backward pass does, as each policy says."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import ad_checkpoint  # saved_residuals: print_saved_residuals as data

from conftest import numpy_variables
from ssljax.config import sections
from ssljax.models import attention, vit

IMAGES = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
SPEC = dict(vit.parse_variant("mu/4"), depth=2)


def _loss(remat):
  model = vit.ViT(**SPEC, remat=remat)
  return lambda variables: jnp.sum(jnp.tanh(model.apply(variables, IMAGES)[0]))


@pytest.fixture(scope="module")
def variables():
  return jax.tree.map(lambda x: 0.3 * x, numpy_variables(vit.ViT(**SPEC), IMAGES))


def test_the_config_names_every_policy_and_kernel_the_models_have():
  assert sections.REMAT_POLICIES == tuple(vit.REMAT_POLICIES)
  assert sections.ATTENTION_IMPLS == attention.IMPLS


@pytest.fixture(scope="module")
def no_remat_grads(variables):
  return jax.jit(jax.grad(_loss("none")))(variables)


@pytest.mark.parametrize("remat", ["full", "dots", True])
def test_every_policy_gives_the_gradients_of_no_remat(variables, no_remat_grads, remat):
  expected = no_remat_grads
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               jax.jit(jax.grad(_loss(remat)))(variables), expected)


def test_full_keeps_less_than_dots_which_keeps_no_attention_scores_and_less_than_none(
    variables):
  saved = {remat: [shape for shape, _ in ad_checkpoint.saved_residuals(_loss(remat), variables)]
           for remat in ("none", "dots", "full", True, False)}
  size = {remat: sum(int(np.prod(s.shape)) for s in shapes) for remat, shapes in saved.items()}
  assert size["full"] < size["dots"] < size["none"]
  assert size[True] == size["full"] and size[False] == size["none"]
  tokens, heads = 1 + 16, SPEC["num_heads"]
  scores = lambda shapes: [s for s in shapes if s.shape[-3:] == (heads, tokens, tokens)]
  assert scores(saved["none"]) and not scores(saved["dots"]) and not scores(saved["full"])
  # dots keeps each block's qkv and fc1 outputs (on Linear's 2-D view); full keeps neither
  rows = IMAGES.shape[0] * tokens
  wide = lambda shapes: [s for s in shapes if s.shape in ((rows, 3 * SPEC["width"]),
                                                          (rows, SPEC["mlp_dim"]))]
  assert len(wide(saved["dots"])) == 2 * SPEC["depth"] and not wide(saved["full"])
