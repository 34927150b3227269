"""ssljax's CPU convolution kernel gradient vs XLA's native one, in a SimSiam ResNet step.

  python benchmarks/conv_grad_cpu.py [--config=simsiam_cifar10:cpu] [--batch=128]

Times the jitted loss gradient of the config's SimSiam model (two views, ResNet backbone,
heads) with `models.conv`'s per-tap kernel gradient and with XLA's native one (the per-tap
path switched off), alternating rounds after warm-up, and prints both img/s and the ratio.
"""
import argparse
import time

import jax
import numpy as np

from ssljax.config import loading
from ssljax.methods import simsiam
from ssljax.models import conv


def grad_fn(config, batch_size):
  """A jitted, compiled `step()` computing the SimSiam loss gradient on a fixed batch."""
  variables = simsiam.init(config, jax.random.key(0), (1, 32, 32, 3))
  state = {"batch_stats": variables["batch_stats"]}
  images = np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), np.uint8)
  batch = {"image": jax.numpy.asarray(images)}
  grad = jax.jit(jax.grad(lambda p: simsiam.loss(config, p, state, batch, jax.random.key(1))[0]))
  compiled = grad.lower(variables["params"]).compile()
  return lambda: jax.block_until_ready(compiled(variables["params"]))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="simsiam_cifar10:cpu")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--rounds", type=int, default=3)
  args = parser.parse_args()
  config = loading.load(args.config)
  threshold = conv.MIN_TAPS_OUTPUT_POSITIONS
  steps = {"per-tap": grad_fn(config, args.batch)}
  conv.MIN_TAPS_OUTPUT_POSITIONS = float("inf")  # trace the native gradient everywhere
  steps["native"] = grad_fn(config, args.batch)
  conv.MIN_TAPS_OUTPUT_POSITIONS = threshold
  times = {name: [] for name in steps}
  for step in steps.values():
    step()
  for _ in range(args.rounds):
    for name, step in steps.items():
      start = time.perf_counter()
      step()
      times[name].append(time.perf_counter() - start)
  rates = {name: args.batch / float(np.median(t)) for name, t in times.items()}
  print(f"{args.config}, batch {args.batch}, {jax.devices()[0].device_kind}, median of "
        f"{args.rounds} rounds")
  for name, rate in rates.items():
    print(f"  {name:8s} {rate:8.1f} img/s")
  print(f"  ratio per-tap/native {rates['per-tap'] / rates['native']:.2f}")


if __name__ == "__main__":
  main()
