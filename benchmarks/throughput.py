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

import jax
import numpy as np

from ssljax import methods
from ssljax.run import optim, pretrain
from ssljax.run.state import TrainState
from ssljax.config import loading, sections
from ssljax.models import flops
from ssljax.runtime import sharding

MODELS = ("mae_vitb", "mae_vitl", "simsiam_r50")


def build(name, batch_size, dtype, runlocal):
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
  variables = dict(method.init(config, jax.random.key(0), (1, size, size, 3)))
  params = variables.pop("params")
  state = TrainState.create(params, tx.init(params), variables)
  state = jax.device_put(state, sharding.replicated(mesh))
  host_batch = {"label": np.zeros(batch_size, np.int32)}
  if config.input.source in ("tfds", "image_folder"):  # decoded files arrive as canvases
    side = config.input.canvas_size
    host_batch["extent"] = np.tile(np.asarray([[375, 500]], np.int32), (batch_size, 1))
  else:
    side = size
  host_batch["image"] = np.random.default_rng(0).integers(0, 256, (batch_size, side, side, 3),
                                                          np.uint8)
  batch = sharding.global_batch(host_batch, mesh)
  step = jax.jit(pretrain.make_train_step(config, method, tx, lr, 10**6), donate_argnums=(0,))
  compiled = step.lower(state, batch).compile()
  return config, method, mesh, compiled, state, batch


def memory_bytes(compiled, devices):
  stats = devices[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"], "peak in use"
  analysis = compiled.memory_analysis()
  total = analysis.argument_size_in_bytes + analysis.temp_size_in_bytes
  return total, "XLA estimate"


def measure(name, args):
  config, method, mesh, compiled, state, batch = build(name, args.batch, args.dtype,
                                                       args.runlocal)
  for _ in range(args.warmup):
    state, step_metrics = compiled(state, batch)
  jax.block_until_ready(step_metrics)
  start = time.perf_counter()
  for _ in range(args.steps):
    state, step_metrics = compiled(state, batch)
  jax.block_until_ready(step_metrics)
  rate = args.steps * args.batch / (time.perf_counter() - start)
  devices = list(mesh.devices.flat)
  per_example = method.flops_per_example(config)
  achieved, utilisation = flops.mfu(rate, per_example, devices)
  memory, how = memory_bytes(compiled, devices)
  spec = config.model.variant
  mfu_text = f"{utilisation:.1%}" if utilisation is not None else "n/a (no peak for this device)"
  print(f"{name:<12} {spec:<9} {config.input.image_size}px batch {args.batch} {args.dtype}: "
        f"{rate:.1f} img/s, {per_example / 1e9:.1f} GFLOP/img, {achieved:.3g} TFLOP/s, "
        f"MFU {mfu_text}, memory {memory / 2**30:.2f} GiB ({how})", flush=True)


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
