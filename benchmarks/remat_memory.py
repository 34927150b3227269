"""Per-device memory of the MAE train step under each remat policy (`model.remat`), from
shapes alone (nothing runs, nothing is allocated): for choosing the large recipes' default.

  python benchmarks/remat_memory.py --configs=mae_vitl,mae_vith --batch=32

For each config and policy, traces the method's loss on one device's batch of `--batch`
ImageNet canvases (augmentation on device included) and sums the residuals the forward pass
keeps for the backward one (`jax.ad_checkpoint.print_saved_residuals`, less the arguments),
in the config's compute dtype. Adds the float32 parameters, their gradients and the optimizer
state. XLA can free or fuse some residuals but rarely adds any: a close upper bound of what
the activations need, independent of the backend. (XLA:CPU's compiled `memory_analysis()`
is no guide here: it reports *more* temporaries with remat, as its scheduler keeps the
recomputed values alive.)
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import ad_checkpoint  # saved_residuals: print_saved_residuals as data

from ssljax import methods
from ssljax.config import loading
from ssljax.run import optim
from ssljax.run.state import TrainState


def nbytes(avals):
  return sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in avals
             if not jnp.issubdtype(x.dtype, jax.dtypes.prng_key))


def memory_gb(name, policy, batch_size, dtype):
  """(state GB: params, gradients and optimizer state; activations GB kept for backward)."""
  config = loading.load(name)
  with config.unlocked():
    config.model.remat, config.model.dtype = policy, dtype
  method = methods.get(config.method)
  tx, _ = optim.make(config.optim, batch_size, total_steps=10**6, warmup_steps=0,
                     steps_per_epoch=1000)
  size, side = config.input.image_size, config.input.canvas_size
  variables = jax.eval_shape(lambda key: dict(method.init(config, key, (1, size, size, 3))),
                             jax.random.key(0))
  params = variables.pop("params")
  state = jax.eval_shape(lambda p: TrainState.create(p, tx.init(p), variables), params)
  batch = {"image": jax.ShapeDtypeStruct((batch_size, side, side, 3), jnp.uint8),
           "extent": jax.ShapeDtypeStruct((batch_size, 2), jnp.int32),
           "label": jax.ShapeDtypeStruct((batch_size,), jnp.int32)}
  loss = lambda p, b: method.loss(config, p, variables, b, jax.random.key(0))[0]
  kept = [aval for aval, where in ad_checkpoint.saved_residuals(loss, params, batch)
          if not where.startswith("from the argument")]
  state_bytes = nbytes(jax.tree.leaves(state)) + nbytes(jax.tree.leaves(params))
  return state_bytes / 1e9, nbytes(kept) / 1e9


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--configs", default="mae_vitl,mae_vith")
  parser.add_argument("--policies", default="none,dots,full")
  parser.add_argument("--batch", type=int, default=32, help="examples per device")
  parser.add_argument("--dtype", default="bfloat16", help="compute dtype")
  args = parser.parse_args()
  print(f"{args.batch} images per device, compute {args.dtype}")
  print(f"{'config':10} {'remat':6} {'state GB':>8} {'activ. GB':>9} {'total GB':>8}")
  for name in args.configs.split(","):
    for policy in args.policies.split(","):
      state, kept = memory_gb(name, policy, args.batch, args.dtype)
      print(f"{name:10} {policy:6} {state:8.2f} {kept:9.2f} {state + kept:8.2f}", flush=True)


if __name__ == "__main__":
  main()
