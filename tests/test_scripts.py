"""The scripts in scripts/ run end to end and are reproducible from their seed."""
import io
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from conftest import REPO, load_config

sys.path.insert(0, os.path.join(REPO, "scripts"))
import augmented_pairs  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.slow  # the script's CLI; its content is the default suite's test below
def test_augmented_pairs_writes_a_png_grid_with_a_row_per_image(tmp_path):
  out = tmp_path / "views.png"
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "augmented_pairs.py"),
       "--config=simsiam_cifar10:runlocal", f"--out={out}", "--num=3"],
      capture_output=True, text=True, timeout=300, env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  grid = np.asarray(Image.open(io.BytesIO(out.read_bytes())).convert("RGB"))
  assert grid.shape[0] >= grid.shape[1] > 100  # 3 rows x 3 columns of titled panels


def test_augmented_pairs_are_seeded_views_of_the_originals():
  config = load_config("simsiam_cifar10", "runlocal")
  panels = augmented_pairs.view_pairs(config, num_images=4, seed=0)
  again = augmented_pairs.view_pairs(config, num_images=4, seed=0)
  other = augmented_pairs.view_pairs(config, num_images=4, seed=1)
  for column in augmented_pairs.COLUMNS:
    assert panels[column].shape == (4, 32, 32, 3)
    assert 0 <= float(panels[column].min()) and float(panels[column].max()) <= 1
    np.testing.assert_array_equal(panels[column], again[column])
  assert np.abs(panels["view 1"] - panels["view 2"]).mean() > 0.02
  assert np.abs(panels["view 1"] - other["view 1"]).mean() > 0.02
