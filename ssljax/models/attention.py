"""Which kernel computes softmax(q k^T / sqrt(d)) v: cuDNN's fused (flash) attention where it
applies, XLA's elsewhere (`jax.nn.dot_product_attention`'s `implementation`).

  auto   cuDNN on a CUDA GPU with a bf16/fp16 compute dtype and a head dim it takes; else XLA
  xla    XLA's attention on every backend (what `implementation=None` runs in this JAX)
  cudnn  cuDNN's fused kernel; where it cannot run, `select` says why
"""
import jax
import jax.extend
import jax.numpy as jnp

from ssljax.errors import ConfigError

IMPLS = ("auto", "xla", "cudnn")
CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
# jax/_src/cudnn/fused_attention_stablehlo.py check_is_flash_attention: a multiple of 8 and at
# most 128 (256 from Hopper on; 128 holds on every GPU it runs on).
CUDNN_MAX_HEAD_DIM = 128


def current_backend():
  """"cuda" for an NVIDIA GPU backend (cuDNN exists), else `jax.default_backend()`."""
  backend = jax.default_backend()
  if backend == "gpu" and "cuda" in jax.extend.backend.get_backend().platform_version.lower():
    return "cuda"
  return backend


def cudnn_unsupported(backend, dtype, head_dim):
  """Why cuDNN's fused attention cannot run for (backend, compute dtype, head dim); "" if it can."""
  if backend != "cuda":
    return f"backend {backend!r} is not a CUDA GPU"
  if jnp.dtype(dtype) not in CUDNN_DTYPES:
    return f"compute dtype {jnp.dtype(dtype).name} is not bfloat16 or float16"
  if head_dim % 8 or head_dim > CUDNN_MAX_HEAD_DIM:
    return f"head dim {head_dim} is not a multiple of 8 up to {CUDNN_MAX_HEAD_DIM}"
  return ""


def select(impl, backend, dtype, head_dim):
  """"xla" or "cudnn" for `impl` (one of IMPLS); ValueError for "cudnn" where it cannot run."""
  if impl not in IMPLS:
    raise ValueError(f"attention implementation {impl!r} is unknown: use one of "
                     f"{', '.join(IMPLS)}")
  reason = cudnn_unsupported(backend, dtype, head_dim)
  if impl == "cudnn" and reason:
    raise ValueError(f"cuDNN attention cannot run: {reason}")
  return "cudnn" if impl == "cudnn" or (impl == "auto" and not reason) else "xla"


def require_runnable(field, impl, dtype, head_dim):
  """ConfigError naming config `field` if `impl` is "cudnn" and cuDNN cannot run here."""
  reason = cudnn_unsupported(current_backend(), dtype, head_dim)
  if impl == "cudnn" and reason:
    raise ConfigError(f"{field}='cudnn' cannot run here ({reason}): use 'auto' (cuDNN where "
                      "it applies, XLA elsewhere) or 'xla'")


def dot_product_attention(q, k, v, impl="auto"):
  """q, k, v [B, N, heads, head_dim] -> [B, N, heads, head_dim] through `select`'s kernel."""
  chosen = select(impl, current_backend(), q.dtype, q.shape[-1])
  return jax.nn.dot_product_attention(q, k, v, implementation=chosen)
