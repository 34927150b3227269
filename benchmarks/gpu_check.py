"""The one-command accelerator check: ssljax's train steps at the largest batch that fits, a
PyTorch peer for the ratio, and the host input rate beside what the accelerator consumes.

  bash benchmarks/gpu_check.sh                      # one GPU: installs what is missing, < 8 min
  python benchmarks/gpu_check.py --out=check.json   # the same without the install step
  python benchmarks/gpu_check.py --cpu              # tiny sizes on the CPU, seconds (the tests)

Sections (each in its own process, under its own time limit, so that an OOM, a crash or a
missing package in one is written down as that section's error and the others still run):
  mae_vitb, mae_vitl  MAE ViT-B/16 and ViT-L/16, 224 px, bfloat16: the real jitted train step
                      (benchmarks/throughput.py) at the largest batch whose compiled memory
                      estimate fits in 90% of the device's memory (benchmarks/batch_search.py:
                      a few compiles, nothing run), then run at that batch (on
                      RESOURCE_EXHAUSTED: 15% smaller, twice at most)
  simsiam_r50         SimSiam ResNet-50, 224 px, bfloat16, at --simsiam-batch
  torch_mae           the PyTorch MAE of benchmarks/torch_mae.py at --torch-model's size and the
                      batch found for it, bf16 autocast, `torch.compile` where it works (else
                      eager, with the reason written down); on OOM, half the batch
  input               ssljax's training input (benchmarks/input_pipeline.py) on all host cores
Each JAX section gives img/s, achieved TFLOP/s, MFU and peak memory; the report adds the ratio
ssljax / PyTorch and the host cores the measured step rates need at the input's img/s per core.
One JSON file (--out) holds every section with the device, the date, the versions and the
batches tried; stdout gets a table. `--cpu`: the configs' runlocal variants at batch 8, an
eager float32 PyTorch peer, 72 JPEGs and one timed input batch.
"""
import argparse
import datetime
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SECTIONS = ("mae_vitb", "mae_vitl", "simsiam_r50", "torch_mae", "input")
JAX_SECTIONS = SECTIONS[:3]
# Seconds per section on one GPU: 450 in all, which leaves the install and start-up inside 8
# minutes. The MAE searches stop compiling new batches after half of theirs.
GPU_LIMITS = {"mae_vitb": 100, "mae_vitl": 130, "simsiam_r50": 60, "torch_mae": 110,
              "input": 50}
CPU_LIMIT = 300
CPU_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_llvm_disable_expensive_passes=true")
MEMORY_FRACTION = 0.9  # of the device's memory a searched batch may fill (XLA's estimate)


# ----------------------------------------------------------------- sections (child processes)

def jax_section(name, args):
  import jax  # pylint: disable=g-import-not-at-top
  import batch_search  # pylint: disable=g-import-not-at-top
  import throughput  # pylint: disable=g-import-not-at-top
  from ssljax.runtime import sharding  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  start, cap = ((args.simsiam_batch,) * 2 if name == "simsiam_r50"
                else (args.start_batch, args.max_batch))
  limit = (device.memory_stats() or {}).get("bytes_limit", args.memory_gib * 2**30)
  multiple = 8 * jax.device_count()
  tried = []
  for attempt in range(3):
    bench = throughput.prepare(name, start, "bfloat16", runlocal=args.cpu)
    batch, compiled, points = batch_search.largest_batch(
        bench, MEMORY_FRACTION * limit, start, cap, multiple, args.limit_s / 2)
    tried += points
    data = sharding.global_batch(throughput.host_batch(bench.config, batch), bench.mesh)
    try:
      rate = throughput.images_per_second(compiled, bench.state, data, args.warmup, args.steps)
      break
    except Exception as e:  # pylint: disable=broad-except
      if "RESOURCE_EXHAUSTED" not in str(e) or attempt == 2:
        raise
      tried.append((batch, "RESOURCE_EXHAUSTED when run"))
      start = cap = max(multiple, int(batch * 0.85) // multiple * multiple)
  with bench.config.unlocked():
    bench.config.input.batch_size = batch
  result = throughput.summary(bench.config, bench.method, bench.mesh, compiled, rate)
  return dict(result, batches_tried=tried, device_kind=device.device_kind,
              backend=jax.default_backend(), device_count=jax.device_count(),
              memory_limit_gib=limit / 2**30)


def torch_section(args):
  import torch  # pylint: disable=g-import-not-at-top
  import mae_step_vs_torch  # pylint: disable=g-import-not-at-top
  from ssljax.config import loading  # pylint: disable=g-import-not-at-top
  cuda = torch.cuda.is_available() and not args.cpu
  device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", None)
  config = loading.load(args.torch_model + (":runlocal" if args.cpu else ""))
  compile_note = "torch.compile not tried (--cpu)" if args.cpu else None
  batch = args.batch
  for _ in range(3):
    try:
      model = mae_step_vs_torch.torch_model(config).to(device)
      if compile_note is None:
        model.compile()
      step = mae_step_vs_torch.torch_step_fn(config, batch, model, device, dtype)
      try:
        for _ in range(args.warmup):
          step()
      except torch.cuda.OutOfMemoryError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        if compile_note is not None:
          raise
        compile_note = f"eager: torch.compile failed ({type(e).__name__}: {str(e)[:200]})"
        print(compile_note, file=sys.stderr, flush=True)
        continue
      rate = mae_step_vs_torch.images_per_second(step, args.steps, batch)
      break
    except torch.cuda.OutOfMemoryError:
      batch //= 2
      if cuda:
        torch.cuda.empty_cache()
  else:
    raise RuntimeError(f"no run of the PyTorch peer finished; last batch {batch}")
  peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
  return {"model": args.torch_model, "batch": batch, "img_per_s": rate, "device": device,
          "autocast": str(dtype), "compiled": compile_note is None,
          "compile_note": compile_note or "torch.compile", "memory_gib": peak,
          "torch": torch.__version__}


def input_section(args):
  import input_pipeline  # pylint: disable=g-import-not-at-top
  if not input_pipeline.jpeg_files(args.input_folder):
    input_pipeline.make_folder(args.input_folder, args.input_images)
  workers = args.input_workers or os.cpu_count()
  rate = input_pipeline.time_ssljax_train(args.input_folder, workers, 2, args.input_batches)
  return {"img_per_s": rate, "host_cores": os.cpu_count(), "workers": workers,
          "per_core": rate / os.cpu_count(), "batches": args.input_batches,
          "images": len(input_pipeline.jpeg_files(args.input_folder))}


def run_section(name, args):
  if name in JAX_SECTIONS:
    return jax_section(name, args)
  return torch_section(args) if name == "torch_mae" else input_section(args)


# ----------------------------------------------------------------- the driver

def child_env(name, cpu):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(HERE), env.get("PYTHONPATH"))
                                      if p)
  if cpu or name not in JAX_SECTIONS:  # only the JAX sections may hold the accelerator
    env["JAX_PLATFORMS"] = "cpu"
  if cpu:  # tiny steps: XLA's CPU compile, not the step, is the cost; this halves it
    env["XLA_FLAGS"] = " ".join((env.get("XLA_FLAGS", ""), *CPU_XLA_FLAGS)).strip()
  else:
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")
  return env


def run_child(name, argv, limit_s, cpu, extra=()):
  """One section in its own process -> its result dict, or {"error": why}."""
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "section.json")
    command = [sys.executable, os.path.abspath(__file__), *argv, *extra, f"--section={name}",
               f"--section-out={out}", f"--limit-s={limit_s}"]
    began = time.perf_counter()
    try:
      done = subprocess.run(command, capture_output=True, text=True, timeout=limit_s,
                            env=child_env(name, cpu))
    except subprocess.TimeoutExpired:
      return {"error": f"time limit of {limit_s} s reached"}
    seconds = time.perf_counter() - began
    if done.returncode or not os.path.exists(out):
      tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
      return {"error": f"exit {done.returncode}: " + " | ".join(tail), "seconds": seconds}
    with open(out) as f:
      return dict(json.load(f), seconds=seconds)


def version(package):
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def derived(sections):
  """The ratio ssljax / PyTorch at the peer's model, and the host cores each step rate needs."""
  out = {}
  peer = sections.get("torch_mae", {})
  ours = sections.get(peer.get("model"), {})
  if "img_per_s" in peer and "img_per_s" in ours:
    out["ratio_ssljax_over_torch"] = ours["img_per_s"] / peer["img_per_s"]
    out["ratio_batches"] = [ours["batch"], peer["batch"]]
  per_core = sections.get("input", {}).get("per_core")
  if per_core:
    out["host_cores_needed"] = {name: sections[name]["img_per_s"] / per_core
                                for name in JAX_SECTIONS
                                if "img_per_s" in sections.get(name, {})}
  return out


def table(report):
  fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(int(spec[0]))
  lines = [f"{report['device']} ({report['backend']}), {report['date']}, jax {report['jax']}, "
           f"torch {report['torch']}, {report['host_cores']} host cores",
           f"{'section':<12} {'batch':>6} {'img/s':>9} {'TFLOP/s':>8} {'MFU':>6} "
           f"{'mem GiB':>8}  note"]
  for name, r in report["sections"].items():
    if "error" in r:
      lines.append(f"{name:<12} {'':>6} {'failed':>9} {'':>8} {'':>6} {'':>8}  {r['error']}")
      continue
    mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "-"
    note = {"torch_mae": lambda: f"{r['model']}, {r['compile_note']}, autocast {r['autocast']}",
            "input": lambda: f"{r['per_core']:.0f} img/s per core, {r['workers']} workers"
            }.get(name, lambda: f"{r['variant']} {r['image_size']}px {r['dtype']}")()
    lines.append(f"{name:<12} {r.get('batch', '-'):>6} {r['img_per_s']:>9.1f} "
                 f"{fmt(r.get('tflop_per_s'), '8.3g')} {mfu:>6} "
                 f"{fmt(r.get('memory_gib'), '8.2f')}  {note}")
  d = report["derived"]
  if "ratio_ssljax_over_torch" in d:
    lines.append(f"ratio ssljax / PyTorch ({report['sections']['torch_mae']['model']}, batches "
                 f"{d['ratio_batches'][0]} / {d['ratio_batches'][1]}): "
                 f"{d['ratio_ssljax_over_torch']:.2f}")
  for name, cores in d.get("host_cores_needed", {}).items():
    lines.append(f"host cores to feed {name}: {cores:.1f}")
  return "\n".join(lines)


def drive(args, argv):
  limits = {name: CPU_LIMIT if args.cpu else GPU_LIMITS[name] for name in SECTIONS}
  sections = {}
  for name in args.sections.split(","):
    extra = ()
    if name == "torch_mae":
      found = sections.get(args.torch_model, {}).get("batch")
      extra = (f"--batch={found or args.start_batch}",)
    print(f"[{name}] up to {limits[name]} s ...", flush=True)
    sections[name] = run_child(name, argv, limits[name], args.cpu, extra)
  first = next((r for n, r in sections.items() if n in JAX_SECTIONS and "error" not in r), {})
  report = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "mode": "cpu" if args.cpu else "accelerator",
            "device": first.get("device_kind", "unknown (no JAX section finished)"),
            "backend": first.get("backend"), "device_count": first.get("device_count"),
            "host_cores": os.cpu_count(), "python": sys.version.split()[0],
            "jax": version("jax"), "jaxlib": version("jaxlib"), "flax": version("flax"),
            "torch": version("torch"), "sections": sections}
  report["derived"] = derived(sections)
  with open(args.out, "w") as f:
    json.dump(report, f, indent=1)
  print(table(report), flush=True)
  print(f"written to {os.path.abspath(args.out)}", flush=True)
  return report


def parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (the tests)")
  parser.add_argument("--out", default="gpu_check.json")
  parser.add_argument("--sections", default=",".join(SECTIONS))
  parser.add_argument("--start-batch", type=int, default=256, help="first batch compiled")
  parser.add_argument("--max-batch", type=int, default=8192)
  parser.add_argument("--simsiam-batch", type=int, default=256)
  parser.add_argument("--memory-gib", type=float, default=8.0,
                      help="device memory where the backend does not report it (CPU)")
  parser.add_argument("--torch-model", default="mae_vitl", choices=("mae_vitb", "mae_vitl"))
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--input-folder", default="/tmp/ssljax_imagenet_like")
  parser.add_argument("--input-images", type=int, default=512)
  parser.add_argument("--input-workers", type=int, default=0, help="0: the host's cores")
  parser.add_argument("--input-batches", type=int, default=48)
  # Set by the driver for its children:
  parser.add_argument("--section", help=argparse.SUPPRESS)
  parser.add_argument("--section-out", help=argparse.SUPPRESS)
  parser.add_argument("--limit-s", type=float, default=math.inf, help=argparse.SUPPRESS)
  parser.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.cpu:  # tiny everything unless set explicitly
    given = " ".join(argv)
    for field, value in (("start_batch", 8), ("max_batch", 8), ("simsiam_batch", 8),
                         ("steps", 1), ("warmup", 1), ("input_images", 72),
                         ("input_batches", 1), ("input_workers", 2)):
      if "--" + field.replace("_", "-") not in given:
        setattr(args, field, value)
  return args


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  args = parse(argv)
  if args.section:
    with open(args.section_out, "w") as f:
      json.dump(run_section(args.section, args), f)
    return None
  return drive(args, argv)


if __name__ == "__main__":
  main()
