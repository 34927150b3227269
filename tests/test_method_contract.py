"""The method contract (`ssljax.methods.contract`): every registered method conforms, a misspelt
hook or a wrong signature is caught, hooks a module leaves out get their defaults, and no method
is named in code outside `ssljax/methods/`."""
import ast
import os
import types

import jax
import numpy as np
import pytest

from conftest import REPO, load_config
from ssljax import methods
from ssljax.run import pretrain
from ssljax.runtime import sharding
from ssljax.methods import contract


@pytest.mark.parametrize("name", methods.KNOWN)
def test_every_registered_method_conforms(name):
  module = methods.module(name)
  assert contract.problems(module) == []
  method = methods.get(name)
  assert method.name == name
  for field in contract.REQUIRED:
    assert getattr(method, field) is getattr(module, field)
  for attr, field in contract.HOOKS.items():  # what the module defines is what is bound
    if hasattr(module, attr) and not attr.isupper():
      assert getattr(method, field) is getattr(module, attr)


def _fake_method(**functions):
  module = types.ModuleType("ssljax.methods.fake")
  for name, fn in dict(init=lambda config, rng, image_shape: {},
                       loss=lambda config, params, state, batch, rng: 0.0,
                       encode=lambda config, variables, images: {}, **functions).items():
    fn.__module__ = module.__name__
    setattr(module, name, fn)
  return module


def test_a_misspelt_hook_fails_the_contract():
  module = _fake_method(after_updates=lambda config, params, model_state, step, total: None)
  assert any("after_updates looks like the hook 'after_update' misspelt" in p
             for p in contract.problems(module))
  with pytest.raises(TypeError, match="after_updates"):
    contract.bind("fake", module)
  module = _fake_method(valdiate=lambda config: None)
  assert any("'validate'" in p for p in contract.problems(module))


def test_missing_functions_and_wrong_signatures_fail_the_contract():
  module = _fake_method(after_update=lambda config, params, model_state: None)
  del module.encode
  found = contract.problems(module)
  assert any("has no function encode" in p for p in found)
  assert any("after_update takes 3 positional arguments, the contract passes 5" in p
             for p in found)


def test_hooks_a_module_leaves_out_get_their_defaults():
  method = contract.bind("fake", _fake_method())
  params, state = {"w": 1}, {"s": 2}
  assert method.after_update(None, params, state, 0, 10) == (params, state)
  assert method.validate(None) is None and method.flops_per_example(None) == 0
  assert method.reconstruct is None and method.finetune_encoder is None
  assert method.torch_parts is None and method.sharded_state == ()
  assert method.fit_state is None
  assert methods.get("moco").sharded_state == ("queue",)


def test_fit_state_is_added_to_the_initial_state_of_a_pre_training_run(monkeypatch):
  """The hook sees the training split; what it returns is model state of the run's init."""
  mae = methods.module("mae")
  fit = lambda config, source: {"fitted": {"count": np.int32(len(source)),
                                           "first_label": np.int32(source[0]["label"])}}
  module = _fake_method(fit_state=fit)
  module.init, module.loss, module.encode = mae.init, mae.loss, mae.encode
  module.reconstruct = mae.reconstruct
  monkeypatch.setattr(pretrain.methods, "get", lambda name: contract.bind(name, module))
  config = load_config("demo", "runlocal")
  plan = pretrain.plan(config, sharding.make_mesh())
  params, model_state = jax.jit(plan.init)(jax.random.key(0))
  assert int(model_state["fitted"]["count"]) == len(plan.source)
  assert int(model_state["fitted"]["first_label"]) == plan.source[0]["label"]
  shapes = jax.eval_shape(lambda key: mae.init(config, key, (1, 32, 32, 3)), jax.random.key(0))
  assert set(params) == set(shapes["params"])


def _string_constants(path):
  with open(path, encoding="utf-8") as f:
    tree = ast.parse(f.read())
  return {node.value for node in ast.walk(tree)
          if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_method_is_named_in_code_outside_the_methods_package():
  package = os.path.join(REPO, "ssljax")
  offenders = []
  for folder, _, files in os.walk(package):
    if os.path.relpath(folder, package).split(os.sep)[0] == "methods":
      continue
    for file in files:
      if file.endswith(".py"):
        path = os.path.join(folder, file)
        named = _string_constants(path) & set(methods.KNOWN)
        offenders += [f"{os.path.relpath(path, REPO)}: {n!r}" for n in sorted(named)]
  assert offenders == []
