"""MAE reconstruction figure: original, masked input, reconstruction, visible pasted back."""
import io

import jax
import matplotlib
import numpy as np
from PIL import Image

from ssljax.runtime import sharding
from ssljax.data import sources
from ssljax.errors import ConfigError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

COLUMNS = ("original", "masked", "reconstruction", "pasted")


def figure(panels, titles=COLUMNS):
  """{column: float [N, H, W, C] in [0, 1]} -> uint8 [h, w, 3] image of an N x 4 grid."""
  n = len(panels[titles[0]])
  fig, axes = plt.subplots(n, len(titles), figsize=(1.6 * len(titles), 1.6 * n), squeeze=False)
  for row in range(n):
    for col, title in enumerate(titles):
      ax = axes[row, col]
      ax.imshow(np.clip(np.asarray(panels[title][row]), 0, 1), interpolation="nearest")
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(title, fontsize=8)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  return np.asarray(Image.open(buffer).convert("RGB"))


class ReconstructionEvaluator:
  """Reconstructs fixed held-out images with a fixed mask key; needs `method.reconstruct`."""

  def __init__(self, config, eval_config, method, mesh, every_steps):
    if method.reconstruct is None:
      raise ConfigError(f"evals.recon needs a method with `reconstruct`, which "
                        f"{config.method!r} has not: remove evals.recon from the config")
    self.every_steps = every_steps
    self.random_init_baseline = eval_config.get("random_init_baseline", False)
    source = sources.get_source(config.input, eval_config.split, "eval",
                                "evals.recon.split")
    images, _ = sources.labelled_arrays(source, eval_config.num_images, seed=1)
    self._images = sharding.from_full_host_copy(images, sharding.replicated(mesh))
    self._key = jax.random.key(eval_config.seed)
    self._reconstruct = jax.jit(
        lambda variables, images, key: method.reconstruct(config, variables, images, key),
        out_shardings=sharding.replicated(mesh))

  def run(self, variables, step):
    del step
    panels = jax.device_get(self._reconstruct(variables, self._images, self._key))
    return {}, {"mae_reconstruction": figure(panels)}
