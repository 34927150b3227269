"""ssljax.report: evaluation records -> one table row per encoder; pre-training -> curves."""
import json

from PIL import Image

from ssljax import report


def _record(run_dir, protocol, encoder, value, extra=None, metric_rows=()):
  run_dir.mkdir()
  record = {"protocol": protocol, "encoder": encoder, "value": value, "epochs": 1,
            "test_dataset": "npz:test", "wall_time_s": 3.0, **(extra or {})}
  (run_dir / "results.json").write_text(json.dumps(record))
  if metric_rows:
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in metric_rows))


def _plotted_panels(png_path):
  """How many panels curves.png has: they are 5 inches wide at 3.6 inches high."""
  with Image.open(png_path) as png:
    return round(png.size[0] / png.size[1] * 3.6 / 5)


def test_report_pivots_records_by_encoder_and_plots_pretraining_curves(tmp_path, capsys):
  knn_all = {"knn/top1_k20_t0.07": 0.41, "knn/top1_k200_t0.1": 0.43}
  _record(tmp_path / "mae_knn", "knn", "mae encoder of /w/checkpoints/9", 0.43,
          {"all": knn_all})
  _record(tmp_path / "mae_lin", "linear_probe", "mae encoder of /w/checkpoints/9", 0.5)
  _record(tmp_path / "pixels_lin", "linear_probe", "pixels", 0.38)
  _record(tmp_path / "mae_ft", "finetune", "mae encoder of /w/checkpoints/9", 0.7,
          metric_rows=[{"step": 5, "loss": 2.0}, {"step": 5, "finetune/top1": 0.6},
                       {"step": 10, "finetune/top1": 0.7}])
  # the same protocol on the same encoder under two recipes: a row each, not one overwritten
  _record(tmp_path / "random_ft_ld065", "finetune", "mae encoder at random init", 0.2)
  _record(tmp_path / "random_ft_ld1", "finetune", "mae encoder at random init", 0.3)
  pretraining = tmp_path / "mae_pretrain"
  pretraining.mkdir()
  rows = [{"step": s, "loss": 1.0 / s, "prediction_std": 0.04} for s in (1, 2, 3)]
  rows.append({"step": 3, "knn/top1_k20_t0.07": 0.3})
  (pretraining / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")

  out = tmp_path / "report"
  assert report.main([str(p) for p in sorted(tmp_path.iterdir())] + [f"--out={out}"]) == 0
  table = capsys.readouterr().out.strip().splitlines()
  assert table[2] == "| mae /w/checkpoints/9 | 0.410 | 0.430 | 0.500 | 0.700 |"
  assert table[3] == "| pixels | - | - | 0.380 | - |"
  assert table[4] == "| mae (random init) | - | - | - | 0.200 |"
  assert table[5] == "| mae (random init) (random_ft_ld1) | - | - | - | 0.300 |"
  assert (out / "report.md").read_text().startswith("\n".join(table))
  # loss, kNN and collapse monitors of the pre-training, and the fine-tuning run's top-1
  assert _plotted_panels(out / "curves.png") == 4


def test_report_of_evaluation_runs_alone_plots_their_finetuning_curves(tmp_path):
  rows = [{"step": 5, "finetune/top1": 0.4}, {"step": 10, "finetune/top1": 0.5}]
  _record(tmp_path / "ft", "finetune", "mae encoder of /w/checkpoints/9", 0.5, metric_rows=rows)
  _record(tmp_path / "lin", "linear_probe", "mae encoder of /w/checkpoints/9", 0.4,
          metric_rows=[{"step": 1, "loss": 1.0}])  # a probe's loss is no pre-training curve
  assert report.main([str(tmp_path / "ft"), str(tmp_path / "lin"),
                      f"--out={tmp_path / 'out'}"]) == 0
  assert _plotted_panels(tmp_path / "out" / "curves.png") == 1


def test_report_leaves_out_the_collapse_panel_for_runs_without_monitors(tmp_path):
  pretraining = tmp_path / "mae_pretrain"
  pretraining.mkdir()
  rows = [{"step": s, "loss": 1.0 / s} for s in (1, 2)] + [{"step": 2, "knn/top1_k20_t0.07": 0.3}]
  (pretraining / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
  assert report.main([str(pretraining), f"--out={tmp_path / 'out'}"]) == 0
  assert _plotted_panels(tmp_path / "out" / "curves.png") == 2  # loss and kNN


def test_report_without_runs_is_an_error(tmp_path, capsys):
  assert report.main([str(tmp_path), f"--out={tmp_path / 'out'}"]) == 2
  assert "no results.json" in capsys.readouterr().err


def test_damaged_records_and_partial_lines_are_skipped_and_out_must_be_a_directory(
    tmp_path, capsys):
  _record(tmp_path / "good", "linear_probe", "pixels", 0.38)
  for name, text in [("empty", ""), ("broken", '{"protocol": "kn'), ("keyless", '{"a": 1}'),
                     ("no_number", json.dumps({"protocol": "knn", "encoder": "pixels",
                                               "value": None, "test_dataset": "x",
                                               "wall_time_s": 1}))]:
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(text)
  killed = tmp_path / "killed_pretrain"  # a kill mid-write leaves half a line at the end
  killed.mkdir()
  (killed / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
  runs = [str(p) for p in sorted(tmp_path.iterdir())]
  assert report.main(runs + [f"--out={tmp_path / 'out'}"]) == 0
  captured = capsys.readouterr()
  assert captured.out.strip().splitlines()[2] == "| pixels | - | - | 0.380 | - |"
  warnings = captured.err.strip().splitlines()
  assert len(warnings) == 4 and all(w.startswith("ssljax.report: skipping ") for w in warnings)
  assert "no_number/results.json: value None is not a number" in captured.err
  (tmp_path / "a_file").write_text("")
  assert report.main(runs + [f"--out={tmp_path / 'a_file'}"]) == 2
  assert "--out=" in capsys.readouterr().err


def test_a_resumed_runs_repeated_steps_appear_once_with_the_resumed_values(tmp_path):
  from ssljax.runtime import metrics  # pylint: disable=g-import-not-at-top
  writer = metrics.Writer(str(tmp_path), enabled=True)
  for step in (0, 1, 2, 3, 4):  # killed after step 4; the last checkpoint was step 2
    writer.scalars(step, {"knn": 0.1} if step == 0 else {"loss": 10.0 - step})
  writer.close()
  with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
    f.write('{"step": 5, "lo')  # the kill's partial line
  writer = metrics.Writer(str(tmp_path), enabled=True)
  writer.scalars(0, {"knn": 0.1})  # the baseline, evaluated again at every start
  writer.resumed(2)
  for step in (3, 4, 5):
    writer.scalars(step, {"loss": 20.0 - step})
  writer.close()
  rows = metrics.read_jsonl(str(tmp_path / "metrics.jsonl"))
  assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4, 3, 4, 5]  # all kept
  assert metrics.curve(rows) == [{"step": 0, "knn": 0.1}, {"step": 1, "loss": 9.0},
                                 {"step": 2, "loss": 8.0}, {"step": 3, "loss": 17.0},
                                 {"step": 4, "loss": 16.0}, {"step": 5, "loss": 15.0}]


def test_a_full_disk_while_writing_metrics_is_one_line_naming_the_file(tmp_path):
  import errno  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  from ssljax.errors import UserError  # pylint: disable=g-import-not-at-top
  from ssljax.runtime import metrics  # pylint: disable=g-import-not-at-top

  class FullDisk:
    def write(self, text):
      raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
      pass

    def close(self):
      raise OSError(errno.ENOSPC, "No space left on device")

  writer = metrics.Writer(str(tmp_path), enabled=True)
  writer._jsonl = FullDisk()  # pylint: disable=protected-access
  with pytest.raises(UserError, match=r"writing .*metrics.jsonl failed \(No space left on "
                     r"device\): free space .* rerun, which resumes from the last checkpoint"):
    writer.scalars(1, {"loss": 1.0})
  writer.close()  # the failed file's close is logged, not raised over the error above
