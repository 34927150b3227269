"""launch/ scripts with stand-in `gcloud` and `srun` on PATH: the commands they print in
--dry-run, the ones they really run, and the restart after a preemption (exit status 3)."""
import os
import stat
import subprocess

from conftest import REPO

MAIN_FLAGS = ["--config=configs/mae_vitl.py", "--workdir=gs://bucket/mae_vitl"]


def _stand_in(bin_dir, name, log, statuses=None):
  """An executable `name` that appends its arguments to `log` (one line per call) and exits
  with the next status of `statuses` for calls that run ssljax.main (else 0; `describe` 1)."""
  script = bin_dir / name
  script.write_text(f"""#!/usr/bin/env bash
printf '%s\\n' "$*" >> {log}
case "$*" in
  *describe*) exit 1 ;;
  *ssljax.main*)
    n=$(grep -c ssljax.main {log})
    statuses=({' '.join(map(str, statuses or [0]))})
    exit ${{statuses[$((n - 1))]:-0}} ;;
esac
exit 0
""")
  script.chmod(script.stat().st_mode | stat.S_IEXEC)


def _launch(script, args, tmp_path, statuses=None, env=None):
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  log = tmp_path / "calls.log"
  for name in ("gcloud", "srun"):
    _stand_in(bin_dir, name, log, statuses)
  base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # only the test's own
  env = dict(base, PATH=f"{bin_dir}:{os.environ['PATH']}", **(env or {}))
  result = subprocess.run(["bash", os.path.join(REPO, "launch", script), *args],
                          capture_output=True, text=True, env=env, timeout=60)
  calls = log.read_text().splitlines() if log.exists() else []
  return result, calls


def test_tpu_dry_run_prints_every_command_and_runs_none(tmp_path):
  result, calls = _launch("tpu_vm.sh", ["--name=mae", "--zone=us-central2-b", "--type=v4-64",
                                        "--repo=https://example.com/ssljax.git", "--ref=v1",
                                        "--spot", "--dry-run", "--", *MAIN_FLAGS], tmp_path)
  assert result.returncode == 0, result.stderr
  assert calls == []
  printed = [l[2:] for l in result.stdout.splitlines() if l.startswith("+ ")]
  assert printed[0].startswith("gcloud compute tpus tpu-vm describe mae --zone=us-central2-b")
  assert printed[1] == ("gcloud compute tpus tpu-vm create mae --zone=us-central2-b "
                        "--accelerator-type=v4-64 --version=tpu-ubuntu2204-base --spot ")
  assert "--worker=all" in printed[2] and "git clone -q https://example.com/ssljax.git" in (
      printed[2].replace("\\", "")) and "checkout -q v1" in printed[2].replace("\\", "")
  assert printed[3].replace("\\", "").endswith(
      "--worker=all --command=cd ssljax && python -m ssljax.main "
      "--config=configs/mae_vitl.py --workdir=gs://bucket/mae_vitl  ")
  assert len(printed) == 4


def test_tpu_run_creates_installs_runs_on_all_workers_and_restarts_after_preemption(tmp_path):
  result, calls = _launch("tpu_vm.sh", ["--name=mae", "--zone=z", "--type=v4-8",
                                        "--repo=https://example.com/ssljax.git", "--",
                                        *MAIN_FLAGS], tmp_path, statuses=[3, 0])
  assert result.returncode == 0, result.stderr
  assert [c.split(" ")[3] for c in calls] == ["describe", "create", "ssh", "ssh", "ssh"]
  assert "preempted (attempt 0)" in result.stderr
  assert all("--worker=all" in c for c in calls[2:])
  result, calls = _launch("tpu_vm.sh", ["--name=mae", "--zone=z", "--delete"], tmp_path)
  assert calls[-1] == "compute tpus tpu-vm delete mae --zone=z --quiet"


def test_tpu_failures_pass_through_and_bad_options_are_one_line(tmp_path):
  result, _ = _launch("tpu_vm.sh", ["--name=mae", "--zone=z", "--type=v4-8", "--repo=r", "--",
                                    *MAIN_FLAGS], tmp_path, statuses=[2])
  assert result.returncode == 2  # bad input in ssljax: no restart
  result, _ = _launch("tpu_vm.sh", ["--zone=z"], tmp_path)
  assert result.returncode == 2 and result.stderr.strip() == (
      "tpu_vm.sh: --name and --zone are required")


def test_slurm_dry_run_and_run_with_a_restart(tmp_path):
  args = ["--nodes=2", "--gpus-per-node=4", "--partition=gpu", "--time=1:00:00", "--venv=/v"]
  result, calls = _launch("gpu_slurm.sh", [*args, "--dry-run", "--", *MAIN_FLAGS], tmp_path)
  assert result.returncode == 0 and calls == []
  exported, printed = result.stdout.strip().splitlines()
  assert exported == "+ export XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true"
  printed = printed.removeprefix("+ ").replace("\\", "")
  assert printed.startswith("srun --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 "
                            "--cpus-per-task=8 --kill-on-bad-exit=1 --partition=gpu "
                            "--time=1:00:00 bash -c cd ")
  assert ("source /v/bin/activate && exec python -m ssljax.main --config=configs/mae_vitl.py "
          "--workdir=gs://bucket/mae_vitl") in printed
  result, calls = _launch("gpu_slurm.sh", [*args, "--", *MAIN_FLAGS], tmp_path,
                          statuses=[3, 3, 0])
  assert result.returncode == 0 and len(calls) == 3 and all(c.startswith("--nodes=2")
                                                            for c in calls)


def test_slurm_adds_the_gpu_xla_flags_to_the_users_and_keeps_the_users_choice(tmp_path):
  args = ["--dry-run", "--", *MAIN_FLAGS]
  result, _ = _launch("gpu_slurm.sh", args, tmp_path,
                      env={"XLA_FLAGS": "--xla_dump_to=/tmp/d"})
  assert result.stdout.splitlines()[0] == ("+ export XLA_FLAGS=--xla_dump_to=/tmp/d\\ "
                                           "--xla_gpu_enable_latency_hiding_scheduler=true")
  result, _ = _launch("gpu_slurm.sh", args, tmp_path,
                      env={"XLA_FLAGS": "--xla_gpu_enable_latency_hiding_scheduler=false"})
  assert result.stdout.splitlines()[0] == (
      "+ export XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=false")
