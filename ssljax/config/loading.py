"""Loading configs: "file.py:arg" argument parsing, loading a recipe file by name, setting and
comparing fields.

Configs are `ml_collections.ConfigDict`s from `get_config(arg)`; `arg` is the text after the
colon of `--config=configs/x.py:runlocal,batch=64` and is parsed by `parse_arg`.
"""
import importlib.util
import os

import ml_collections

from ssljax.errors import ConfigError

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")


_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def parse_arg(arg, **defaults):
  """"runlocal,size=B/16" -> ConfigDict(runlocal=True, size="B/16", **other defaults).

  Flags are `name` (True) or `name=value`; values are cast to the type of their default.
  Unknown names are an error.
  """
  result = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    name, _, value = item.partition("=")
    if name not in result:
      raise ConfigError(f"config argument {name!r} is unknown: use one of "
                        f"{', '.join(sorted(result)) or '(none)'}")
    default = result[name]
    if not value:
      value = True
    elif isinstance(default, bool):
      if value.lower() not in _BOOLEANS:
        raise ConfigError(f"config argument {item} is not true or false: write {name} (true), "
                          f"{name}=true or {name}=false")
      value = _BOOLEANS[value.lower()]
    elif default is not None:
      try:
        value = type(default)(value)
      except ValueError:
        kind = {int: "an integer", float: "a number"}.get(type(default), type(default).__name__)
        raise ConfigError(f"config argument {item} is not {kind}: write e.g. "
                          f"{name}={default!r}") from None
    result[name] = value
  return ml_collections.ConfigDict(result)


# field -> (the field that, when set, makes it unused; what to do instead)
SHADOWED_FIELDS = {
    "optim.blr": ("optim.lr", "override --config.optim.lr instead, or unset it with "
                  "--config.optim.lr=None to scale optim.blr by the batch size"),
}


def check_overrides_are_used(config, overridden):
  """A ConfigError when a command-line override sets a field the run ignores (`optim.blr`
  where the recipe sets `optim.lr`): it would be silently without effect."""
  for field in overridden:
    shadow = SHADOWED_FIELDS.get(field)
    if shadow is None or field.split(".")[0] not in config:
      continue
    *sections, key = shadow[0].split(".")
    node = config
    for section in sections:
      node = node.get(section) or {}
    if node.get(key) is not None and shadow[0] not in overridden:
      raise ConfigError(f"--config.{field} has no effect: this config sets {shadow[0]}="
                        f"{node.get(key)}, which takes precedence; {shadow[1]}")


def set_field(config, path, value):
  """Sets the field at dotted `path` ("input.batch_size") of `config`; unknown names raise."""
  *sections, key = path.split(".")
  node = config
  for section in sections:
    node = node[section]
  if key not in node:
    raise AttributeError(f"'{key}'")
  node[key] = value


def load(spec):
  """"simsiam_cifar10:cpu" or "path/to/x.py:arg" -> the locked config of that file.

  A bare name is looked up in the repository's `configs/` directory.
  """
  path, _, arg = spec.partition(":")
  if not path.endswith(".py"):
    path = os.path.join(CONFIGS_DIR, path + ".py")
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} does not exist: pass an existing configs/*.py")
  module_spec = importlib.util.spec_from_file_location(
      os.path.splitext(os.path.basename(path))[0], path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


def changed_fields(before, after, prefix=""):
  """["model.width: 64 -> 32", ...] for the leaves that differ between two config dicts."""
  changes = []
  for key in sorted(set(before) | set(after)):
    old, new = before.get(key), after.get(key)
    if isinstance(old, dict) and isinstance(new, dict):
      changes += changed_fields(old, new, f"{prefix}{key}.")
    elif isinstance(old, dict) or isinstance(new, dict):
      if old != new:
        changes.append(f"{prefix}{key}: {'added' if old is None else 'removed'}")
    elif old != new:
      changes.append(f"{prefix}{key}: {old!r} -> {new!r}")
  return changes
