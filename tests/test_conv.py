"""The CPU convolution's gradient equals the native one; its parameters are nn.Conv's."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssljax.models import conv


@pytest.mark.parametrize("size,kernel,stride,c_in,c_out", [
    (16, 3, 1, 4, 8), (17, 3, 2, 5, 3), (16, 1, 2, 6, 4), (20, 7, 2, 3, 8), (18, 1, 1, 8, 8)])
def test_gradients_match_native_convolution(size, kernel, stride, c_in, c_out):
  kx, kw, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (3, size, size, c_in))
  w = jax.random.normal(kw, (kernel, kernel, c_in, c_out))
  padding = ((kernel // 2, kernel // 2),) * 2
  out = conv.conv2d_cpu(x, w, (stride, stride), padding)
  native = conv._conv(x, w, (stride, stride), padding)  # pylint: disable=protected-access
  np.testing.assert_allclose(out, native, rtol=1e-5, atol=1e-5)
  g = jax.random.normal(kg, out.shape)
  grads = jax.grad(lambda x, w: jnp.sum(conv.conv2d_cpu(x, w, (stride, stride), padding) * g),
                   argnums=(0, 1))(x, w)
  native_grads = jax.grad(
      lambda x, w: jnp.sum(conv._conv(x, w, (stride, stride), padding) * g),  # pylint: disable=protected-access
      argnums=(0, 1))(x, w)
  for ours, ref in zip(grads, native_grads):
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_module_matches_flax_conv_with_the_same_parameters():
  x = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  ours = conv.Conv(8, (3, 3), (2, 2), ((1, 1), (1, 1)))
  params = ours.init(jax.random.key(2), x)
  reference = nn.Conv(8, (3, 3), (2, 2), padding=((1, 1), (1, 1)), use_bias=False)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(
      jnp.shape, reference.init(jax.random.key(2), x))
  np.testing.assert_allclose(ours.apply(params, x), reference.apply(params, x),
                             rtol=1e-5, atol=1e-5)
  loss = lambda module: lambda p: jnp.sum(module.apply(p, x) ** 2)
  np.testing.assert_allclose(jax.grad(loss(ours))(params)["params"]["kernel"],
                             jax.grad(loss(reference))(params)["params"]["kernel"],
                             rtol=1e-4, atol=1e-3)
