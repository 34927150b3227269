"""The package layout shows the architecture: entry points at the top, one package per layer,
and imports that only point down (runtime and config are called, they never call up)."""
import ast
import os

import pytest

from conftest import REPO

PACKAGE = os.path.join(REPO, "ssljax")
# package -> the ssljax packages its modules may import
ALLOWED = {
    "runtime": {"runtime", "config", "errors"},
    "config": {"config", "errors", "models"},
    "models": {"models", "errors"},
    "data": {"data", "errors", "runtime"},
    "methods": {"methods", "models", "data", "config", "errors"},
    "evals": {"evals", "methods", "models", "data", "config", "runtime", "errors"},
}


def _ssljax_imports(path):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  found = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ssljax"):
      parts = node.module.split(".")
      found |= {parts[1]} if len(parts) > 1 else {alias.name for alias in node.names}
    elif isinstance(node, ast.Import):
      found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("ssljax.")}
  return found


def test_the_top_level_holds_only_entry_points_and_packages():
  modules = {f for f in os.listdir(PACKAGE) if f.endswith(".py")}
  assert modules == {"__init__.py", "main.py", "report.py", "errors.py"}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_only_point_down(package):
  wrong = []
  for folder, _, files in os.walk(os.path.join(PACKAGE, package)):
    for file in (f for f in files if f.endswith(".py")):
      path = os.path.join(folder, file)
      for imported in _ssljax_imports(path) - ALLOWED[package]:
        wrong.append(f"{os.path.relpath(path, REPO)} imports ssljax.{imported}")
  assert wrong == []
