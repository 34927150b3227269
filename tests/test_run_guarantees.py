"""The run loop's guarantees, each tested once across every run type (pre-training, linear probe,
fine-tuning; kNN has no training step, so it takes part where a guarantee applies to it):
SIGTERM saves at the next step and exits 3 and the rerun resumes; SIGKILL at a random step and a
rerun give the uninterrupted curve bit for bit; a non-finite step is skipped and counted and too
many in a row stop the run naming the last good checkpoint; a finished run's rerun reports the
same results. The default suite runs each guarantee on the cheapest run types; the others carry
the `slow` marker (`.ci/run` runs both)."""
import dataclasses
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, load_config_with
from ssljax.run import loop, run_types
from ssljax.runtime import metrics

TRAINING = ("pretrain", "linear_probe", "finetune")


def _run_types(*default, evaluation_only=()):
  """Every run type as a test parameter: those in `default` in the default suite, the others
  behind the `slow` marker (one loop serves them all; CI runs both suites)."""
  return [t if t in default else pytest.param(t, marks=pytest.mark.slow)
          for t in TRAINING + evaluation_only]

# (config, overrides) per run type: TOTAL steps, evaluations only at the end, synchronous saves
# every 10 steps, every step logged. The probe augments on device (the papers' protocol), so
# its steps run the frozen encoder.
COMMANDS = {
    "pretrain": ("demo.py:runlocal", ["--config.evals.knn.every_steps=1000",
                                      "--config.evals.knn.random_init_baseline=false",
                                      "--config.evals.recon.every_steps=1000"]),
    "linear_probe": ("probe_demo.py:runlocal", ["--config.probe.augment=true",
                                                "--config.total_epochs=None",
                                                "--config.eval_every_steps=1000"]),
    "finetune": ("finetune_demo.py:runlocal", ["--config.eval_every_steps=1000"]),
}
TOTAL = 60


def _command(run_type, workdir, pretrained):
  config, overrides = COMMANDS[run_type]
  init_from = [] if run_type == "pretrain" else [f"--config.init_from={pretrained}"]
  return [sys.executable, "-m", "ssljax.main", f"--config=configs/{config}",
          f"--workdir={workdir}", f"--config.total_steps={TOTAL}", "--config.log_every_steps=1",
          "--config.checkpoint_every_steps=10", "--config.checkpoint_async=false",
          *init_from, *overrides]


def _env():
  return {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device


def _rows(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  return list(metrics.read_jsonl(path)) if os.path.isfile(path) else []


def _losses(workdir):
  """[(step, loss)] in the order metrics.jsonl has them (a resumed run repeats some steps)."""
  return [(r["step"], r["loss"]) for r in _rows(workdir) if "loss" in r]


def _saved(workdir):
  return sorted(int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit())


def _start_and_wait(command, workdir, step):
  """The running process once metrics.jsonl shows `step` (it is killed if it ends first)."""
  process = subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if max((s for s, _ in _losses(workdir)), default=0) >= step:
      return process
    time.sleep(0.02)
  process.kill()
  _, stderr = process.communicate()
  raise AssertionError(f"the run did not reach step {step}: {stderr[-2000:]}")


@pytest.mark.parametrize("run_type", _run_types("pretrain"))
def test_sigterm_saves_and_sigkill_resumes_bitwise(run_type, pretrained_workdir, tmp_path):
  command = lambda workdir: _command(run_type, workdir, pretrained_workdir)
  reference = subprocess.run(command(tmp_path / "reference"), cwd=REPO, env=_env(),
                             capture_output=True, text=True, timeout=600)
  assert reference.returncode == 0, reference.stderr[-2000:]
  expected = dict(_losses(tmp_path / "reference"))
  assert sorted(expected) == list(range(1, TOTAL + 1))

  # SIGTERM: the next step is saved (off the 10-step schedule), exit status 3, one line.
  workdir = tmp_path / "interrupted"
  process = _start_and_wait(command(workdir), workdir, 3)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 3, stderr[-2000:]
  saved = _saved(workdir)[-1]
  assert saved < TOTAL and f"preempted: saved step {saved} in" in stderr
  assert "Traceback" not in stderr
  assert max(s for s, _ in _losses(workdir)) == saved  # it stopped at the step it saved

  # The rerun resumes there; SIGKILL at a random later step loses at most one interval.
  kill_at = saved + random.Random(os.getpid()).randint(2, 25)
  process = _start_and_wait(command(workdir), workdir, kill_at)
  process.kill()
  process.wait()
  killed_at = max(s for s, _ in _losses(workdir))
  assert 0 <= killed_at - _saved(workdir)[-1] <= 10

  resumed = subprocess.run(command(workdir), cwd=REPO, env=_env(), capture_output=True,
                           text=True, timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f"finished step {TOTAL}/{TOTAL}" in resumed.stdout
  losses = _losses(workdir)
  assert sorted(dict(losses)) == list(range(1, TOTAL + 1))
  for step, loss in losses:  # before each stop, and the repeated steps after each resume
    assert loss == expected[step], (run_type, step, saved, kill_at)


def _poisoned(plan_fn, config, steps):
  """`plan_fn` whose plan's objective is NaN (loss and metric) at the 1-based `steps`."""
  bad_keys = jnp.stack([jax.random.key_data(jax.random.fold_in(jax.random.key(config.seed),
                                                                s - 1)) for s in steps])

  def plan(config_, mesh):
    clean = plan_fn(config_, mesh)

    def objective(params, model_state, frozen, batch, rng):
      value, (state, step_metrics) = clean.objective(params, model_state, frozen, batch, rng)
      hit = jnp.any(jnp.all(bad_keys == jax.random.key_data(rng), axis=-1))
      poison = lambda x: jnp.where(hit, jnp.nan, x)  # as a NaN in the batch would
      return poison(value), (state, dict(step_metrics, loss=poison(value)))

    return dataclasses.replace(clean, objective=objective)

  return plan


def _small_config(run_type, pretrained, **fields):
  name = {"pretrain": "demo", "linear_probe": "probe_demo", "finetune": "finetune_demo",
          "knn": "probe_demo"}[run_type]
  arg = "runlocal,protocol=knn" if run_type == "knn" else "runlocal"
  if run_type != "pretrain":
    fields["init_from"] = pretrained
  if run_type == "linear_probe" and "total_steps" in fields:
    fields["total_epochs"] = None
  return load_config_with(name, arg, **fields)


@pytest.mark.parametrize("run_type", _run_types("pretrain", "linear_probe"))
def test_nan_steps_are_skipped_and_counted_and_too_many_in_a_row_stop_the_run(
    run_type, pretrained_workdir, tmp_path, monkeypatch):
  config = _small_config(run_type, pretrained_workdir, total_steps=6, log_every_steps=1,
                         checkpoint_every_steps=1, max_consecutive_skips=1,
                         **({"evals": {}} if run_type == "pretrain" else {}))
  module = run_types.RUN_TYPES[run_type]
  clean_plan = module.plan
  # step 2 alone is skipped and the run goes on; steps 4 and 5 in a row exceed the limit
  monkeypatch.setattr(module, "plan", _poisoned(clean_plan, config, (2, 4, 5, 6)))
  # the fix names the rate the recipe sets (probe recipes give optim.lr, the others optim.blr)
  lr_field = {"pretrain": "optim.blr", "linear_probe": "optim.lr", "finetune": "optim.blr"}
  with pytest.raises(loop.TrainingDiverged, match=r"loss nan .* at step 5, 2 non-finite steps "
                     r"in a row .*max_consecutive_skips=1.*resumes from the last good "
                     rf"checkpoint, step 4: lower {lr_field[run_type]} "):
    run_types.run(config, str(tmp_path))
  records = {r["step"]: r for r in _rows(tmp_path) if "loss" in r}
  assert np.isnan(records[2]["loss"]) and records[2]["consecutive_skips"] == 1
  assert np.isfinite(records[3]["loss"]) and records[3]["consecutive_skips"] == 0
  assert records[3]["skipped_steps"] == 1 and records[4]["skipped_steps"] == 2
  # The restart (the fault gone) resumes from step 4, whose state is step 3's, and finishes.
  monkeypatch.setattr(module, "plan", clean_plan)
  summary = run_types.run(config, str(tmp_path))
  assert summary["step"] == 6 and np.isfinite(summary["final_loss"])
  losses = dict(_losses(tmp_path))
  assert [s for s in sorted(losses) if np.isfinite(losses[s])] == [1, 3, 5, 6]


@pytest.mark.parametrize("run_type", _run_types("pretrain", "linear_probe", "knn",
                                                evaluation_only=("knn",)))
def test_a_finished_runs_rerun_reports_the_same_results(run_type, pretrained_workdir, tmp_path):
  config = _small_config(run_type, pretrained_workdir)
  first = run_types.run(config, str(tmp_path))
  again = run_types.run(config, str(tmp_path))  # finds the run complete: evaluates, reports
  assert again["step"] == first["step"] and again["evals"] == first["evals"] and first["evals"]
  if run_type != "pretrain":
    strip = lambda record: {k: v for k, v in record.items() if k != "wall_time_s"}
    assert strip(again["record"]) == strip(first["record"])
