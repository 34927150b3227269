"""Checksums of a train state's arrays, saved with each checkpoint and verified on restore.

Orbax restores a finalised checkpoint whose data files have rotted (flipped bytes) without a
word; with a checksum per array the damage is found and the checkpoint is set aside like an
unreadable one (`runtime.checkpoint`).

checksum(x) = sum over the flat index i of fmix32(bits(x_i) ^ (i * golden)) mod 2**32, where
fmix32 is MurmurHash3's finaliser: a changed bit anywhere changes the sum, and so does a moved
value. Integer addition is associative, so the value is the same however `x` is sharded; it is
computed where the array lives (no gather to one host), as one jitted function of the tree.
"""
import jax
import jax.numpy as jnp
import numpy as np

ALGORITHM = "fmix32-sum-v1"  # stored with the sums: a later algorithm never misreads old ones

_GOLDEN = np.uint32(0x9E3779B9)


def _bits(x):
  """The raw bits of `x` as uint32 [N] (64-bit values as two words, narrower ones widened)."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    return x.reshape(-1).astype(jnp.uint32)
  width = x.dtype.itemsize
  if width >= 4:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)
  unsigned = {1: jnp.uint8, 2: jnp.uint16}[width]
  return jax.lax.bitcast_convert_type(x, unsigned).reshape(-1).astype(jnp.uint32)


def _fmix32(h):
  h = h ^ (h >> 16)
  h = h * np.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * np.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def _checksum(x):
  """uint32 [] of one array [any shape]."""
  bits = _bits(x)
  index = jnp.arange(bits.shape[0], dtype=jnp.uint32)
  return jnp.sum(_fmix32(bits ^ (index * _GOLDEN)), dtype=jnp.uint32)


_checksums = jax.jit(lambda tree: jax.tree.map(_checksum, tree))


def _key_name(key):
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def path_name(path):
  """"/params/encoder/..." of a pytree key path."""
  return "/" + "/".join(_key_name(k) for k in path)


def of(tree):
  """{"/params/encoder/...": checksum as int} of a pytree of (possibly sharded) arrays."""
  sums = _checksums(tree)
  # A reduction's result is replicated, so every process holds the whole scalar.
  leaves, _ = jax.tree_util.tree_flatten_with_path(sums)
  return {path_name(path): int(np.asarray(leaf.addressable_data(0))) for path, leaf in leaves}


def first_mismatch(saved, restored):
  """The first restored array whose checksum differs from the saved one, in words; None when
  all agree.

  `saved`: {"algorithm": ..., "arrays": {path: int}} as stored; `restored`: `of(state)`.
  Arrays without a saved checksum are not compared (the restore itself checks the structure).
  """
  if not saved or saved.get("algorithm") != ALGORITHM:
    return None  # written before checksums, or by another version: nothing to compare against
  stored = saved["arrays"]
  for path in sorted(restored):
    if path in stored and stored[path] != restored[path]:
      return (f"the data of {path} does not match its checksum (saved {stored[path]}, read "
              f"{restored[path]})")
  return None


def record(tree):
  """What a checkpoint stores: {"algorithm": ALGORITHM, "arrays": `of(tree)`}."""
  return {"algorithm": ALGORITHM, "arrays": of(tree)}
