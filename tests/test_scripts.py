"""The scripts in scripts/ run end to end and are reproducible from their seed."""
import io
import json
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


def _mae_ablations():
  import mae_ablations  # pylint: disable=g-import-not-at-top
  return mae_ablations


def test_mae_ablation_commands_are_valid_configs(tmp_path):
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  study = _mae_ablations()
  runs = study.unique_runs()
  assert len(runs) == 18 and list(runs)[0] == "base"
  seen = set()
  for row in runs.values():
    for stage, workdir, argv in study.commands(row, str(tmp_path), 300, finetune=True):
      config = study.config_of(argv)
      if stage == "pretrain":
        run_types.for_config(config).validate(config)
        assert config.total_steps == 300 and config.seed == row.seed
        seen.add((config.mae.mask_ratio, config.mae.target, config.mae.encoder_mask_tokens,
                  config.aug.crop, tuple(config.aug.crop_scale), config.aug.color_jitter_prob,
                  config.mae.decoder_depth, config.mae.decoder_width, config.seed))
      else:
        assert config.protocol == stage and config.init_from.endswith("pretrain")
        run_types.for_config(config).validate(config)
      assert workdir.startswith(os.path.join(str(tmp_path), row.name))
  assert len(seen) == 18  # every run trains something different
  assert {r.name for r in study.rows() if r.table == "mask_ratio"} >= {"mask_10", "mask_95"}


def _fake_row(root, name, lin=None, ft=None, flops=1e9, seconds=0.5):
  os.makedirs(os.path.join(root, name), exist_ok=True)
  record = {"name": name, "flops_per_example": flops, "seconds_per_step": seconds,
            "linear_probe": lin, "finetune": ft}
  with open(os.path.join(root, name, "row.json"), "w", encoding="utf-8") as f:
    json.dump(record, f)


def test_mae_ablation_tables_from_finished_rows(tmp_path):
  study = _mae_ablations()
  root = str(tmp_path)
  _fake_row(root, "base", lin=0.4512, ft=0.8, flops=2e9)
  _fake_row(root, "mask_tokens", lin=0.3, flops=5.7e9, seconds=1.25)
  text = study.tables(root)
  assert "| encoder w/ [M] | 30.0 | - | 2.85x | 1.250 | 84.2 | 59.6 |" in text
  assert "| encoder w/o [M] | 45.1 | 80.0 | 1.00x | 0.500 | 84.9 | 73.5 |" in text
  assert "| PCA | not run yet | - | - | - | 84.6 | 72.3 |" in text
  assert text.count("### ") == len(study.TABLES)
  probe = tmp_path / "mask_25" / "linear_probe"
  probe.mkdir(parents=True)
  (probe / "results.json").write_text('{"value": 0.41}')
  assert study.plot_mask_ratio(root, str(tmp_path / "m.png")) and (tmp_path / "m.png").exists()


def test_mae_ablation_skips_finished_runs(tmp_path, capsys):
  study = _mae_ablations()
  row = study.unique_runs()["aug_none"]
  (tmp_path / "aug_none" / "pretrain" / "checkpoints" / "300").mkdir(parents=True)
  (tmp_path / "aug_none" / "pretrain" / "checkpoints" / "200").mkdir(parents=True)
  study.run_row(row, str(tmp_path), 300, finetune=False, dry_run=True)
  out = capsys.readouterr().out
  assert "pretrain: finished, skipped" in out and "--workdir=" + str(
      tmp_path / "aug_none" / "linear_probe") in out
  study.run_row(row, str(tmp_path), 400, finetune=False, dry_run=True)  # a longer budget
  assert "--config.total_steps=400" in capsys.readouterr().out
