"""Analytic FLOPs against XLA's own count of the compiled forward pass, and MFU."""
import types

import jax
import jax.numpy as jnp
import pytest

from conftest import load_config
from ssljax.models import flops, resnet, vit
from ssljax.methods import mae


def _xla_flops(fn, *args):
  analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
  return (analysis[0] if isinstance(analysis, list) else analysis)["flops"]


@pytest.mark.parametrize("kept", [None, 16])
def test_vit_forward_flops_match_xla_up_to_the_elementwise_ops(kept):
  spec = dict(width=192, depth=2, num_heads=3, mlp_dim=768, patch_size=4)
  model = vit.ViT(**spec)
  images = jnp.zeros((1, 32, 32, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  keep = None if kept is None else jnp.arange(kept)[None]
  counted = _xla_flops(lambda v, x: model.apply(v, x, keep_indices=keep)[0], variables, images)
  # XLA also counts softmax, norms and GELU, which model FLOPs leave out
  assert 0.85 < flops.vit_forward(spec, 32, kept_patches=kept) / counted < 1.0


@pytest.mark.parametrize("name,stem,size", [  # ResNet-18: the same layers as ResNet-50's stem
    pytest.param("resnet18", True, 32, marks=pytest.mark.slow), ("resnet50", False, 64)])
def test_resnet_forward_flops_match_xla(name, stem, size):
  model = resnet.from_name(name, width=16, cifar_stem=stem)
  images = jnp.zeros((1, size, size, 3))
  variables = jax.eval_shape(model.init, jax.random.key(0), images)  # XLA counts from shapes
  counted = _xla_flops(lambda v, x: model.apply(v, x)[0], variables, images)
  # the analytic count includes the taps over zero padding, which XLA skips at the borders
  assert 0.97 < flops.resnet_forward(name, size, 16, stem) / counted < 1.15


def test_mae_step_flops_are_three_times_encoder_on_kept_patches_plus_decoder():
  config = load_config("demo")
  params = jax.eval_shape(lambda key: mae.init(config, key, (1, 32, 32, 3)),
                          jax.random.key(0))["params"]
  images = jnp.zeros((1, 32, 32, 3))
  forward = _xla_flops(lambda p, x: mae.forward(config, p, x, jax.random.key(1))[0], params,
                       images)
  assert 0.8 < mae.flops_per_example(config) / (3 * forward) < 1.0


def test_peak_table_and_mfu():
  assert flops.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
  assert flops.peak_tflops("TPU v4") == 275.0 and flops.peak_tflops("TPU v5 lite") == 197.0
  assert flops.peak_tflops("cpu") is None
  h100s = [types.SimpleNamespace(device_kind="NVIDIA H100 80GB HBM3")] * 8
  achieved, utilisation = flops.mfu(1000.0, 2e12, h100s)  # 1000 img/s x 2 TFLOP each
  assert achieved == pytest.approx(2000.0) and utilisation == pytest.approx(2000 / (8 * 989))
  assert flops.mfu(10.0, 1e9, jax.devices())[1] is None  # CPUs have no peak in the table
