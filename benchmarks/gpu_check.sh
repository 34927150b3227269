#!/usr/bin/env bash
# The one-command GPU check (benchmarks/gpu_check.py): from the repository root of a machine with
# one GPU,
#   bash benchmarks/gpu_check.sh [--out=gpu_check.json] [more gpu_check.py flags]
# prints a table and writes every number to one JSON file, in under 8 minutes once the packages
# are there (the sections take 450 s at most; installing torch when it is absent adds its
# download).
#
# Install without touching the CUDA build of JAX: the GPU image has jax/jaxlib with CUDA, flax,
# optax and orbax, and a plain `pip install -e .` could replace that jax with a CPU one. So the
# project goes in with `--no-deps`, then only setup.py's requirements that are missing (never
# jax or jaxlib), then torch from the `torch` extra if it does not import, all under a pip
# constraints file that pins every installed jax* and nvidia-* distribution at its version:
# pip refuses (and the section that needs the package reports it) rather than swap them.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
constraints="$(mktemp)"
"$PY" - > "$constraints" <<'PY'
import importlib.metadata as m
for d in m.distributions():
  name = (d.metadata["Name"] or "").lower()
  if name.startswith(("jax", "nvidia-")):
    print(f"{name}=={d.version}")
PY
"$PY" -m pip install -q --no-deps -e . || echo "gpu_check: installing ssljax failed" >&2
missing="$("$PY" - <<'PY'
import ast, importlib.metadata as m, re
setup = open("setup.py").read()
def listed(name):
  return ast.literal_eval(re.search(name + r" = (\[.*?\])", setup, re.S).group(1))
def absent(req):
  try:
    m.version(re.split(r"[<>=!~\[ ]", req)[0])
    return False
  except m.PackageNotFoundError:
    return True
reqs = [r for r in listed("INSTALL_REQUIRES") if not r.startswith(("jax>", "jax=", "jaxlib"))]
try:
  import torch  # noqa: F401
except Exception:
  reqs += [r for r in re.findall(r'"torch": \[(.*?)\]', setup)[0].replace('"', "").split(", ")]
print(" ".join(r for r in reqs if absent(r) or r.startswith("torch")))
PY
)"
if [ -n "$missing" ]; then
  echo "gpu_check: installing $missing (jax/jaxlib/nvidia-* pinned)"
  "$PY" -m pip install -q -c "$constraints" $missing \
    || echo "gpu_check: some of $missing did not install; their sections will say so" >&2
fi
rm -f "$constraints"
exec "$PY" benchmarks/gpu_check.py "$@"
