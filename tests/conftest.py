"""Test setup: 8 fake CPU devices (before JAX initialises) and shared fixtures."""
import os

import jax

jax.config.update("jax_num_cpu_devices", 8)

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
  from ssljax import config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.load(f"{name}:{arg}" if arg else name)


def load_config_with(name, arg=None, **fields):
  """`load_config(name, arg)` with `fields` set ("probe__augment" sets probe.augment)."""
  from ssljax import config_lib  # pylint: disable=g-import-not-at-top
  config = load_config(name, arg)
  with config.unlocked():
    for field, value in fields.items():
      config_lib.set_field(config, field.replace("__", "."), value)
  return config


@pytest.fixture(scope="session")
def pretrained_workdir(tmp_path_factory):
  """A demo:runlocal MAE pre-training run (6 steps), shared by the evaluation tests."""
  from ssljax import train  # pylint: disable=g-import-not-at-top
  workdir = tmp_path_factory.mktemp("pretrained")
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.evals = {}
  train.train_and_evaluate(config, str(workdir))
  return str(workdir)
