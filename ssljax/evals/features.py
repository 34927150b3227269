"""Feature extractors for evaluation: a pre-trained encoder, or a baseline through the same API.

`build(config, mesh)` returns a `Featurizer`: `fn(variables, images) -> float32 [B, D]` for
images float32 [B, H, W, 3] with values in [0, 255] (uint8 pixels, or augmented views of them),
its frozen `variables`, and a description for result records. What `config.init_from` and
`config.baseline` select:
  init_from=WORKDIR            the encoder of that pre-training checkpoint (`pretrained.load`)
  baseline="random_init"       the same architecture at random init (architecture from
                               init_from's checkpoint, else from `config.encoder_config`)
  baseline="pixels"            the normalised pixels, flattened  [B, H*W*3]
  baseline="pca"               pixels projected on their top `pca_dims` principal components of
                               the training split: the seed's simplest reconstructive method
  baseline="kmeans"            distances to k-means centroids of training patches or images
                               (`evals.kmeans`; `probe.kmeans_*`); the objective the fit
                               minimises goes into the Featurizer's `fit` (results.json)
"""
import dataclasses
import logging
from typing import Any, Callable

import jax
import numpy as np

from ssljax import methods
from ssljax.config import loading
from ssljax.runtime import pretrained, sharding
from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.evals import kmeans
from ssljax.models import pca

BASELINES = ("", "random_init", "pixels", "pca", "kmeans")
FITTED_BASELINES = ("pca", "kmeans")  # fitted on the training images


@dataclasses.dataclass
class Featurizer:
  fn: Callable[[Any, jax.Array], jax.Array]  # (variables, images [B, H, W, 3]) -> [B, D]
  variables: Any
  image_size: int
  description: str  # "mae ViT encoder of /path/checkpoints/400", "pixels", ...
  fit: dict = dataclasses.field(default_factory=dict)  # a fitted baseline's results.json fields


def _pixels(images, size):
  """float [B, H, W, 3] in [0, 255] -> [B, size*size*3] normalised pixels."""
  x = augment.eval_view(images, size)
  return x.reshape(x.shape[0], -1)


def _raw_pixels(images, size):
  """float [B, H, W, 3] in [0, 255] -> [B, size, size, 3], resized whole if need be."""
  if images.shape[1] == size:
    return images
  return jax.image.resize(images, (images.shape[0], size, size, images.shape[-1]), "linear")


def _kmeans(config, train_images, size, replicated):
  """The k-means Featurizer (`evals.kmeans`) fitted on `train_images` uint8 [N, H, W, 3]."""
  p = config.probe
  fit = dict(kmeans_input=p.kmeans_input, kmeans_k=p.kmeans_k)
  if p.kmeans_input == "patches":
    raw = np.asarray(jax.jit(lambda x: _raw_pixels(x, size))(train_images.astype(np.float32)))
    variables, objectives = kmeans.fit_patch_features(
        raw, p.kmeans_patch_size, p.kmeans_k, p.kmeans_fit_examples, p.kmeans_iterations,
        config.seed)
    fn = lambda v, images: kmeans.patch_features(_raw_pixels(images, size), p.kmeans_patch_size,
                                                 v)
    fit["kmeans_patch_size"] = p.kmeans_patch_size
  else:
    sample = train_images[np.random.default_rng(config.seed).permutation(len(train_images))[
        :p.kmeans_fit_examples]]
    flat = jax.jit(lambda x: _pixels(x, size))(sample.astype(np.float32))
    centroids, objectives = kmeans.fit(flat, p.kmeans_k, p.kmeans_iterations, config.seed)
    variables = {"centroids": np.asarray(centroids)}
    fn = lambda v, images: kmeans.triangle(_pixels(images, size), v["centroids"])
  objectives = [float(o) for o in objectives]
  logging.info("k-means (%s, k=%d): objective %.4g after %d iterations (%.4g at the start)",
               p.kmeans_input, p.kmeans_k, objectives[-1], len(objectives) - 1, objectives[0])
  fit.update(kmeans_objective=objectives[-1], kmeans_objectives=objectives)
  return Featurizer(fn, jax.device_put(variables, replicated), size,
                    f"kmeans{p.kmeans_k} {p.kmeans_input}", fit)


def build(config, mesh, train_images=None):
  """The Featurizer `config` asks for; `train_images` uint8 [N, H, W, 3] fit the PCA and
  k-means baselines."""
  baseline, feature = config.baseline, config.probe.feature
  if baseline not in BASELINES:
    raise ConfigError(f"baseline={baseline!r} is unknown: use one of "
                      f"{', '.join(repr(b) for b in BASELINES)}")
  replicated = sharding.replicated(mesh)
  size = config.input.image_size
  if baseline == "pixels":
    return Featurizer(lambda variables, images: _pixels(images, size), {}, size, "pixels")
  if baseline == "pca":
    if train_images is None:
      raise ValueError("the PCA baseline needs the training images")
    sample = train_images[np.random.default_rng(config.seed).permutation(len(train_images))[
        :config.probe.pca_fit_examples]]
    flat = np.asarray(jax.jit(lambda x: _pixels(x, size))(sample.astype(np.float32)))
    variables = jax.device_put(pca.fit(flat, config.probe.pca_dims), replicated)
    fn = lambda v, images: (_pixels(images, size) - v["mean"]) @ v["components"]
    return Featurizer(fn, variables, size, f"pca{config.probe.pca_dims}")
  if baseline == "kmeans":
    if train_images is None:
      raise ValueError("the k-means baseline needs the training images")
    return _kmeans(config, train_images, size, replicated)

  if config.init_from:
    pre_config, variables, step_dir = pretrained.load(config.init_from, replicated)
    description = f"{pre_config.method} encoder of {step_dir}"
  elif baseline == "random_init" and config.encoder_config:
    pre_config, variables = loading.load(config.encoder_config), None
  else:
    raise ConfigError("init_from is not set: pass --config.init_from=PRETRAINING_WORKDIR (or "
                      "set baseline to pixels or pca, or random_init with encoder_config)")
  method = methods.get(pre_config.method)
  if baseline == "random_init":
    shape = (1, pre_config.input.image_size, pre_config.input.image_size, 3)
    init = jax.jit(lambda key: method.init(pre_config, key, shape), out_shardings=replicated)
    variables = init(jax.random.key(config.seed))
    description = f"{pre_config.method} encoder at random init"

  def fn(v, images):
    out = method.encode(pre_config, v, images)
    if feature not in out:
      raise ConfigError(f"probe.feature={feature!r} is not a feature of {pre_config.method}: "
                        f"use one of {', '.join(sorted(out))}")
    return out[feature]

  return Featurizer(fn, variables, pre_config.input.image_size, description)
