"""Times the MAE train step of configs/mae_cifar10.py in ssljax (JAX) against PyTorch.

  python benchmarks/mae_step_vs_torch.py                  # ViT-Ti/4 encoder, 4x128 decoder
  python benchmarks/mae_step_vs_torch.py --batch=256 --rounds=5

Both sides run the same model (benchmarks/torch_mae.py is a PyTorch MAE written here with the
official layout), the same masking ratio, norm-pix loss and AdamW update, on the same random
uint8 batch. The JAX step is ssljax's real jitted train step, including its on-device
augmentation (random resized crop + flip), which the PyTorch side does not pay for: the ratio
is, if anything, tilted toward PyTorch. After warm-up the two alternate `--rounds` times,
`--steps` steps each, so machine noise hits both alike; the script prints median img/s of each
and the ratio JAX / PyTorch (> 1: ssljax is faster).
"""
import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # pylint: disable=g-import-not-at-top,wrong-import-position
import torch_mae  # pylint: disable=g-import-not-at-top,wrong-import-position

from ssljax.run import optim, pretrain  # pylint: disable=wrong-import-position
from ssljax.run.state import TrainState
from ssljax.config import loading
from ssljax import methods  # pylint: disable=wrong-import-position
from ssljax.methods import mae  # pylint: disable=wrong-import-position
from ssljax.models import vit  # pylint: disable=wrong-import-position


def load_config(variant):
  config = loading.load("mae_cifar10")
  if variant:
    with config.unlocked():
      config.model.variant = variant
  return config


def jax_step_fn(config, batch_size):
  """Returns step() running one jitted ssljax train step on a fixed batch."""
  params = mae.init(config, jax.random.key(0), (1, 32, 32, 3))["params"]
  tx, lr = optim.make(config.optim, batch_size, total_steps=10**6, warmup_steps=0)
  state = TrainState.create(params, tx.init(params), {})
  step = jax.jit(pretrain.make_train_step(config, methods.get("mae"), tx, lr, 10**6), donate_argnums=(0,))
  images = np.random.default_rng(0).integers(0, 256, (batch_size, 32, 32, 3), np.uint8)
  batch = {"image": jnp.asarray(images), "label": jnp.zeros((batch_size,), jnp.int32)}
  holder = [state]

  def run():
    holder[0], metrics = step(holder[0], batch)
    return float(metrics["loss"])
  return run


def torch_model(config):
  """The PyTorch MAE of `config`'s encoder and decoder sizes (on the CPU, float32)."""
  spec = vit.spec_from_config(config.model)
  return torch_mae.MaskedAutoencoderViT(
      img_size=config.input.image_size, patch_size=spec["patch_size"],
      embed_dim=spec["width"], depth=spec["depth"], num_heads=spec["num_heads"],
      decoder_embed_dim=config.mae.decoder_width, decoder_depth=config.mae.decoder_depth,
      decoder_num_heads=config.mae.decoder_heads, mlp_ratio=spec["mlp_dim"] / spec["width"],
      norm_pix_loss=mae.targets.name(config) == "norm_pixel")


def torch_step_fn(config, batch_size, model=None, device="cpu", autocast_dtype=None):
  """Returns step() running one PyTorch MAE update of `model` (default: `torch_model`) on a
  fixed batch on `device`."""
  model = torch_model(config) if model is None else model
  step = torch_mae.make_train_step(model, lr=1e-4, weight_decay=config.optim.weight_decay,
                                   betas=(config.optim.b1, config.optim.b2),
                                   mask_ratio=config.mae.mask_ratio,
                                   autocast_dtype=autocast_dtype)
  images = torch.randn(batch_size, 3, config.input.image_size, config.input.image_size,
                       device=device)
  return lambda: step(images)


def images_per_second(step, num_steps, batch_size):
  start = time.perf_counter()
  for _ in range(num_steps):
    loss = step()
  elapsed = time.perf_counter() - start
  assert np.isfinite(loss)
  return num_steps * batch_size / elapsed


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--variant", default=None, help="override model.variant, e.g. mu/4")
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  config = load_config(args.variant)
  steps = {"jax": jax_step_fn(config, args.batch), "torch": torch_step_fn(config, args.batch)}
  for step in steps.values():
    for _ in range(args.warmup):
      step()
  rates = {name: [] for name in steps}
  for _ in range(args.rounds):
    for name, step in steps.items():
      rates[name].append(images_per_second(step, args.steps, args.batch))
  median = {name: statistics.median(r) for name, r in rates.items()}
  spec = vit.spec_from_config(config.model)
  print(f"MAE train step, encoder {config.model.variant} (width {spec['width']}, depth "
        f"{spec['depth']}), decoder {config.mae.decoder_depth}x{config.mae.decoder_width}, "
        f"batch {args.batch}, {config.input.image_size}px, {jax.devices()[0].platform}, "
        f"{os.cpu_count()} cores, {args.rounds} rounds x {args.steps} steps")
  for name in steps:
    print(f"  {name:<6} {median[name]:8.1f} img/s  (rounds: "
          f"{', '.join(f'{r:.0f}' for r in rates[name])})")
  print(f"  ratio jax/torch {median['jax'] / median['torch']:.2f}")


if __name__ == "__main__":
  main()
