"""Every notebook in notebooks/ runs top to bottom (nbclient, a fresh kernel) in its quick
mode (SSLJAX_NOTEBOOK_FAST=1: a few steps, all cells), and is committed without outputs."""
import glob
import os

import pytest

from conftest import REPO

nbformat = pytest.importorskip("nbformat", reason="the test extra (nbclient) is not installed")
nbclient = pytest.importorskip("nbclient", reason="the test extra (nbclient) is not installed")

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


def _execute(name, tmp_path, monkeypatch, **env):
  monkeypatch.setenv("SSLJAX_NOTEBOOK_FAST", "1")
  monkeypatch.setenv("SSLJAX_NOTEBOOK_WORKDIR", str(tmp_path))
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  notebook = nbformat.read(os.path.join(REPO, "notebooks", f"{name}.ipynb"), as_version=4)
  nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}}).execute()
  return "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)


def test_the_three_notebooks_are_there_and_committed_without_outputs():
  assert [os.path.basename(p) for p in NOTEBOOKS] == [
      "mae_visualize.ipynb", "quickstart.ipynb", "simsiam_collapse.ipynb"]
  for path in NOTEBOOKS:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code), path
    assert '"git", "clone", "-q", SSLJAX_REPO' in code[0].source  # installs ssljax on Colab


def test_quickstart_trains_evaluates_and_points_at_tensorboard(tmp_path, monkeypatch):
  text = _execute("quickstart", tmp_path, monkeypatch)
  assert "finished step 6, final loss" in text and "random_init/knn" in text
  assert "linear_probe on digits:train: top1" in text
  assert f"tensorboard --logdir {tmp_path}" in text
  assert os.path.isfile(tmp_path / "probe" / "results.json")


@pytest.mark.slow  # the same notebook from a PyTorch file is in the default suite
def test_mae_visualize_from_a_run_trained_in_the_notebook(tmp_path, monkeypatch):
  _execute("mae_visualize", tmp_path, monkeypatch)
  assert os.path.getsize(tmp_path / "mae_masking_ratios.png") > 10_000


@pytest.mark.slow  # the import it runs is tests/test_convert.py's; the quickstart notebook stays
def test_mae_visualize_from_a_pytorch_file(pretrained_workdir, tmp_path, monkeypatch):
  pytest.importorskip("torch", reason="the torch extra is not installed")
  from ssljax.convert import checkpoints  # pylint: disable=g-import-not-at-top
  pth = str(tmp_path / "mae.pth")
  checkpoints.export_checkpoint(pretrained_workdir, pth)
  text = _execute("mae_visualize", tmp_path, monkeypatch, SSLJAX_MAE_CHECKPOINT=pth,
                  SSLJAX_MAE_CONFIG="demo:runlocal", SSLJAX_MAE_NORM_PIX="1")
  assert "'random_init': []" in text and "MAE mu/4 at 32px" in text
  assert os.path.getsize(tmp_path / "mae_masking_ratios.png") > 10_000


@pytest.mark.slow  # two ResNet trainings; the other notebooks run in the default suite
def test_simsiam_collapse_trains_both_variants_and_plots(tmp_path, monkeypatch):
  text = _execute("simsiam_collapse", tmp_path, monkeypatch)
  assert "| stop-gradient (SimSiam) |" in text and "| no stop-gradient |" in text
  assert os.path.getsize(tmp_path / "simsiam_collapse.png") > 10_000
