"""The method contract: what a method module must define, the optional hooks and their defaults,
in one place.

A method is a module of pure functions (`ssljax/methods/<name>.py`). `bind(name, module)` reads
it into a `Method`, filling every hook the module leaves out with its default, so callers
(the run loop, evaluators, `convert`) never test for attributes. `problems(module)` lists what
breaks the contract: a missing required function, a signature that does not match, or a
public name that looks like a misspelt hook (`after_updates`, `valdiate`), which would
otherwise be silently ignored. The conformance test runs it over every registered method.
"""
import dataclasses
import difflib
import inspect
import types
from typing import Callable, Optional, Protocol


class MethodModule(Protocol):
  """The functions every method module defines (positional arguments as named here)."""

  def init(self, config, rng, image_shape) -> dict:
    """-> variables {"params": ..., other collections (batch stats, EMA targets, queues)}."""

  def loss(self, config, params, state, batch, rng) -> tuple:
    """-> (loss, (new_state, metrics)); batch {"image": uint8 [B, H, W, 3], ...}."""

  def encode(self, config, variables, images) -> dict:
    """images float [B, H, W, 3] in [0, 255] -> {feature name: [B, D]} for evaluators."""


def _no_update(config, params, model_state, step, total_steps):
  del config, step, total_steps
  return params, model_state


def _no_validation(config):
  del config


def _no_flops(config):
  del config
  return 0


def _no_description(config):
  del config
  return ""


@dataclasses.dataclass(frozen=True)
class Method:
  """A bound method module: the required functions, and every optional hook or its default."""
  name: str
  init: Callable
  loss: Callable
  encode: Callable
  # (config, params, model_state, step, total_steps) -> (params, model_state), after the
  # optimizer's update: EMA targets, queues, re-normalised prototypes.
  after_update: Callable = _no_update
  # (config) -> None; raises ConfigError for values the method cannot run with.
  validate: Callable = _no_validation
  # (config) -> model FLOPs of one example's training step (logs TFLOP/s and MFU); 0: unknown.
  flops_per_example: Callable = _no_flops
  # (config, variables, images, rng) -> [B, 3, H, W, 3] panels for the reconstruction figure.
  reconstruct: Optional[Callable] = None
  # (config) -> the encoder fine-tuning takes: {"kind": "vit", "part", "vit": ViT spec} or
  # {"kind": "resnet", "part", "module": the ResNet}; its params (and batch stats) under `part`.
  finetune_encoder: Optional[Callable] = None
  # (config) -> [(part of params, "vit" | "resnet", required)]: parts with a PyTorch layout.
  torch_parts: Optional[Callable] = None
  # The key the official PyTorch files keep their weights under (MAE: "model"); None: top level.
  torch_wrapper_key: Optional[str] = None
  # (config) -> text added to the model's description in error messages.
  describe_model: Callable = _no_description
  # model_state leaves sharded over the batch axis rather than replicated (MoCo's queue).
  sharded_state: tuple = ()
  # (config, source) -> {collection: numpy pytree}: model state fitted on, or sized by, the
  # training split (a host-side data source), added to the initial variables. It is model state,
  # so it is checkpointed and a resumed run keeps the values it started with. Keep it cheap
  # (a bounded sample): a resumed run computes it again before the checkpoint replaces it.
  fit_state: Optional[Callable] = None


REQUIRED = ("init", "loss", "encode")
# Module attribute -> Method field, for the optional hooks (constants are upper case).
HOOKS = {"after_update": "after_update", "validate": "validate",
         "flops_per_example": "flops_per_example", "reconstruct": "reconstruct",
         "finetune_encoder": "finetune_encoder", "torch_parts": "torch_parts",
         "TORCH_WRAPPER_KEY": "torch_wrapper_key", "describe_model": "describe_model",
         "SHARDED_STATE": "sharded_state", "fit_state": "fit_state"}
# Positional parameters each function takes (extra ones must have defaults).
ARITY = {"init": 3, "loss": 5, "encode": 3, "after_update": 5, "validate": 1,
         "flops_per_example": 1, "reconstruct": 4, "finetune_encoder": 1, "torch_parts": 1,
         "describe_model": 1, "fit_state": 2}
# Other public names a method module may define that resemble a hook name.
NOT_HOOKS = frozenset({"default_config"})


def _required_positional(fn):
  return [p for p in inspect.signature(fn).parameters.values()
          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]


def _positional(fn):
  return [p for p in inspect.signature(fn).parameters.values()
          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _own_public_names(module):
  """Public functions defined in `module` and its upper-case constants."""
  names = []
  for name, value in vars(module).items():
    if name.startswith("_") or isinstance(value, types.ModuleType):
      continue
    if inspect.isfunction(value) and value.__module__ == module.__name__:
      names.append(name)
    elif name.isupper():
      names.append(name)
  return names


def problems(module):
  """What in `module` breaks the contract (empty when it conforms), one line each."""
  found = []
  for name in REQUIRED:
    if not callable(getattr(module, name, None)):
      found.append(f"{module.__name__} has no function {name}")
  for name, arity in ARITY.items():
    fn = getattr(module, name, None)
    if not callable(fn):
      continue
    if len(_required_positional(fn)) > arity or len(_positional(fn)) < arity:
      found.append(f"{module.__name__}.{name} takes {len(_positional(fn))} positional "
                   f"arguments, the contract passes {arity}")
  known = set(REQUIRED) | set(HOOKS) | NOT_HOOKS
  for name in _own_public_names(module):
    if name in known:
      continue
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    if close:
      found.append(f"{module.__name__}.{name} looks like the hook {close[0]!r} misspelt: "
                   f"rename it (the trainer would never call it)")
  return found


def bind(name, module):
  """The `Method` of `module`, its hooks or their defaults; a module that breaks the contract
  is a TypeError naming what is wrong."""
  issues = problems(module)
  if issues:
    raise TypeError("; ".join(issues))
  hooks = {field: getattr(module, attr) for attr, field in HOOKS.items() if hasattr(module, attr)}
  if "sharded_state" in hooks:
    hooks["sharded_state"] = tuple(hooks["sharded_state"])
  return Method(name=name, init=module.init, loss=module.loss, encode=module.encode, **hooks)

