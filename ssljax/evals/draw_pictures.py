"""Pictures of what a pre-trained encoder learned, for any pre-training checkpoint:

  python -m ssljax.report pictures --init_from=/tmp/ssljax-demo --out=docs/pictures

Writes OUT/tsne.png (a t-SNE of the test-split features, coloured by class), OUT/retrieval.png
(test queries, then their top-k training neighbours by cosine similarity, framed green where the
class is the query's, red where not) and, for ViT encoders, OUT/attention.png (the cls token's
attention over the patches in the last block: the mean over heads, then each head). The data
is the checkpoint's own pre-training data (`input` of its saved config), both splits in the
evaluation view; the content is computed by `evals.pictures`.
"""
import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from ssljax import methods
from ssljax.data import sources
from ssljax.evals import batched, pictures
from ssljax.runtime import pretrained, sharding

GREEN, RED, GREY = (40, 170, 60), (210, 40, 40), (150, 150, 150)


def framed(image, colour, width):
  """uint8 [H, W, 3] -> [H + 2w, W + 2w, 3] inside a frame of `colour`."""
  out = np.empty((image.shape[0] + 2 * width, image.shape[1] + 2 * width, 3), np.uint8)
  out[:] = colour
  out[width:-width, width:-width] = image
  return out


def retrieval_grid(queries, neighbours, correct, scale=2, frame=2):
  """One row per query: the query (grey frame), then its neighbours (green: same class, red:
  not). queries [Q, H, W, 3], neighbours [Q, k, H, W, 3], correct bool [Q, k] -> uint8 mosaic."""
  big = lambda x: np.repeat(np.repeat(x, scale, axis=0), scale, axis=1)
  rows = []
  for query, row, right in zip(queries, neighbours, correct):
    cells = [framed(big(query), GREY, frame), np.full((big(query).shape[0] + 2 * frame, 6, 3),
                                                       255, np.uint8)]
    cells += [framed(big(n), GREEN if ok else RED, frame) for n, ok in zip(row, right)]
    rows.append(np.concatenate(cells, axis=1))
  return np.concatenate(rows, axis=0)


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_tsne(xy, labels, title, path):
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5.2, 4.6))
  for label in np.unique(labels):
    at = labels == label
    ax.scatter(xy[at, 0], xy[at, 1], s=7, color=plt.cm.tab10(int(label) % 10), label=str(label))
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title(title, fontsize=8)
  ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_attention(images, maps, path):
  """images uint8 [B, H, W, 3], maps [B, heads, H, W]: per row the image, the mean map over
  heads on it, then each head's map."""
  plt = _plt()
  b, heads = maps.shape[:2]
  fig, axes = plt.subplots(b, heads + 2, figsize=(1.2 * (heads + 2), 1.2 * b), squeeze=False)
  for row, image, head_maps in zip(axes, images, maps):
    row[0].imshow(image)
    row[1].imshow(image)
    row[1].imshow(head_maps.mean(axis=0), cmap="inferno", alpha=0.6)
    for ax, head_map in zip(row[2:], head_maps):
      ax.imshow(head_map, cmap="inferno")
  for ax, title in zip(axes[0], ["image", "mean"] + [f"head {h}" for h in range(heads)]):
    ax.set_title(title, fontsize=7)
  for ax in axes.flat:
    ax.set_axis_off()
  fig.tight_layout(pad=0.2)
  fig.savefig(path, dpi=100)
  plt.close(fig)


def draw(init_from, out, num_tsne=1000, num_queries=8, k=8, num_attention=6,
         max_train_examples=10000, feature=None, seed=0, batch_size=256, tsne_iterations=1000):
  """Writes the pictures of `init_from`'s encoder into `out`; returns {name: path}."""
  mesh = sharding.make_mesh()
  config, variables, step_dir = pretrained.load(init_from, sharding.replicated(mesh))
  method = methods.get(config.method)
  feature = feature or (config.get("evals") or {}).get("knn", {}).get("feature") or "cls"
  train = sources.labelled_arrays(sources.get_source(config.input, "train", "eval"),
                                  max_train_examples, seed)
  test = sources.labelled_arrays(sources.get_source(config.input, "test", "eval"),
                                 num_tsne, seed)
  encode = jax.jit(lambda v, x: method.encode(config, v, x.astype(jnp.float32))[feature],
                   out_shardings=sharding.replicated(mesh))
  train_features, test_features = (batched.map_batches(encode, variables, images, batch_size,
                                                       mesh) for images, _ in (train, test))
  name = f"{config.method} {feature}, {step_dir}"
  os.makedirs(out, exist_ok=True)
  paths = {}

  xy, labels, _ = pictures.tsne_points(test_features, test[1], num_tsne, seed,
                                        tsne_iterations)
  paths["tsne"] = os.path.join(out, "tsne.png")
  plot_tsne(xy, labels, f"t-SNE of {len(xy)} test images ({name})", paths["tsne"])

  queries = pictures.sample_indices(len(test[0]), num_queries, seed + 1)
  found = pictures.nearest_neighbours(test_features[queries], train_features, k)
  correct = train[1][found] == test[1][queries][:, None]
  paths["retrieval"] = os.path.join(out, "retrieval.png")
  _save_png(paths["retrieval"], retrieval_grid(test[0][queries], train[0][found], correct))

  images = test[0][pictures.sample_indices(len(test[0]), num_attention, seed + 2)]
  _, weights = jax.jit(lambda v, x: pictures.with_cls_attention(
      method.encode, config, v, x.astype(jnp.float32)))(variables, images)
  if weights is not None:
    maps = pictures.attention_maps(weights, images.shape[1])
    paths["attention"] = os.path.join(out, "attention.png")
    plot_attention(images, maps, paths["attention"])
  return paths


def _save_png(path, image):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(image).save(path)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m ssljax.report pictures",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--init_from", required=True,
                      help="pre-training workdir, its checkpoints/ or checkpoints/N")
  parser.add_argument("--out", required=True, help="directory for the PNG files")
  parser.add_argument("--feature", default=None,
                      help="encoder feature (default: the run's kNN feature, else cls)")
  parser.add_argument("--num_tsne", type=int, default=1000, help="test images in the t-SNE")
  parser.add_argument("--tsne_iterations", type=int, default=1000, help="at least 250")
  parser.add_argument("--num_queries", type=int, default=8)
  parser.add_argument("--k", type=int, default=8, help="neighbours per query")
  parser.add_argument("--num_attention", type=int, default=6, help="images with attention")
  parser.add_argument("--max_train_examples", type=int, default=10000,
                      help="training images searched for neighbours (a seeded subset)")
  parser.add_argument("--batch_size", type=int, default=256, help="images per encoder call")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  paths = draw(args.init_from, args.out, args.num_tsne, args.num_queries, args.k,
               args.num_attention, args.max_train_examples, args.feature, args.seed,
               args.batch_size, args.tsne_iterations)
  for path in paths.values():
    print(path)
  return 0
