"""Test setup: 8 fake CPU devices (before JAX initialises) and shared fixtures."""
import os
import tempfile

import jax

jax.config.update("jax_num_cpu_devices", 8)
# One persistent compilation cache for the session, its workers and the runs they start: the
# suite compiles the same few runlocal steps many times (compilations over 1 s are kept).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="ssljax-jax-cache-"))
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])

import pytest  # pylint: disable=wrong-import-position

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_ENV = "SSLJAX_CIFAR10_DIR"


@pytest.fixture
def cifar10_dir():
  """The real CIFAR-10 npz directory from $SSLJAX_CIFAR10_DIR, else the test is skipped."""
  path = os.environ.get(CIFAR10_ENV)
  if not path or not os.path.isdir(path):
    pytest.skip(f"real CIFAR-10 not available: set {CIFAR10_ENV} to the npz directory")
  return path


def load_config(name, arg=None):
  """`get_config(arg)` of configs/<name>.py."""
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  return loading.load(f"{name}:{arg}" if arg else name)


def load_config_with(name, arg=None, **fields):
  """`load_config(name, arg)` with `fields` set ("probe__augment" sets probe.augment)."""
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  config = load_config(name, arg)
  with config.unlocked():
    for field, value in fields.items():
      loading.set_field(config, field.replace("__", "."), value)
  return config


def numpy_variables(module, *inputs, seed=0):
  """`module`'s variables without running its initialisers (whose random draws compile
  slowly on CPU): params N(0, 1) from numpy, BatchNorm statistics at mean 0, var 1."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0), *inputs)
  def value(path, shape):
    if path[0].key == "batch_stats":
      return np.full(shape.shape, float(path[-1].key == "var"), np.float32)
    return rng.normal(size=shape.shape).astype(np.float32)
  return jax.tree_util.tree_map_with_path(value, shapes)


def _pretraining_run(tmp_path_factory, name, config_name):
  """The workdir of a pre-training run of `config_name` without its evals."""
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp(name)
  config = load_config(config_name, "runlocal")
  with config.unlocked():
    config.evals = {}
  run_types.run(config, str(workdir))
  return str(workdir)


@pytest.fixture(scope="session")
def pretrained_workdir(tmp_path_factory):
  """A demo:runlocal MAE pre-training run (6 steps), shared by the evaluation tests."""
  return _pretraining_run(tmp_path_factory, "pretrained", "demo")


@pytest.fixture(scope="session")
def simsiam_workdir(tmp_path_factory):
  """A simsiam_cifar10:runlocal pre-training run (ResNet-18 width 8, 4 steps on the embedded
  digits), shared by the tests that evaluate a ResNet backbone."""
  return _pretraining_run(tmp_path_factory, "simsiam", "simsiam_cifar10")
