"""Training-step throughput, model FLOPs utilisation and memory on synthetic data.

  python benchmarks/throughput.py --batch=256 --dtype=bfloat16            # on an accelerator
  python benchmarks/throughput.py --models=mae_vitb --batch=8 --steps=3   # CPU, slow
  python benchmarks/throughput.py --runlocal --batch=16                   # tiny models, seconds

For each model (MAE ViT-B/16 and ViT-L/16 at 224px, SimSiam ResNet-50 at 224px: their
ImageNet configs) runs the real jitted train step (augmentation on device included) over all
devices on a fixed synthetic uint8 batch (canvases of `input.canvas_size` holding 500x375
images, as the hosts hand them over) and prints images/s, achieved TFLOP/s (the method's
analytic FLOPs, ssljax/flops.py), MFU against the device's peak bf16 throughput (accelerators
only) and memory: the device's peak bytes in use where the backend reports it, else XLA's
compiled estimate (arguments + temporaries).
"""
import argparse
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from ssljax import methods
from ssljax.run import optim, pretrain
from ssljax.run.state import TrainState
from ssljax.config import loading, sections
from ssljax.models import flops
from ssljax.runtime import sharding

MODELS = ("mae_vitb", "mae_vitl", "simsiam_r50")


class Bench(NamedTuple):
  """A model's train step ready to compile for any batch size: its config, method, mesh, the
  train state on the devices and the jitted (not yet compiled) step."""
  config: Any
  method: Any
  mesh: Any
  state: Any
  step: Any


def prepare(name, batch_size, dtype, runlocal):
  """Bench of configs/<name>.py (":runlocal" with `runlocal`) at `batch_size` and `dtype`."""
  config = loading.load(name + (":runlocal" if runlocal else ""))
  with config.unlocked():
    config.input.batch_size, config.model.dtype = batch_size, dtype
  method = methods.get(config.method)
  mesh = sharding.make_mesh()
  size = config.input.image_size
  # The schedule's shape does not change a step's cost; recipes that set the lr once per
  # epoch (optim.schedule_per_epoch) need some epoch length.
  tx, lr = optim.make(config.optim, batch_size, total_steps=10**6, warmup_steps=0,
                      steps_per_epoch=1000)
  # One jitted init: op-by-op init compiles every small op of a large model separately.
  variables = dict(jax.jit(lambda key: method.init(config, key, (1, size, size, 3)))(
      jax.random.key(0)))
  params = variables.pop("params")
  state = TrainState.create(params, tx.init(params), variables)
  state = jax.device_put(state, sharding.replicated(mesh))
  step = jax.jit(pretrain.make_train_step(config, method, tx, lr, 10**6), donate_argnums=(0,))
  return Bench(config, method, mesh, state, step)


def host_batch(config, batch_size):
  """A fixed synthetic uint8 batch as the hosts hand it over: decoded files arrive as canvases
  of `input.canvas_size` holding 500x375 images, arrays at `image_size`."""
  batch = {"label": np.zeros(batch_size, np.int32)}
  if config.input.source in ("tfds", "image_folder"):
    side = config.input.canvas_size
    batch["extent"] = np.tile(np.asarray([[375, 500]], np.int32), (batch_size, 1))
  else:
    side = config.input.image_size
  batch["image"] = np.random.default_rng(0).integers(0, 256, (batch_size, side, side, 3),
                                                     np.uint8)
  return batch


def compile_for(bench, batch_size):
  """The step compiled for `batch_size` examples, from shapes only (nothing is allocated)."""
  batch = {k: jax.ShapeDtypeStruct((batch_size, *v.shape[1:]), v.dtype,
                                   sharding=sharding.batch_sharding(bench.mesh))
           for k, v in host_batch(bench.config, 1).items()}
  return bench.step.lower(bench.state, batch).compile()


def estimated_bytes(compiled):
  """XLA's estimate of the device bytes one step needs: arguments, outputs and temporaries,
  less the outputs that reuse (donated) argument buffers."""
  a = compiled.memory_analysis()
  return (a.argument_size_in_bytes + a.output_size_in_bytes + a.temp_size_in_bytes
          - a.alias_size_in_bytes)


def build(name, batch_size, dtype, runlocal):
  bench = prepare(name, batch_size, dtype, runlocal)
  compiled = compile_for(bench, batch_size)
  batch = sharding.global_batch(host_batch(bench.config, batch_size), bench.mesh)
  return bench.config, bench.method, bench.mesh, compiled, bench.state, batch


def memory_bytes(compiled, devices):
  stats = devices[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"], "peak in use"
  analysis = compiled.memory_analysis()
  total = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes
  return total, "XLA estimate"


def images_per_second(compiled, state, batch, warmup, steps):
  """Mean img/s of `steps` steps after `warmup` steps (`state` is donated: not reusable)."""
  for _ in range(warmup):
    state, step_metrics = compiled(state, batch)
  jax.block_until_ready(step_metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, step_metrics = compiled(state, batch)
  jax.block_until_ready(step_metrics)
  return steps * len(batch["label"]) / (time.perf_counter() - start)


def summary(config, method, mesh, compiled, rate):
  """The numbers of one measured model (a JSON-ready dict)."""
  devices = list(mesh.devices.flat)
  per_example = method.flops_per_example(config)
  achieved, utilisation = flops.mfu(rate, per_example, devices)
  memory, how = memory_bytes(compiled, devices)
  return {"variant": config.model.variant, "image_size": config.input.image_size,
          "batch": config.input.batch_size, "dtype": config.model.dtype,
          "img_per_s": rate, "gflop_per_img": per_example / 1e9, "tflop_per_s": achieved,
          "mfu": utilisation, "memory_gib": memory / 2**30, "memory_kind": how}


def describe(name, r):
  mfu_text = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (no peak for this device)"
  return (f"{name:<12} {r['variant']:<9} {r['image_size']}px batch {r['batch']} {r['dtype']}: "
          f"{r['img_per_s']:.1f} img/s, {r['gflop_per_img']:.1f} GFLOP/img, "
          f"{r['tflop_per_s']:.3g} TFLOP/s, MFU {mfu_text}, memory {r['memory_gib']:.2f} GiB "
          f"({r['memory_kind']})")


def measure(name, args):
  config, method, mesh, compiled, state, batch = build(name, args.batch, args.dtype,
                                                       args.runlocal)
  rate = images_per_second(compiled, state, batch, args.warmup, args.steps)
  result = summary(config, method, mesh, compiled, rate)
  print(describe(name, result), flush=True)
  return result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--dtype", default="bfloat16", choices=sections.MODEL_DTYPES)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--runlocal", action="store_true", help="the configs' tiny variants")
  args = parser.parse_args()
  devices = jax.devices()
  print(f"{len(devices)} x {devices[0].device_kind} ({jax.default_backend()}), peak bf16 "
        f"{flops.peak_tflops(devices[0].device_kind) or 'unknown'} TFLOP/s per device")
  for name in args.models.split(","):
    measure(name, args)


if __name__ == "__main__":
  main()
