"""gs:// workdirs (`runtime.storage`): every file a run writes lands in the bucket, none locally.

There is no network here, so `gs://` is served by a filesystem that speaks fsspec's API (the
one gcsfs implements, and the one etils.epath calls) and keeps the buckets in a local
directory; orbax's TensorStore writes go to the same directory. A run that bypassed the
abstraction would write `./gs:/bucket/...` in the working directory, which is checked empty.
"""
import glob
import importlib
import json
import os

import fsspec
from fsspec.implementations.local import LocalFileSystem
import pytest

from conftest import load_config
from ssljax.errors import UserError
from ssljax.methods import mae
from ssljax.run import loop, run_types
from ssljax.runtime import metrics, storage, workdir_lock


@pytest.fixture
def fake_gcs(tmp_path, monkeypatch):
  """gs://BUCKET/PATH served from tmp_path/gcs/BUCKET/PATH; returns that root."""
  from etils.epath import backend  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint._src.path import gcs_utils  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint._src.serialization import tensorstore_utils  # pylint: disable=g-import-not-at-top
  root = tmp_path / "gcs"
  root.mkdir()

  def local(path):
    path = os.fspath(path)
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        return str(root / path[len(prefix):]).rstrip("/")
    return path

  class BucketsInADirectory(LocalFileSystem):
    protocol = ("gs", "gcs")

    def __init__(self, *args, finalize_on_close=False, **kwargs):
      del finalize_on_close  # gcsfs's option, which epath passes
      super().__init__(*args, auto_mkdir=True, **kwargs)  # objects need no directories

    @classmethod
    def _strip_protocol(cls, path):
      return super()._strip_protocol(local(path))

    def glob(self, path, **kwargs):  # as gcsfs: "bucket/key", without the protocol
      return [os.path.relpath(p, root) for p in super().glob(path, **kwargs)]

  registry = importlib.import_module("fsspec.registry")._registry
  for name in ("gs", "gcs"):
    monkeypatch.setitem(registry, name, BucketsInADirectory)
  backend.fsspec_backend._get_filesystem.cache_clear()
  monkeypatch.setattr(tensorstore_utils, "_normalize_path",
                      lambda path: os.path.normpath(local(path)))
  # what orbax asks google-cloud-storage about a real bucket, and that client itself
  monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
  monkeypatch.setitem(storage.BACKENDS, "gs", ("gcs", ("gcsfs",)))
  monkeypatch.setattr(workdir_lock, "REMOTE_SETTLE_S", 0.0)
  yield root
  backend.fsspec_backend._get_filesystem.cache_clear()


def _files(directory):
  return sorted(os.path.relpath(p, directory) for p in glob.glob(f"{directory}/**",
                                                                  recursive=True)
                if os.path.isfile(p))


def test_a_gs_workdir_holds_every_file_of_the_run_and_nothing_is_written_locally(
    fake_gcs, tmp_path, monkeypatch):
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  config = load_config("demo", "runlocal")  # 6 steps, checkpoints at 3 and 6, recon figures
  with config.unlocked():
    config.profile.steps, config.profile.after_steps = 2, 1
  summary = run_types.run(config, "gs://bucket/run")
  run = fake_gcs / "bucket" / "run"
  files = _files(run)
  assert summary["workdir"] == "gs://bucket/run"
  records = metrics.read_jsonl("gs://bucket/run/metrics.jsonl")
  assert sorted({r["step"] for r in records if "loss" in r}) == [1, 2, 3, 4, 5, 6]
  assert any("learning_rate" in r and "grad_norm" in r for r in records)
  # achieved model TFLOP/s = img/s x the method's analytic FLOPs (no MFU: CPUs have no peak)
  rated = [r for r in records if "img_per_s" in r]
  assert rated and all(r["tflops_per_s"] == pytest.approx(
      r["img_per_s"] * mae.flops_per_example(config) / 1e12) and "mfu" not in r for r in rated)
  assert 0.0 <= summary["evals"]["knn/top1_k20_t0.07"] <= 1.0
  assert {f.split("/")[1] for f in files if f.startswith("checkpoints/")} >= {"3", "6"}
  events = [f for f in files if f.startswith("tensorboard/events.out.tfevents")]
  assert len(events) == 1
  tags = {value.tag for event in event_file_loader.EventFileLoader(str(run / events[0])).Load()
          for value in event.summary.value}
  assert {"loss", "mae_reconstruction", "knn/top1_k20_t0.07"} <= tags
  assert summary["figures"] and all(f.startswith("gs://bucket/run/figures/") and
                                    os.path.getsize(run / f[len("gs://bucket/run/"):]) > 1000
                                    for f in summary["figures"])
  assert any(f.startswith("tensorboard/plugins/profile/") and f.endswith(".xplane.pb")
             for f in files)
  assert not [f for f in files if ".ssljax-lock" in f or ".write_test" in f]
  assert os.listdir(cwd) == []

  # an evaluation of that checkpoint into another gs:// workdir, and a rerun that resumes
  probe = load_config("probe_demo", "runlocal,protocol=knn")
  with probe.unlocked():
    probe.init_from = "gs://bucket/run"
  record = run_types.run(probe, "gs://bucket/knn")["record"]
  saved = json.loads((fake_gcs / "bucket" / "knn" / "results.json").read_text())
  assert saved["value"] == record["value"] and 0 <= saved["value"] <= 1
  assert run_types.run(config, "gs://bucket/run")["final_loss"] is None  # already finished
  assert os.listdir(cwd) == []


def test_a_missing_object_store_backend_is_one_line_naming_the_extra(tmp_path, monkeypatch):
  def not_installed(protocol):
    raise ImportError("Install gcsfs to access Google Storage")
  monkeypatch.setattr(fsspec, "get_filesystem_class", not_installed)
  monkeypatch.chdir(tmp_path)
  with pytest.raises(UserError) as error:
    loop.check_writable("gs://bucket/run1")
  assert str(error.value) == ("gs://bucket/run1 needs gcsfs, which is not installed: pip install "
                              "'ssljax[gcs]' (launch/tpu_vm.sh installs it)")
  with pytest.raises(UserError, match=r"ftp:// is not a supported workdir"):
    storage.path("ftp://host/run")
  assert os.listdir(tmp_path) == []


def test_appending_to_an_object_rewrites_it_whole_at_most_every_interval(fake_gcs, monkeypatch):
  clock = [100.0]
  monkeypatch.setattr(storage.time, "monotonic", lambda: clock[0])
  location = "gs://bucket/run/metrics.jsonl"
  on_disk = fake_gcs / "bucket" / "run" / "metrics.jsonl"
  f = storage.AppendFile(location)
  f.write('{"step": 1}\n')
  f.flush()
  assert not on_disk.exists()  # within the interval: kept in memory
  clock[0] += storage.REMOTE_FLUSH_S
  f.flush()
  assert on_disk.read_text() == '{"step": 1}\n'
  f.write('{"step": 2')  # a record cut short, as a kill mid-write leaves it
  f.close()
  again = storage.AppendFile(location)  # a resumed run appends to what is there
  assert not again.ends_with_newline()
  again.write('\n{"step": 3}\n')
  again.flush(force=True)
  assert [r["step"] for r in metrics.read_jsonl(location)] == [1, 3]


def test_a_gs_workdir_lock_stops_a_second_run_and_is_taken_over_when_stale(fake_gcs, caplog):
  path = storage.path(workdir_lock.lock_path("gs://bucket/run", 0))
  path.parent.mkdir(parents=True)
  other = {"host": "other-host", "pid": 4242, "started": "2026-12-01 10:00:00"}
  path.write_text(json.dumps(dict(other, heartbeat=workdir_lock.time.time())))
  with pytest.raises(UserError, match=r"in use by another run \(pid 4242 on host other-host"):
    with workdir_lock.held("gs://bucket/run"):
      pass
  path.write_text(json.dumps(dict(other, heartbeat=workdir_lock.time.time() - 600)))
  with workdir_lock.held("gs://bucket/run"):
    assert json.loads(path.read_text())["pid"] == os.getpid()
  assert "its heartbeat stopped" in caplog.text
  assert not path.exists()
