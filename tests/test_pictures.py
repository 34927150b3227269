"""Pictures of what an encoder learned (`evals.pictures`, `evals.draw_pictures`): the retrieval
neighbours are the true top-k by cosine similarity, the attention maps are the cls query's
softmax recomputed from the parameters, the t-SNE has one point per sampled image with its
label; the tool draws them for a pre-training checkpoint."""
import os

import flax.linen as nn
import jax
import numpy as np
import pytest
from PIL import Image

from conftest import numpy_variables
from ssljax import report
from ssljax.evals import draw_pictures, pictures
from ssljax.models import vit


def test_neighbours_are_the_true_top_k_by_cosine_similarity():
  rng = np.random.default_rng(0)
  queries, keys = rng.normal(size=(7, 16)), rng.normal(size=(50, 16))
  keys *= rng.uniform(0.1, 10.0, size=(50, 1))  # lengths differ: cosine, not dot product
  found = pictures.nearest_neighbours(queries, keys, k=5)
  for query, row in zip(queries, found):
    cosine = [query @ key / np.linalg.norm(query) / np.linalg.norm(key) for key in keys]
    assert list(row) == sorted(range(len(keys)), key=lambda i: -cosine[i])[:5]
  assert not np.array_equal(found, np.argsort(-(queries @ keys.T), axis=1)[:, :5])


def test_retrieval_grid_frames_same_class_neighbours_green_and_others_red():
  queries = np.zeros((2, 4, 4, 3), np.uint8)
  correct = np.array([[True, False, True], [False, False, True]])
  grid = draw_pictures.retrieval_grid(queries, np.zeros((2, 3, 4, 4, 3), np.uint8), correct,
                                      scale=1, frame=1)
  cell, gap = 4 + 2, 6
  assert grid.shape == (2 * cell, cell + gap + 3 * cell, 3)
  for q in range(2):
    assert tuple(grid[q * cell, 0]) == draw_pictures.GREY
    for n in range(3):
      corner = tuple(grid[q * cell, cell + gap + n * cell])
      assert corner == (draw_pictures.GREEN if correct[q, n] else draw_pictures.RED)


def _layer_norm(x, params):
  mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + 1e-6) * params["scale"] + params["bias"]


def test_cls_attention_is_the_softmax_of_q_k_recomputed_from_the_params():
  model = vit.ViT(**vit.parse_variant("mu/4"))  # width 32, depth 2, 2 heads; 16 patches
  images = np.random.default_rng(1).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
  variables = numpy_variables(model, images)
  capture_block_0 = lambda v, x: model.apply(v, x, capture_intermediates=lambda m, _: (
      m.name == "blocks_0"))
  (_, state), weights = jax.jit(lambda v, x: pictures.with_cls_attention(
      capture_block_0, v, x))(variables, images)
  x = np.asarray(state["intermediates"]["blocks_0"]["__call__"][0])  # the last block's input
  last = variables["params"]["blocks_1"]
  qkv = _layer_norm(x, last["norm1"]) @ last["attn"]["qkv"]["kernel"] + last["attn"]["qkv"]["bias"]
  q = qkv[:, 0, :32].reshape(3, 2, 16)  # cls query [B, heads, head_dim]
  k = qkv[:, :, 32:64].reshape(3, 17, 2, 16)
  logits = np.einsum("bhd,bnhd->bhn", q, k) / 4.0
  expected = np.exp(logits - logits.max(-1, keepdims=True))
  expected /= expected.sum(-1, keepdims=True)
  assert weights.shape == (3, 2, 17)
  np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
  assert pictures.with_cls_attention(nn.Dense(2).apply, nn.Dense(2).init(
      jax.random.key(0), images[:, 0, 0]), images[:, 0, 0])[1] is None  # no ViT: no attention


def test_attention_maps_spread_each_patch_weight_over_its_pixels():
  weights = np.random.default_rng(2).dirichlet(np.ones(17), size=(2, 3))  # [B, heads, 1+16]
  maps = pictures.attention_maps(weights, image_size=16)
  assert maps.shape == (2, 3, 16, 16)
  i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
  np.testing.assert_array_equal(maps, weights[..., 1 + (i // 4) * 4 + j // 4])


def test_tsne_has_one_point_per_sampled_image_with_its_label_and_keeps_clusters_apart():
  rng = np.random.default_rng(3)
  labels = np.repeat(np.arange(3), 20)
  features = rng.normal(size=(60, 8)) + 20.0 * np.eye(8)[labels]
  xy, chosen_labels, indices = pictures.tsne_points(features, labels, num_points=30, max_iter=300)
  assert xy.shape == (30, 2) and len(np.unique(indices)) == 30
  np.testing.assert_array_equal(chosen_labels, labels[indices])
  distances = np.linalg.norm(xy[:, None] - xy[None], axis=-1) + np.diag(np.full(30, np.inf))
  assert (chosen_labels[distances.argmin(1)] == chosen_labels).all()


def test_report_pictures_draws_the_three_pictures_of_a_checkpoint(pretrained_workdir, tmp_path):
  out = str(tmp_path / "pictures")
  assert report.main(["pictures", f"--init_from={pretrained_workdir}", f"--out={out}",
                      "--num_tsne=40", "--tsne_iterations=300", "--num_queries=3", "--k=4",
                      "--num_attention=2", "--max_train_examples=200", "--batch_size=64"]) == 0
  assert sorted(os.listdir(out)) == ["attention.png", "retrieval.png", "tsne.png"]
  cell = 2 * 32 + 2 * 2  # demo images, doubled, framed
  assert Image.open(os.path.join(out, "retrieval.png")).size == (cell * 5 + 6, cell * 3)


@pytest.mark.parametrize("flag", ["--init_from", "--out"])
def test_report_pictures_requires_init_from_and_out(flag, tmp_path, capsys):
  given = {"--init_from": "--init_from=x", "--out": f"--out={tmp_path}"}
  with pytest.raises(SystemExit):
    report.main(["pictures"] + [v for k, v in given.items() if k != flag])
  assert flag in capsys.readouterr().err
