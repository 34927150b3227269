"""What the pretext-task classifiers (rotation, relative position) share: a backbone
(`siamese.build_backbone`: ResNet or ViT by `model.variant`) and a small classifier head on its
pooled features, trained with cross-entropy on labels the method makes from the images.

A method's head config (`config.rotation`, ...) has `head_layers` (1: a linear classifier) and
`head_hidden_dim` (width of the hidden layers, each Linear + BN + ReLU). Parameters are
`{"backbone", "head"}`; BatchNorm statistics the same keys under `batch_stats`.
"""
import jax
import jax.numpy as jnp
import optax

from ssljax.data import augment
from ssljax.errors import ConfigError
from ssljax.methods import siamese
from ssljax.models import heads, vit


def build_network(config, head, num_classes):
  """{"backbone", "head"} modules; the head maps features to `num_classes` logits."""
  return {"backbone": siamese.build_backbone(config),
          "head": heads.Projector(num_classes, head.head_hidden_dim, head.head_layers,
                                  hidden_bn=True, last_bn=False, output_bias=True,
                                  bn_running_var=config.model.bn_running_var)}


def init_network(modules, rng, backbone_shape, head_inputs=1):
  """{"params": {"backbone", "head"}, "batch_stats": ...}; the head takes `head_inputs`
  backbone features concatenated, the backbone images of `backbone_shape` [1, H, W, 3]."""
  backbone_key, head_key = jax.random.split(rng)
  images = jnp.zeros((2,) + tuple(backbone_shape[1:]), jnp.float32)
  backbone = modules["backbone"]
  mode = {} if isinstance(backbone, vit.ViT) else {"train": False}
  variables = {"backbone": backbone.init(backbone_key, images, **mode)}
  features, _ = siamese.backbone_features(backbone, variables["backbone"], images, False)
  variables["head"] = modules["head"].init(head_key, jnp.tile(features, (1, head_inputs)))
  return {"params": {k: v["params"] for k, v in variables.items()},
          "batch_stats": {k: v["batch_stats"] for k, v in variables.items()
                          if "batch_stats" in v}}


def apply_head(modules, params, stats, features, train):
  """features [B, D'] -> (logits float32 [B, num_classes], {"head": new stats} or {})."""
  variables = {"params": params["head"]}
  if "head" in stats:
    variables["batch_stats"] = stats["head"]
  if train and "batch_stats" in variables:
    logits, updates = modules["head"].apply(variables, features, train=True,
                                            mutable=["batch_stats"])
    return logits.astype(jnp.float32), {"head": updates["batch_stats"]}
  return modules["head"].apply(variables, features, train=False).astype(jnp.float32), {}


def classification(logits, labels):
  """(mean cross-entropy, accuracy) of logits [N, C] for integer labels [N]."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def training_images(config, rng, batch):
  """uint8 batch["image"] -> normalised float32 [B, S, S, 3] (S = input.image_size), cropped
  (`aug.crop`, `aug.crop_scale`) and flipped (`aug.flip`), one key per example."""
  return augment.crop_flip_views(rng, batch["image"], config.input.image_size,
                                 crop=config.aug.crop, crop_scale=config.aug.crop_scale,
                                 flip=config.aug.flip, **augment.micro_batch(batch, config),
                                 **augment.geometry(batch, config))


def classifier_loss(modules, params, state, inputs, labels, accuracy_name,
                    head_inputs=lambda features: features):
  """Backbone (train mode) on inputs [N, ...], `head_inputs` of its features [N, D] to the head,
  cross-entropy against labels -> (loss, ({"batch_stats"}, {"loss", accuracy_name,
  "backbone_std"}))."""
  features, stats = siamese.apply_backbone(modules, params, state["batch_stats"], inputs, True)
  logits, head_stats = apply_head(modules, params, state["batch_stats"], head_inputs(features),
                                  True)
  value, accuracy = classification(logits, labels)
  metrics = {"loss": value, accuracy_name: accuracy,
             "backbone_std": siamese.output_std(features)}
  return value, ({"batch_stats": {**state["batch_stats"], **stats, **head_stats}}, metrics)


def encode(config, variables, images, preprocess=None):
  """uint8-valued [B, H, W, 3] -> {"backbone": [B, D]}, the pooled backbone feature in eval
  mode of the whole (evaluation-view) image; `preprocess` (normalised images -> images) is a
  method's fixed input transform."""
  x = augment.eval_view(images, config.input.image_size)
  if preprocess is not None:
    x = preprocess(x)
  features, _ = siamese.apply_backbone({"backbone": siamese.build_backbone(config)},
                                       variables["params"], variables["batch_stats"], x,
                                       train=False)
  return {"backbone": features.astype(jnp.float32)}


def forward_flops(config, head, image_size, num_classes, head_inputs=1):
  """Forward FLOPs of one backbone input of side `image_size` and of one head call on
  `head_inputs` concatenated features: (backbone, head)."""
  from ssljax.models import flops  # pylint: disable=g-import-not-at-top
  backbone, features = siamese.backbone_forward_flops(config, image_size)
  widths = ([features * head_inputs] + [head.head_hidden_dim] * (head.head_layers - 1)
            + [num_classes])
  return backbone, sum(flops.dense(a, b) for a, b in zip(widths, widths[1:]))


def validate_head(config, name):
  """ConfigErrors for the head fields of `config[name]`."""
  head = config[name]
  if not isinstance(head.head_layers, int) or head.head_layers < 1:
    raise ConfigError(f"{name}.head_layers={head.head_layers!r} is invalid: use 1 (a linear "
                      "classifier) or more layers")
  if head.head_layers > 1 and not (isinstance(head.head_hidden_dim, int)
                                   and head.head_hidden_dim >= 1):
    raise ConfigError(f"{name}.head_hidden_dim={head.head_hidden_dim!r} is invalid: use a "
                      f"width >= 1 for the hidden layers of the {head.head_layers}-layer head")
  siamese.validate_network(config, name)
