"""The largest batch whose train step fits in device memory, from compiled memory estimates.

A step's memory is close to affine in the batch: a fixed part (the train state, gradients,
workspace) plus a per-example part (activations, the batch). One compile gives a first guess
(everything but the state counted per example, which over-counts and so guesses low); each
further compile at the guess refits the line through the last two points. Nothing is run:
`compiled.memory_analysis()` answers without allocating, so a search never hits
RESOURCE_EXHAUSTED (the caller confirms the answer by running it).
"""
import time

import jax

import throughput


def next_batch(points, limit_bytes, fixed_bytes, multiple, cap):
  """The batch predicted to fill `limit_bytes`, a multiple of `multiple` in [multiple, cap].

  points: [(batch, estimated bytes)] compiled so far; fixed_bytes: the batch-independent part
  assumed when there is one point (the train state)."""
  if len(points) == 1:
    (b0, m0), = points
    intercept, slope = fixed_bytes, max(m0 - fixed_bytes, 1) / b0
  else:
    (b0, m0), (b1, m1) = points[-2:]
    slope = max(m1 - m0, 1) / (b1 - b0) if b1 != b0 else max(m1 - fixed_bytes, 1) / b1
    intercept = m1 - slope * b1
  batch = int((limit_bytes - intercept) / slope) // multiple * multiple
  return max(multiple, min(cap, batch))


def largest_batch(bench, limit_bytes, start, cap, multiple, seconds, max_compiles=4):
  """(batch, compiled step, [(batch, bytes)] tried): the largest batch among those compiled
  whose estimate is within `limit_bytes`, compiling at most `max_compiles` times and starting
  no compile after `seconds`. Raises ValueError when none fits."""
  began = time.perf_counter()
  fixed = sum(x.nbytes for x in jax.tree.leaves(bench.state))
  points, best, batch = [], None, min(start, cap)
  while batch not in [b for b, _ in points]:
    compiled = throughput.compile_for(bench, batch)
    points.append((batch, throughput.estimated_bytes(compiled)))
    if points[-1][1] <= limit_bytes and (best is None or batch > best[0]):
      best = (batch, compiled)
    if len(points) == max_compiles or time.perf_counter() - began > seconds:
      break
    batch = next_batch(points, limit_bytes, fixed, multiple, cap)
    if best is not None and batch <= best[0]:
      break  # the line says nothing larger fits
  if best is None:
    raise ValueError(f"no batch fits in {limit_bytes / 2**30:.1f} GiB; tried {points}")
  return best[0], best[1], points
