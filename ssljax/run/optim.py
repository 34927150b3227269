"""Optimizers from config: learning-rate scaling and schedule, weight-decay masks.

The peak learning rate is `optim.blr * batch_size / 256` (the linear scaling rule of MAE and
SimSiam) unless `optim.lr` is given; the schedule is a linear warm-up from
`optim.warmup_init_lr` then cosine decay to `optim.min_lr`, or, with `optim.step_decay_epochs`,
the peak lr times `optim.step_decay_factor` at each of those epochs (MoCo v2's probe).
`optim.schedule_per_epoch` holds the lr at its value of the epoch's first step, as the
PyTorch releases that adjust it once per epoch do. Weight decay skips 1-D parameters (biases,
norms) unless `optim.decay_1d_params`, and names matching `optim.wd_exclude`.
"""
import functools
import re

import jax
import jax.numpy as jnp
import optax

from ssljax.errors import ConfigError


def peak_learning_rate(optim_config, batch_size):
  if optim_config.get("lr") is not None:
    return optim_config.lr
  return optim_config.blr * batch_size / 256


def schedule(optim_config, batch_size, total_steps, warmup_steps, steps_per_epoch=None):
  """step -> learning rate: linear warm-up from `warmup_init_lr`, then cosine to `min_lr` (or
  step decay at `step_decay_epochs`); constant within each epoch with `schedule_per_epoch`."""
  peak = peak_learning_rate(optim_config, batch_size)
  warmup_steps = min(warmup_steps, total_steps)
  init = optim_config.get("warmup_init_lr", 0.0)
  decay_epochs = tuple(optim_config.get("step_decay_epochs") or ())
  per_epoch = optim_config.get("schedule_per_epoch", False)
  if (decay_epochs or per_epoch) and not steps_per_epoch:
    raise ConfigError("optim.step_decay_epochs / optim.schedule_per_epoch need the steps per "
                      "epoch: pass steps_per_epoch to optim.make")
  if decay_epochs:
    factor = optim_config.get("step_decay_factor", 0.1)
    steps = optax.piecewise_constant_schedule(
        peak, {int(round(e * steps_per_epoch)): factor for e in decay_epochs})
    warmup = optax.linear_schedule(init, peak, max(warmup_steps, 1))
    lr = lambda step: jnp.where(step < warmup_steps, warmup(step), steps(step))
  else:
    lr = optax.warmup_cosine_decay_schedule(
        init, peak, warmup_steps, max(total_steps, warmup_steps + 1),
        end_value=optim_config.get("min_lr", 0.0))
  if per_epoch:
    return lambda step: lr(step // steps_per_epoch * steps_per_epoch)
  return lr


def path_name(path):
  """Key path of a params leaf as "encoder/blocks_0/attn/qkv/kernel"."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def weight_decay_mask(params, exclude_regex, decay_1d=False):
  """Pytree of bools: True where weight decay applies."""
  pattern = re.compile(exclude_regex) if exclude_regex else None
  return jax.tree_util.tree_map_with_path(
      lambda path, p: (decay_1d or p.ndim > 1) and not (
          pattern and pattern.search(path_name(path))), params)


def config_weight_decay_mask(optim_config, params):
  """`weight_decay_mask` of `config.optim` (`wd_exclude`, `decay_1d_params`); LARS also
  applies the trust ratio where it is True."""
  return weight_decay_mask(params, optim_config.get("wd_exclude"),
                           optim_config.get("decay_1d_params", False))


def param_groups(params, frozen_regex=None, fixed_lr_regex=None):
  """Pytree of labels: "frozen" (no update), "fixed_lr" (constant peak lr) or "scheduled"."""
  def label(path, _):
    name = path_name(path)
    if frozen_regex and re.search(frozen_regex, name):
      return "frozen"
    if fixed_lr_regex and re.search(fixed_lr_regex, name):
      return "fixed_lr"
    return "scheduled"
  return jax.tree_util.tree_map_with_path(label, params)


def _base_optimizer(optim_config, lr):
  mask = functools.partial(config_weight_decay_mask, optim_config)
  name = optim_config.name
  if name == "adamw":
    return optax.adamw(lr, b1=optim_config.b1, b2=optim_config.b2, eps=1e-8,
                       weight_decay=optim_config.weight_decay, mask=mask)
  if name == "sgd":
    return optax.chain(optax.add_decayed_weights(optim_config.weight_decay, mask),
                       optax.sgd(lr, momentum=optim_config.momentum,
                                 nesterov=optim_config.get("nesterov", False)))
  if name == "lars":  # the wd mask also says which parameters get the trust ratio
    if optim_config.get("lars_lr_after_momentum", False):
      # PyTorch's and Haiku's LARS: mu = m * mu + trust * (g + wd * w); w -= lr * mu
      return optax.chain(
          optax.add_decayed_weights(optim_config.weight_decay, mask),
          optax.masked(optax.scale_by_trust_ratio(trust_coefficient=0.001, eps=0.0), mask),
          optax.trace(decay=optim_config.momentum), optax.scale_by_learning_rate(lr))
    # optax's (and SimCLR's) LARS: mu = m * mu + lr * trust * (g + wd * w); w -= mu
    return optax.lars(lr, weight_decay=optim_config.weight_decay, weight_decay_mask=mask,
                      trust_coefficient=0.001, eps=0.0, trust_ratio_mask=mask,
                      momentum=optim_config.momentum)
  raise ConfigError(f"optim.name={name!r} is unknown: use 'adamw', 'sgd' or 'lars'")


def make(optim_config, batch_size, total_steps, warmup_steps, steps_per_epoch=None):
  """(optax transform, learning-rate schedule) from `config.optim`; `steps_per_epoch` is
  needed only by the per-epoch schedules.

  `optim.frozen_regex` names parameters that never move (e.g. SimSiam's predictor fixed at
  random init); `optim.fixed_lr_regex` names parameters trained at the constant peak lr
  (SimSiam's predictor by default).
  """
  lr = schedule(optim_config, batch_size, total_steps, warmup_steps, steps_per_epoch)
  tx = _base_optimizer(optim_config, lr)
  frozen, fixed = optim_config.get("frozen_regex"), optim_config.get("fixed_lr_regex")
  if frozen or fixed:
    tx = optax.multi_transform(
        {"scheduled": tx, "frozen": optax.set_to_zero(),
         "fixed_lr": _base_optimizer(optim_config, peak_learning_rate(optim_config,
                                                                      batch_size))},
        lambda params: param_groups(params, frozen, fixed))
  if optim_config.get("clip_norm"):
    tx = optax.chain(optax.clip_by_global_norm(optim_config.clip_norm), tx)
  return tx, lr
