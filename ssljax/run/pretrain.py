"""Pre-training run type: `config.method`'s loss on the training split (`ssljax.methods`),
with the method's optional hooks, the online probe, and `config.evals` as evaluators.

  python -m ssljax.main --config=configs/demo.py --workdir=/tmp/demo
"""
import jax
import jax.numpy as jnp

from ssljax import evals as evals_lib, methods
from ssljax.config import durations, validation
from ssljax.data import pipeline, sources
from ssljax.run import online_probe, optim, step as step_lib
from ssljax.run.plan import Plan

NAME = "pre-training"


def validate(config):
  validation.validate(config)
  methods.get(config.method).validate(config)


def objective(config, method):
  """(params, model_state, frozen, batch, rng) -> (loss, (model_state, metrics)): the method's
  loss, plus the online probe's cross-entropy when it is enabled."""
  loss = (online_probe.wrap_loss(config, method) if online_probe.enabled(config)
          else method.loss)
  return lambda params, model_state, frozen, batch, rng: loss(config, params, model_state,
                                                              batch, rng)


def after_update(config, method, total_steps):
  return lambda params, model_state, step: method.after_update(config, params, model_state,
                                                               step, total_steps)


def optimizer(config, batch_size, schedule):
  """(tx, learning_rate) of `config.optim`, with the online probe's own Adam if enabled."""
  tx, learning_rate = optim.make(config.optim, batch_size, schedule.total_steps,
                                 schedule.warmup_steps, schedule.steps_per_epoch)
  if online_probe.enabled(config):
    tx = online_probe.wrap_optimizer(config, tx)
  return tx, learning_rate


def plan(config, mesh):
  method = methods.get(config.method)
  batch_size = config.input.batch_size
  source = sources.get_source(config.input, config.input.split)
  if online_probe.enabled(config):
    sources.require_labels(source, "the online probe (online_probe.enabled)")
  schedule = durations.schedule(config, len(source))
  tx, learning_rate = optimizer(config, batch_size, schedule)
  image_shape = (1, config.input.image_size, config.input.image_size, 3)
  fitted = method.fit_state(config, source) if method.fit_state else {}

  def init(rng):
    variables = dict(method.init(config, rng, image_shape))
    variables.update(jax.tree.map(jnp.asarray, fitted))
    if online_probe.enabled(config):
      variables = online_probe.init(config, method, variables, image_shape)
    params = variables.pop("params")
    return params, variables

  return Plan(
      name=NAME, source=source, batch_size=batch_size, schedule=schedule,
      data=pipeline.from_config(source, config),
      init=init, objective=objective(config, method), tx=tx, learning_rate=learning_rate,
      after_update=after_update(config, method, schedule.total_steps),
      evaluators=evals_lib.build(config, method, mesh, schedule.steps_per_epoch),
      sharded_state=method.sharded_state,
      flops_per_example=method.flops_per_example(config),
      description=f"method {config.method}")


def make_train_step(config, method, tx, learning_rate, total_steps):
  """(state, batch) -> (state, metrics): one pre-training step of `method` (a
  `methods.get(...)`), outside the loop (benchmarks, tests of a method's update)."""
  train_step = step_lib.make_train_step(objective(config, method), tx, learning_rate,
                                        config.seed, after_update(config, method, total_steps),
                                        config.grad_accum_steps)
  return lambda state, batch: train_step(state, (), batch)

