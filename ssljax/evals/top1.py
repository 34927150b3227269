"""Test-split top-1 of a classifier (a linear probe's head, a fine-tuned model)."""
import jax
import numpy as np

from ssljax.evals import batched
from ssljax.runtime import sharding


class Top1Evaluator:
  """`{"top1": accuracy}` of `logits_fn(variables, inputs [B, ...]) -> [B, classes]` on fixed
  test inputs (images, or features cached from a frozen encoder)."""
  random_init_baseline = False

  def __init__(self, logits_fn, inputs, labels, batch_size, mesh, every_steps):
    self.every_steps = every_steps
    self._logits = jax.jit(logits_fn, out_shardings=sharding.replicated(mesh))
    self._inputs, self._labels = inputs, np.asarray(labels)
    self._batch_size, self._mesh = batch_size, mesh

  def run(self, variables, step):
    del step
    logits = batched.map_batches(self._logits, variables, self._inputs, self._batch_size,
                                 self._mesh)
    return {"top1": float(np.mean(np.argmax(logits, -1) == self._labels))}, {}
