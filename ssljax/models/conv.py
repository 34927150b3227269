"""2-D convolution (Flax Linen) whose kernel gradient is fast on XLA:CPU.

XLA:CPU computes a convolution's kernel gradient as one convolution whose "kernel" is the
whole output gradient; on these machines that runs 5-20x slower than the forward pass and
dominated a ResNet training step. On CPU, for outputs of at least 16 x 16 positions (where the
native gradient is slow; below it is as fast), the kernel gradient here is instead a sum over
the kernel taps of `[C_in, N] x [N, C_out]` matmuls on strided slices of the padded input, which
XLA:CPU runs as GEMMs: 1.3-6x faster per layer, 1.8x for a whole narrow ResNet-18 SimSiam
step (`benchmarks/conv_grad_cpu.py`). Other backends (GPU, TPU) use the native gradient. The parameter
layout is that of `flax.linen.Conv` (`kernel` [kh, kw, C_in, C_out]), so checkpoints do not
depend on which gradient ran.
"""
import functools
from typing import Any, Callable, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")
MIN_TAPS_OUTPUT_POSITIONS = 16 * 16


def _conv(x, kernel, strides, padding):
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=_DIMENSIONS)


def kernel_grad_by_taps(x, out_grad, kernel_shape, strides, padding):
  """Kernel gradient of `_conv` as per-tap matmuls.

  x [B, H, W, C_in], out_grad [B, Ho, Wo, C_out] -> [kh, kw, C_in, C_out].
  """
  kh, kw, c_in, _ = kernel_shape
  batch, out_h, out_w, c_out = out_grad.shape
  sh, sw = strides
  padded = jnp.pad(x, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
  grad = out_grad.reshape(batch, out_h * out_w, c_out)
  taps = []
  for i in range(kh):
    for j in range(kw):
      window = jax.lax.slice(padded, (0, i, j, 0),
                             (batch, i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1, c_in),
                             (1, sh, sw, 1))
      # Per-example products summed afterwards: XLA:CPU runs these batched GEMMs faster than
      # one [C_in, B*Ho*Wo] x [B*Ho*Wo, C_out] product.
      per_example = jnp.einsum("bnc,bno->bco", window.reshape(batch, out_h * out_w, c_in), grad,
                               preferred_element_type=jnp.float32)
      taps.append(per_example.sum(axis=0))
  return jnp.stack(taps).reshape(kernel_shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv2d_cpu(x, kernel, strides, padding):
  """`lax.conv_general_dilated` (NHWC, HWIO) with the per-tap kernel gradient."""
  return _conv(x, kernel, strides, padding)


def _conv2d_cpu_fwd(x, kernel, strides, padding):
  return _conv(x, kernel, strides, padding), (x, kernel)


def _conv2d_cpu_bwd(strides, padding, residuals, out_grad):
  x, kernel = residuals
  _, input_vjp = jax.vjp(lambda inputs: _conv(inputs, kernel, strides, padding), x)
  kernel_grad = kernel_grad_by_taps(x, out_grad, kernel.shape, strides, padding)
  return input_vjp(out_grad)[0], kernel_grad.astype(kernel.dtype)


conv2d_cpu.defvjp(_conv2d_cpu_fwd, _conv2d_cpu_bwd)


def conv2d(x, kernel, strides, padding):
  """x [B, H, W, C_in], kernel [kh, kw, C_in, C_out] -> [B, Ho, Wo, C_out].

  `padding` is ((top, bottom), (left, right)); the kernel gradient is chosen at trace time.
  """
  strides, padding = tuple(strides), tuple(tuple(p) for p in padding)
  out_h = (x.shape[1] + sum(padding[0]) - kernel.shape[0]) // strides[0] + 1
  out_w = (x.shape[2] + sum(padding[1]) - kernel.shape[1]) // strides[1] + 1
  if jax.default_backend() == "cpu" and out_h * out_w >= MIN_TAPS_OUTPUT_POSITIONS:
    return conv2d_cpu(x, kernel, strides, padding)
  return _conv(x, kernel, strides, padding)


class Conv(nn.Module):
  """Bias-free 2-D convolution with explicit padding; the parameter layout of `nn.Conv`."""
  features: int
  kernel_size: Tuple[int, int]
  strides: Tuple[int, int] = (1, 1)
  padding: Sequence[Tuple[int, int]] = ((0, 0), (0, 0))
  kernel_init: Callable = nn.initializers.lecun_normal()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    return conv2d(x.astype(self.dtype), kernel.astype(self.dtype), self.strides, self.padding)
