"""Gradient accumulation: micro-batches give the large batch's update (no BatchNorm)."""
import os

import jax
import numpy as np
import pytest

from conftest import load_config
from ssljax.run import run_types
from ssljax.runtime import metrics, pretrained, sharding
from ssljax.errors import ConfigError


def _run(tmp_path, name, accum, steps=3):
  config = load_config(name, "runlocal")  # batch 32 on 8 devices
  with config.unlocked():
    config.total_steps, config.evals, config.grad_accum_steps = steps, {}, accum
  workdir = str(tmp_path / f"{name}_{accum}")
  run_types.run(config, workdir)
  losses = {r["step"]: r["loss"] for r in metrics.read_jsonl(os.path.join(workdir,
                                                                         "metrics.jsonl"))
            if "loss" in r}
  return losses, pretrained.load(workdir, sharding.replicated(sharding.make_mesh()))[1]


def test_four_micro_batches_give_the_large_batch_update(tmp_path):
  losses, variables = _run(tmp_path, "demo", 1)
  accumulated, accumulated_variables = _run(tmp_path, "demo", 4)
  assert sorted(losses) == [1, 2, 3]
  for step in losses:  # float32 sums in another order
    np.testing.assert_allclose(accumulated[step], losses[step], rtol=1e-5, atol=1e-6)
  # atol: the attention key bias has a zero gradient up to rounding, which Adam scales up to
  # steps of ~1e-6 in either run
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
               accumulated_variables, variables)


@pytest.mark.slow  # a ResNet training; the equality above runs in the default suite
def test_accumulation_runs_a_batchnorm_method(tmp_path):
  losses, _ = _run(tmp_path, "simsiam_cifar10", 2, steps=2)  # BN statistics per micro-batch
  assert all(np.isfinite(v) for v in losses.values())


def test_accumulation_checks_divisibility(tmp_path):
  config = load_config("demo", "runlocal")
  with config.unlocked():
    config.grad_accum_steps = 8  # 32 / (8 devices x 8) is not whole
  with pytest.raises(ConfigError, match="input.batch_size=32 is not divisible by 8 devices x "
                     "grad_accum_steps=8: use a multiple of 64"):
    run_types.run(config, str(tmp_path / "bad"))
