"""The attention kernel switch: which kernel each (backend, dtype, head dim) gets, that the
fallback changes nothing on CPU, and one-line errors where cuDNN is asked for and cannot run."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config_with, numpy_variables
from ssljax import methods
from ssljax.config import validation
from ssljax.errors import ConfigError
from ssljax.models import attention, vit


@pytest.mark.parametrize("backend, dtype, head_dim, auto", [
    ("cuda", jnp.bfloat16, 64, "cudnn"),   # ViT-B/L
    ("cuda", jnp.float16, 80, "cudnn"),    # ViT-H/14
    ("cuda", jnp.bfloat16, 128, "cudnn"),
    ("cuda", jnp.float32, 64, "xla"),      # cuDNN's fused kernel is bf16/fp16 only
    ("cuda", jnp.bfloat16, 60, "xla"),     # not a multiple of 8
    ("cuda", jnp.bfloat16, 136, "xla"),    # above 128
    ("tpu", jnp.bfloat16, 64, "xla"),
    ("cpu", jnp.bfloat16, 64, "xla"),
    ("gpu", jnp.bfloat16, 64, "xla"),      # a GPU backend without CUDA (ROCm)
])
def test_auto_takes_cudnn_exactly_where_it_applies_and_cudnn_elsewhere_is_refused(
    backend, dtype, head_dim, auto):
  assert attention.select("auto", backend, dtype, head_dim) == auto
  assert attention.select("xla", backend, dtype, head_dim) == "xla"
  if auto == "cudnn":
    assert attention.select("cudnn", backend, dtype, head_dim) == "cudnn"
  else:
    with pytest.raises(ValueError, match="cuDNN attention cannot run"):
      attention.select("cudnn", backend, dtype, head_dim)


def _reference_attention(q, k, v, implementation=None):
  """softmax(q k^T / sqrt(d)) v written out: q, k, v [B, N, heads, d]."""
  scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1])
  return jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)


def test_auto_and_xla_give_the_same_vit_outputs_and_gradients_as_the_formula(monkeypatch):
  images = jax.random.normal(jax.random.key(1), (2, 16, 16, 3))
  spec = dict(vit.parse_variant("mu/4"), depth=1)
  variables = jax.tree.map(lambda x: 0.3 * x, numpy_variables(vit.ViT(**spec), images))

  def value_and_grad(impl):
    model = vit.ViT(**spec, attention_impl=impl)
    loss = lambda v: jnp.sum(jnp.tanh(model.apply(v, images)[0]))
    return jax.jit(jax.value_and_grad(loss))(variables)

  (auto, grad_auto), (xla, grad_xla) = value_and_grad("auto"), value_and_grad("xla")
  np.testing.assert_array_equal(auto, xla)
  jax.tree.map(np.testing.assert_array_equal, grad_auto, grad_xla)
  monkeypatch.setattr(jax.nn, "dot_product_attention", _reference_attention)
  reference, grad_reference = value_and_grad("xla")
  np.testing.assert_allclose(auto, reference, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               grad_auto, grad_reference)


@pytest.mark.parametrize("name, dtype, message", [
    ("demo", "bfloat16", "model.attention_impl='cudnn' cannot run here (backend 'cpu'"),
    ("moco_v3_vitb", "float32", "model.attention_impl='cudnn' cannot run here (backend 'cpu'"),
])
def test_cudnn_where_it_cannot_run_is_a_one_line_config_error(name, dtype, message):
  config = load_config_with(name, "runlocal", model__attention_impl="cudnn",
                            model__dtype=dtype)
  with pytest.raises(ConfigError, match=r"^" + message.replace("(", r"\(")) as error:
    methods.get(config.method).init(config, jax.random.key(0), (1, 32, 32, 3))
  assert "use 'auto'" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("field, value, message", [
    ("model__attention_impl", "flash", "model.attention_impl='flash' is unknown"),
    ("model__remat", "some", "model.remat='some' is unknown"),
])
def test_unknown_kernels_and_policies_are_refused_by_validation(field, value, message):
  with pytest.raises(ConfigError, match=message):
    validation.validate(load_config_with("demo", "runlocal", **{field: value}))
