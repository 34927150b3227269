"""Which configs compute in bfloat16: the accelerator (ImageNet) recipes; their runlocal
variants, the CIFAR-10 and demo configs stay float32."""
import pytest

from conftest import load_config
from test_configs import CONFIGS

# Evaluation configs whose features come from the pre-training config's encoder (its dtype).
FEATURES_FROM_ENCODER = {"probe_imagenet", "probe_cifar10", "probe_demo"}


def _compute_dtype(config):
  return config.finetune.dtype if "finetune" in config else config.model.dtype


@pytest.mark.parametrize("name", sorted(set(CONFIGS) - FEATURES_FROM_ENCODER))
def test_accelerator_recipes_compute_in_bfloat16_and_cpu_ones_in_float32(name):
  accelerator = not ("cifar10" in name or "demo" in name)
  assert _compute_dtype(load_config(name)) == ("bfloat16" if accelerator else "float32")
  assert _compute_dtype(load_config(name, "runlocal")) == "float32"
