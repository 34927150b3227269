"""ResNet convolution kernels initialised as each release does it (`model.resnet_init`):
torchvision's kaiming normal over fan_out, Haiku's hk.Conv2D default and Keras's
VarianceScaling(), measured against the formulas from the kernel shape [kh, kw, C_in, C_out]."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, load_config_with
from ssljax.config import sections, validation
from ssljax.errors import ConfigError
from ssljax.methods import siamese
from ssljax.models import conv, resnet

TRUNCATED_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2 (scipy.stats.truncnorm)


def _fans(shape):
  kh, kw, c_in, c_out = shape
  return kh * kw * c_in, kh * kw * c_out


def _release_formula(init, shape):
  """(std, bound of |w| or None) of the release's init for a kernel of `shape`."""
  fan_in, fan_out = _fans(shape)
  if init == "torchvision":  # torch.nn.init.kaiming_normal_(mode="fan_out", relu): gain sqrt(2)
    return math.sqrt(2 / fan_out), None
  if init == "haiku":  # TruncatedNormal(stddev=1/sqrt(fan_in)): the parameter, cut at 2 of it
    return TRUNCATED_STD / math.sqrt(fan_in), 2 / math.sqrt(fan_in)
  # keras VarianceScaling(): stddev parameter sqrt(1/fan_in) / 0.8796..., cut at 2 of it
  return 1 / math.sqrt(fan_in), 2 / math.sqrt(fan_in) / TRUNCATED_STD


def _conv_inits(model, shape=(1, 8, 8, 3)):
  """{path: kernel_init} of the Conv modules `model` creates on input `shape`."""
  found = {}
  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, conv.Conv):
      found["/".join(context.module.path)] = context.module.kernel_init
    return next_fun(*args, **kwargs)
  with nn.intercept_methods(record):
    jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))
  return found


# A 3x3 kernel whose fan_in (1152) and fan_out (288) differ.
SHAPE = (3, 3, 128, 32)


@pytest.mark.parametrize("init", resnet.CONV_INITS)
def test_conv_kernels_have_the_std_and_cut_of_the_release(init):
  inits = _conv_inits(resnet.from_name("resnet18", width=2, cifar_stem=True, conv_init=init))
  assert len(inits) == 20 and all(fn is resnet.CONV_INITS[init] for fn in inits.values())
  kernel = np.asarray(resnet.CONV_INITS[init](jax.random.key(1), SHAPE), np.float64)
  std, bound = _release_formula(init, SHAPE)
  assert kernel.shape == SHAPE and abs(kernel.mean()) < 0.05 * std
  assert kernel.std() == pytest.approx(std, rel=0.02)
  peak = np.abs(kernel).max()
  if bound is None:  # untruncated: 36864 draws reach past 3.5 sd
    assert peak > 3.5 * std
  else:
    assert peak <= bound * (1 + 1e-6) and peak > 0.98 * bound


def test_default_init_is_the_previous_one_bit_for_bit():
  """The default (torchvision) draws exactly what variance_scaling(2, fan_out, normal) drew."""
  assert resnet.from_name("resnet18").conv_init == "torchvision"
  previous = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
  key = jax.random.key(3)
  np.testing.assert_array_equal(resnet.CONV_INITS["torchvision"](key, SHAPE),
                                previous(key, SHAPE))


def test_recipes_set_the_release_conv_init_and_the_backbone_gets_it():
  assert set(sections.RESNET_INITS) == set(resnet.CONV_INITS)
  expected = {"byol_r50": "haiku", "simclr_r50": "tf_variance_scaling",
              "simsiam_r50": "torchvision", "moco_v2_r50": "torchvision",
              "moco_v3_r50": "torchvision", "swav_r50": "torchvision"}
  for name, init in expected.items():
    config = load_config(name)
    assert config.model.resnet_init == init, name
    assert siamese.build_backbone(config).conv_init == init, name
    assert load_config(name, "runlocal").model.resnet_init == "torchvision", name


def test_an_unknown_resnet_init_is_a_one_line_error():
  config = load_config_with("simsiam_cifar10", model__resnet_init="kaiming")
  with pytest.raises(ConfigError, match=r"model.resnet_init='kaiming' is unknown: use one of "
                                        r"torchvision, haiku, tf_variance_scaling"):
    validation.validate(config)
