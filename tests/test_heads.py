"""The Siamese heads of the ImageNet recipes as the releases build them: which parameters and
BatchNorms exist (MoCo v3, BYOL, SimCLR), the initialisation of every head Linear measured from
its parameters, and the wiring of the recipes' head, backbone and BatchNorm switches."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config, numpy_variables
from ssljax import methods
from ssljax.errors import ConfigError
from ssljax.methods import siamese, swav
from ssljax.models import heads


# XLA's RngBitGenerator: the same distributions as threefry, far quicker to compile on CPU.
RBG_KEY = jax.random.key(0, impl="rbg")


def _flat(tree):
  """{"fc0/kernel": array, ...} of a nested dict."""
  return {"/".join(k.key for k in path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _head_shapes(config_name, features):
  """{part: variables as shapes} of the projector and predictor of a recipe's network on
  backbone features of width `features`."""
  config = load_config(config_name)
  modules = siamese.build_network(config, config[config.method])
  variables = {"projector": jax.eval_shape(modules["projector"].init, jax.random.key(0),
                                           jnp.ones((4, features)))}
  if "predictor" in modules:
    variables["predictor"] = jax.eval_shape(modules["predictor"].init, jax.random.key(1),
                                            jnp.ones((4, modules["projector"].dim)))
  return variables


def _shapes(variables, collection):
  return {k: v.shape for k, v in _flat(variables.get(collection, {})).items()}


# MoCo v3 (moco/builder.py `_build_mlp`): every Linear bias=False, BN1d between, the last BN
# affine=False; the ResNet predictor has no last BN, the ViT predictor has one.
MOCO_V3_PROJECTOR = {"fc0/kernel": (2048, 4096), "bn0/scale": (4096,), "bn0/bias": (4096,),
                     "fc1/kernel": (4096, 256)}
MOCO_V3_PREDICTOR = {"fc0/kernel": (256, 4096), "bn0/scale": (4096,), "bn0/bias": (4096,),
                     "fc1/kernel": (4096, 256)}


def test_moco_v3_resnet_heads_have_no_bias_and_no_last_bn_in_the_predictor():
  variables = _head_shapes("moco_v3_r50", 2048)
  assert _shapes(variables["projector"], "params") == MOCO_V3_PROJECTOR
  assert set(_shapes(variables["projector"], "batch_stats")) == {
      "bn0/mean", "bn0/var", "bn1/mean", "bn1/var"}
  assert _shapes(variables["predictor"], "params") == MOCO_V3_PREDICTOR
  assert set(_shapes(variables["predictor"], "batch_stats")) == {"bn0/mean", "bn0/var"}


def test_moco_v3_vit_heads_have_no_bias_and_an_affine_free_last_bn_in_the_predictor():
  variables = _head_shapes("moco_v3_vitb", 768)
  projector = {"fc0/kernel": (768, 4096), "bn0/scale": (4096,), "bn0/bias": (4096,),
               "fc1/kernel": (4096, 4096), "bn1/scale": (4096,), "bn1/bias": (4096,),
               "fc2/kernel": (4096, 256)}
  assert _shapes(variables["projector"], "params") == projector
  assert "bn2/var" in _shapes(variables["projector"], "batch_stats")
  assert _shapes(variables["predictor"], "params") == MOCO_V3_PREDICTOR
  assert set(_shapes(variables["predictor"], "batch_stats")) == {
      "bn0/mean", "bn0/var", "bn1/mean", "bn1/var"}


def test_predictor_with_last_bn_outputs_zero_mean_unit_variance_features_in_train_mode():
  predictor = heads.Predictor(dim=16, hidden_dim=32, last_bn=True, output_bias=False)
  x = np.random.default_rng(0).normal(3, 2, size=(64, 16)).astype(np.float32)
  p, _ = jax.jit(lambda v: predictor.apply(v, x, train=True, mutable=["batch_stats"]))(
      numpy_variables(predictor, x))
  np.testing.assert_allclose(p.mean(axis=0), 0, atol=1e-5)
  np.testing.assert_allclose(p.var(axis=0), 1, atol=1e-3)


def test_byol_projector_and_predictor_outputs_have_no_bias():
  """deepmind-research byol/utils/networks.py: Linear(4096) -> BN -> ReLU -> Linear(256, no
  bias). The hidden Linear's bias is dropped as BN removes it."""
  variables = _head_shapes("byol_r50", 2048)
  for part, fan_in in (("projector", 2048), ("predictor", 256)):
    assert _shapes(variables[part], "params") == {
        "fc0/kernel": (fan_in, 4096), "bn0/scale": (4096,), "bn0/bias": (4096,),
        "fc1/kernel": (4096, 256)}, part


def test_simclr_projection_head_is_the_tf2_release():
  """simclr tf2/model.py: 3 Dense without bias, BN on each; the middle BNs with gamma and beta,
  the last with gamma only; kernels N(0, 0.01) (measured in the initializer tests)."""
  projector = _head_shapes("simclr_r50", 2048)["projector"]
  assert _shapes(projector, "params") == {
      "fc0/kernel": (2048, 2048), "bn0/scale": (2048,), "bn0/bias": (2048,),
      "fc1/kernel": (2048, 2048), "bn1/scale": (2048,), "bn1/bias": (2048,),
      "fc2/kernel": (2048, 128), "bn2/scale": (128,)}
  config = load_config("simclr_r50")
  assert siamese.build_network(config, config.simclr)["projector"].linear_init == "normal_0.01"


def _check_linear_init(kernel, bias, init):
  """kernel [fan_in, out] and bias against the formula of `init` (`heads.dense_initializers`)."""
  kernel, fan_in = np.asarray(kernel), kernel.shape[0]
  bound = 1 / math.sqrt(fan_in)
  if init == "torch":  # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)); bias the same
    assert bound * 0.99 < np.max(np.abs(kernel)) <= bound
    np.testing.assert_allclose(np.std(kernel), bound / math.sqrt(3), rtol=0.02)
    if bias is not None:
      assert bound * 0.9 < np.max(np.abs(bias)) <= bound
      np.testing.assert_allclose(np.std(bias), bound / math.sqrt(3), rtol=0.15)
    return
  if init == "haiku":  # truncated normal(1/sqrt(fan_in)) at 2 sd, not rescaled
    assert bound * 1.99 < np.max(np.abs(kernel)) <= bound * 2
    np.testing.assert_allclose(np.std(kernel), 0.8796 * bound, rtol=0.02)
  elif init == "flax":  # lecun_normal: truncated, rescaled to std 1/sqrt(fan_in)
    np.testing.assert_allclose(np.std(kernel), bound, rtol=0.02)
  elif init == "normal_0.01":
    np.testing.assert_allclose(np.std(kernel), 0.01, rtol=0.02)
  if bias is not None:
    np.testing.assert_array_equal(bias, 0.0)


@pytest.mark.parametrize("init", heads.INITS)
def test_dense_initializers_follow_the_formula_of_each_framework(init):
  kernel_init, bias_init = heads.dense_initializers(init, 256)
  kernel = kernel_init(RBG_KEY, (256, 512))
  bias = bias_init(jax.random.fold_in(RBG_KEY, 1), (512,))
  _check_linear_init(kernel, bias, init)
  if init == "normal_0.01":
    assert np.max(np.abs(kernel)) > 0.04  # not truncated at 2 sd


def test_every_linear_of_the_heads_and_prototypes_gets_the_init():
  """A torch-initialised projector, predictor and prototypes: every kernel and bias within
  U(+-1/sqrt(fan_in)), at its std."""
  modules = [heads.Projector(256, 512, 2, hidden_bn=False, last_bn=False, linear_init="torch"),
             heads.Predictor(256, 512, linear_init="torch"),
             heads.Prototypes(512, linear_init="torch")]
  checked = 0
  for module in modules:
    params = _flat(module.init(RBG_KEY, jnp.ones((2, 256)))["params"])
    for name, kernel in params.items():
      if name.endswith("kernel"):
        _check_linear_init(kernel, params.get(name.replace("kernel", "bias")), "torch")
        checked += 1
  assert checked == 2 + 2 + 1


def test_moco_v2_head_keeps_both_biases():
  assert set(_shapes(_head_shapes("moco_v2_r50", 2048)["projector"], "params")) == {
      "fc0/kernel", "fc0/bias", "fc1/kernel", "fc1/bias"}


# (head_init, bn_running_var, zero_init_residual) of each release (docs/fidelity/*.md).
RELEASE_NETWORKS = {
    "simsiam_r50": ("torch", "unbiased", True), "moco_v2_r50": ("torch", "unbiased", False),
    "moco_v3_r50": ("torch", "unbiased", True), "moco_v3_vitb": ("torch", "unbiased", None),
    "byol_r50": ("haiku", "biased", True), "simclr_r50": ("normal_0.01", "biased", True),
    "swav_r50": ("torch", "unbiased", False), "simsiam_cifar10": ("flax", "biased", True)}


@pytest.mark.parametrize("config_name", sorted(RELEASE_NETWORKS))
def test_recipes_build_the_release_backbone_and_heads(config_name):
  init, running_var, zero_init = RELEASE_NETWORKS[config_name]
  config = load_config(config_name)
  methods.get(config.method).validate(config)
  modules = siamese.build_network(config, config[config.method])
  for part in ("projector", "predictor"):
    if part in modules:
      assert (modules[part].linear_init, modules[part].bn_running_var) == (init, running_var)
  if config.method == "swav":  # an nn.Linear without bias in the release, then normalised
    assert swav._prototypes(config).linear_init == init
  if zero_init is not None:  # the ViT has no BatchNorm
    assert modules["backbone"].zero_init_residual == zero_init
    assert modules["backbone"].bn_running_var == running_var


@pytest.mark.parametrize("field,value", [("head_init", "pytorch"),
                                         ("model.bn_running_var", "torch")])
def test_unknown_head_init_or_running_variance_is_a_config_error(field, value):
  config = load_config("simsiam_r50")
  with config.unlocked():
    if field == "head_init":
      config.simsiam.head_init = value
    else:
      config.model.bn_running_var = value
  with pytest.raises(ConfigError, match=f"{field}='{value}' is unknown: use "):
    methods.get("simsiam").validate(config)
