"""FSDP: a data x fsdp mesh with the large state arrays split over fsdp trains like pure data
parallelism, and its checkpoints resume under either layout."""
import os
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config
from ssljax import methods
from ssljax.run import run_types
from ssljax.runtime import metrics, sharding
from ssljax.errors import ConfigError

# Same math, different reduction order (XLA's reduce-scatter vs all-reduce): float32 rounding.
RTOL, ATOL = 1e-5, 1e-6


def _losses(workdir):
  return {r["step"]: r["loss"] for r in metrics.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
          if "loss" in r}


def _config(name, fsdp, steps=3):
  config = load_config(name, "runlocal")
  with config.unlocked():
    config.total_steps, config.evals = steps, {}
    config.mesh.fsdp, config.mesh.fsdp_min_size = fsdp, 0  # split every divisible array
  return config


def test_state_arrays_are_split_over_fsdp_along_their_largest_divisible_dimension():
  config = load_config("mae_vitb")
  mesh = sharding.make_mesh(fsdp=4)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4}
  abstract = jax.eval_shape(lambda: methods.get("mae").init(config, jax.random.key(0),
                                                            (1, 224, 224, 3)))
  shardings = sharding.state_shardings(abstract, mesh)
  encoder = shardings["params"]["encoder"]
  assert encoder["blocks_0"]["attn"]["qkv"]["kernel"].spec == jax.sharding.PartitionSpec(
      None, "fsdp")  # [768, 2304]: the 2304 side
  assert encoder["blocks_0"]["mlp"]["fc2"]["kernel"].spec[0] == "fsdp"  # [3072, 768]
  assert encoder["blocks_0"]["norm1"]["scale"].is_fully_replicated  # 768 elements: small
  kept_whole, total = sharding.replicated_bytes(abstract, shardings)
  assert 0 < kept_whole < 0.01 * total
  with pytest.raises(ConfigError, match="mesh.fsdp=3 does not divide the 8 devices"):
    sharding.make_mesh(fsdp=3)


# Slow: the default suite's test_an_fsdp_checkpoint_resumes_under_pure_data_parallelism already
# matches pure data parallelism's losses to an FSDP run's (steps 4-6).
@pytest.mark.slow
@pytest.mark.parametrize("name", ["demo", "simclr_cifar10"])
def test_fsdp_gives_the_losses_of_pure_data_parallelism(name, tmp_path):
  run_types.run(_config(name, 1), str(tmp_path / "dp"))
  run_types.run(_config(name, 4), str(tmp_path / "fsdp"))
  dp, fsdp = _losses(tmp_path / "dp"), _losses(tmp_path / "fsdp")
  assert sorted(dp) == [1, 2, 3]
  for step in dp:
    np.testing.assert_allclose(fsdp[step], dp[step], rtol=RTOL, atol=ATOL)


def test_an_fsdp_checkpoint_resumes_under_pure_data_parallelism(tmp_path):
  full = tmp_path / "fsdp"
  run_types.run(_config("demo", 4, steps=6), str(full))
  resumed = tmp_path / "dp"
  shutil.copytree(full, resumed)
  shutil.rmtree(resumed / "checkpoints" / "6")
  os.remove(resumed / "metrics.jsonl")
  run_types.run(_config("demo", 1, steps=6), str(resumed))
  expected, again = _losses(full), _losses(resumed)
  assert sorted(again) == [4, 5, 6]
  for step in again:
    np.testing.assert_allclose(again[step], expected[step], rtol=RTOL, atol=ATOL)
