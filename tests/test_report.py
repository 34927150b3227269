"""ssljax.report: evaluation records -> one table row per encoder; pre-training -> curves."""
import json

from PIL import Image

from ssljax import report


def _record(run_dir, protocol, encoder, value, extra=None):
  run_dir.mkdir()
  record = {"protocol": protocol, "encoder": encoder, "value": value, "epochs": 1,
            "test_dataset": "npz:test", "wall_time_s": 3.0, **(extra or {})}
  (run_dir / "results.json").write_text(json.dumps(record))


def test_report_pivots_records_by_encoder_and_plots_pretraining_curves(tmp_path, capsys):
  knn_all = {"knn_top1_k20_t0.07": 0.41, "knn_top1_k200_t0.1": 0.43}
  _record(tmp_path / "mae_knn", "knn", "mae encoder of /w/checkpoints/9", 0.43,
          {"all": knn_all})
  _record(tmp_path / "mae_lin", "linear_probe", "mae encoder of /w/checkpoints/9", 0.5)
  _record(tmp_path / "pixels_lin", "linear_probe", "pixels", 0.38)
  _record(tmp_path / "mae_ft", "finetune", "mae encoder of /w/checkpoints/9", 0.7)
  pretraining = tmp_path / "mae_pretrain"
  pretraining.mkdir()
  rows = [{"step": s, "loss": 1.0 / s, "prediction_std": 0.04} for s in (1, 2, 3)]
  rows.append({"step": 3, "knn/knn_top1_k20": 0.3})
  (pretraining / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

  out = tmp_path / "report"
  assert report.main([str(p) for p in sorted(tmp_path.iterdir())] + [f"--out={out}"]) == 0
  table = capsys.readouterr().out.strip().splitlines()
  assert table[2] == "| mae /w/checkpoints/9 | 0.410 | 0.430 | 0.500 | 0.700 |"
  assert table[3] == "| pixels | - | - | 0.380 | - |"
  assert (out / "report.md").read_text().startswith("\n".join(table))
  with Image.open(out / "curves.png") as png:
    assert png.size[0] > png.size[1] > 100


def test_report_without_runs_is_an_error(tmp_path, capsys):
  assert report.main([str(tmp_path), f"--out={tmp_path / 'out'}"]) == 2
  assert "no results.json" in capsys.readouterr().err
