"""Array checksums (`runtime.checksums`): the same value however an array is sharded, and a
different one for any flipped bit or moved value."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from ssljax.runtime import checksums


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.int32, jnp.uint8, jnp.bool_])
def test_checksum_ignores_sharding_and_sees_every_bit_and_position(dtype):
  values = np.random.default_rng(0).normal(size=(16, 24)) * 10
  x = jnp.asarray(values > 0 if dtype == jnp.bool_ else values, dtype)
  mesh = jax.make_mesh((8,), ("data",))
  sharded = jax.device_put(x, NamedSharding(mesh, P("data")))
  tree = {"a": x, "b": [x[:3]]}
  sums = checksums.of(tree)
  assert sorted(sums) == ["/a", "/b/0"]
  assert checksums.of({"a": sharded, "b": [x[:3]]}) == sums
  bits = np.asarray(jax.lax.bitcast_convert_type(x, jnp.uint8) if dtype not in (
      jnp.uint8, jnp.bool_) else x.astype(jnp.uint8)).copy()
  flipped = bits.copy()
  flipped.reshape(-1)[137] ^= 1  # one bit of one value
  flipped = jnp.asarray(flipped)
  flipped = (flipped.astype(jnp.bool_) if dtype == jnp.bool_ else flipped if dtype == jnp.uint8
             else jax.lax.bitcast_convert_type(flipped, dtype))
  assert checksums.of({"a": flipped})["/a"] != sums["/a"]
  swapped = x.at[0, 0].set(x[0, 1]).at[0, 1].set(x[0, 0])  # the same values, moved
  if x[0, 0] != x[0, 1]:
    assert checksums.of({"a": swapped})["/a"] != sums["/a"]


def test_mismatch_names_the_array_and_skips_what_was_not_summed():
  saved = checksums.record({"a": jnp.arange(4), "b": jnp.ones(3)})
  assert checksums.first_mismatch(saved, checksums.of({"a": jnp.arange(4),
                                                       "b": jnp.ones(3)})) is None
  assert "/b" in checksums.first_mismatch(saved, checksums.of({"a": jnp.arange(4),
                                                               "b": jnp.zeros(3)}))
  assert checksums.first_mismatch(saved, checksums.of({"c": jnp.zeros(3)})) is None
  assert checksums.first_mismatch(None, {"/a": 1}) is None  # a checkpoint from before checksums
  assert checksums.first_mismatch(dict(saved, algorithm="other"), {"/a": 1}) is None
