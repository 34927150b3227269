"""The scripts in scripts/ run end to end and are reproducible from their seed."""
import functools
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
        assert (config.evals.knn.max_train_examples, config.evals.knn.max_test_examples) == (
            10000, 2000)  # the monitor on a subset: the study's number is the probe's
        seen.add((config.mae.mask_ratio, config.mae.target, config.mae.encoder_mask_tokens,
                  config.aug.crop, tuple(config.aug.crop_scale), config.aug.color_jitter_prob,
                  config.mae.decoder_depth, config.mae.decoder_width, config.seed))
      else:
        assert config.protocol == stage and config.init_from.endswith("pretrain")
        run_types.for_config(config).validate(config)
      assert workdir.startswith(os.path.join(str(tmp_path), row.name))
  assert len(seen) == 18  # every run trains something different
  assert {r.name for r in study.rows() if r.table == "mask_ratio"} >= {"mask_10", "mask_95"}


def _fake_row(root, name, lin=None, ft=None, flops=1e9, seconds=0.5, steps=300):
  os.makedirs(os.path.join(root, name), exist_ok=True)
  record = {"name": name, "flops_per_example": flops, "seconds_per_step": seconds,
            "linear_probe": lin, "finetune": ft, "steps": steps}
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
  _fake_row(root, "mask_25", lin=0.41)
  _fake_row(root, "base_seed1", lin=0.43)
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


def test_a_row_recorded_in_the_kept_folder_is_not_run_again_on_a_new_machine(tmp_path, capsys):
  study = _mae_ablations()
  row, kept, root = study.unique_runs()["mask_25"], str(tmp_path / "kept"), str(tmp_path / "w")
  _fake_row(kept, "mask_25", lin=0.41, steps=300)  # committed by an earlier session
  study.run_row(row, root, 300, finetune=False, dry_run=True, records_dir=kept)
  assert "recorded in" in capsys.readouterr().out and not os.path.exists(root)
  for steps, finetune in ((500, False), (300, True)):  # another budget; a result it lacks
    study.run_row(row, root, steps, finetune=finetune, dry_run=True, records_dir=kept)
    assert f"--config.total_steps={steps}" in capsys.readouterr().out
  table, plot = study.write_tables(kept)
  assert "| 25% | 41.0 |" in open(table, encoding="utf-8").read() and plot.startswith(kept)


def _paradigms():
  import paradigms  # pylint: disable=g-import-not-at-top
  return paradigms


def test_paradigm_commands_are_valid_configs_at_one_budget(tmp_path):
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  from ssljax.run import run_types  # pylint: disable=g-import-not-at-top
  study = _paradigms()
  trained = {}
  for row in study.rows():
    stages, budget = study.commands(row, str(tmp_path), 3)
    assert [s for s, _, _ in stages] == ["pretrain"] * bool(row.method) + ["knn", "linear_probe"]
    for stage, workdir, argv in stages:
      assert workdir == os.path.join(str(tmp_path), row.name, stage)
      config = study.study_runs.config_of(argv)
      run_types.for_config(config).validate(config)
      if stage == "pretrain":
        images = config.total_steps * config.input.batch_size
        assert config.total_epochs is None and 3 * 50000 - 3 * config.input.batch_size < images
        assert images <= 3 * 50000 and config.seed == row.seed
        assert config.evals.knn.every_steps == config.total_steps == budget["steps"]
        assert not config.evals.knn.random_init_baseline and config.method in config
        loaded = loading.load(argv[3].removeprefix("--config="))
        for field in (a[9:-5] for a in argv if a.endswith("=None")):
          # ml_collections (the CLI) cannot override a field that is None already
          assert functools.reduce(lambda node, key: node[key], field.split("."), loaded) is not None
        trained[row.name] = (config.method, config.model.variant, config.model.get("resnet_width"))
      else:
        assert config.protocol == stage and config.baseline == row.baseline
        if row.encoder != "-":  # the pixel-space floors have no encoder feature
          assert config.probe.feature == ("cls" if row.encoder == study.VIT else "backbone")
        assert config.init_from == (os.path.join(str(tmp_path), row.name, "pretrain")
                                    if row.method else "")
  assert trained["mae"][:2] == ("mae", "Ti/4")
  resnets = {v for n, v in trained.items() if not n.startswith("mae")}
  assert resnets == {(m, "resnet18", 16) for m, _, _ in resnets}  # one narrow encoder
  assert {m for m, _, _ in trained.values()} == {
      "mae", "simsiam", "simclr", "moco", "byol", "swav", "npid", "denoising",
      "context_encoder", "colorization", "rotation", "relative_position"}
  assert {n for n in trained if n.endswith("_seed1")} == {"mae_seed1", "simsiam_seed1",
                                                           "rotation_seed1"}
  # a recipe's warm-up keeps its fraction of the run: MAE's 20 of 400 epochs
  assert study.commands(study.rows_by_name()["mae"], str(tmp_path), 40)[1]["warmup_steps"] == 194


def test_paradigms_table_is_grouped_as_the_lecture(tmp_path):
  study = _paradigms()
  root = str(tmp_path)
  for name, record in (("pca", {"knn": 0.4161, "linear_probe": 0.409}),
                       ("mae", {"epochs": 2, "steps": 194, "batch_size": 512, "knn": 0.25,
                                "linear_probe": 0.5, "wall_s": {"pretrain": 1500.0}})):
    os.makedirs(os.path.join(root, name))
    study.study_runs.write_record(root, name, dict(record, name=name))
  text = study.tables(root, study.epochs_per_row(2, "rotation=4"))
  titles = [t for _, t in study.GROUPS]
  assert [text.index(f"| **{t}** |") for t in titles] == sorted(
      text.index(f"| **{t}** |") for t in titles)
  assert "| PCA (256 components) | - | - | - | - | 41.6 | 40.9 |" in text
  assert "| random patches: MAE | ViT-Ti/4 | 99,328 (2) | 194 x 512 | 25.0 | 25.0 | 50.0 |" in text
  assert ("| (t) rotation prediction | ResNet-18, width 16 | 199,680 (4) | 1,560 x 128 | - | "
          "not run yet | not run yet |") in text
  lecture_order = ["pixels (the", "PCA", "k-means", "rotation prediction", "denoising",
                   "colorization", "context encoder", "MAE |", "NPID", "SimCLR", "SwAV",
                   "SimSiam |", "BYOL"]
  assert [text.index(c) for c in lecture_order] == sorted(text.index(c) for c in lecture_order)
  assert text.count("```bash") == len(study.rows())
  assert "python -m ssljax.main --config=configs/probe_cifar10.py:cpu,protocol=knn," \
         "recipe=mae,baseline=pca --workdir=" in text
  assert study.plot(root, str(tmp_path / "p.png")) and (tmp_path / "p.png").stat().st_size > 0


def test_paradigms_skip_finished_runs_and_record_them(tmp_path, capsys, monkeypatch):
  study = _paradigms()
  root = str(tmp_path)
  rotation = study.rows_by_name()["rotation"]
  (_, pre, _), (_, knn_dir, _), (_, probe_dir, _) = study.commands(rotation, root, 1)[0]
  os.makedirs(os.path.join(pre, "checkpoints", "390"))
  study.run_row(rotation, root, 1, dry_run=True)
  out = capsys.readouterr().out
  assert "[rotation] pretrain: finished, skipped" in out and f"--workdir={knn_dir}" in out
  study.run_row(rotation, root, 2, dry_run=True)  # a longer budget trains on
  assert "--config.total_steps=780" in capsys.readouterr().out
  for workdir, record in ((knn_dir, {"value": 0.5, "all": {"knn/top1_k200_t0.1": 0.375}}),
                          (probe_dir, {"value": 0.625})):
    os.makedirs(workdir)
    with open(os.path.join(workdir, "results.json"), "w", encoding="utf-8") as f:
      json.dump(record, f)
  with open(os.path.join(pre, "metrics.jsonl"), "w", encoding="utf-8") as f:
    f.write('{"step": 1, "img_per_s": 64.0}\n')
  monkeypatch.setattr(study.study_runs.subprocess, "run", lambda *a, **k: pytest.fail("ran"))
  study.run_row(rotation, root, 1, dry_run=False)
  record = study.study_runs.read_records(root, ["rotation"])["rotation"]
  assert (record["knn"], record["linear_probe"], record["steps"]) == (0.375, 0.625, 390)
  assert record["seconds_per_step"] == 2.0 and record["wall_s"] == {}
  fresh = str(tmp_path / "new_machine")  # its workdirs are gone; the kept record is not
  study.run_row(rotation, fresh, 1, dry_run=True, records_dir=root)
  assert "recorded in" in capsys.readouterr().out
  study.run_row(rotation, fresh, 2, dry_run=True, records_dir=root)
  assert f"--workdir={os.path.join(fresh, 'rotation', 'pretrain')}" in capsys.readouterr().out
