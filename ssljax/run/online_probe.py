"""Online linear probe: a linear classifier trained during pre-training on stop-gradient
features of the current encoder (as BYOL and SimCLR report), logged beside kNN.

`config.online_probe.enabled` adds a linear layer `params["online_probe"]` [D, classes] after
BatchNorm without affine (batch statistics; the probe is a training-time monitor) and its
softmax cross-entropy on the un-augmented training images (labels from the pipeline) to
the objective. The features pass through `jax.lax.stop_gradient`, so the encoder receives no
gradient from the labels; the layer has its own Adam at `online_probe.lr` (a pre-training lr
would leave it near zero). Costs one extra encoder forward pass per step.
"""
import jax
import jax.numpy as jnp
import optax

PARAMS_KEY = "online_probe"


def enabled(config):
  return bool(config.get("online_probe", {}).get("enabled", False))


def _features(config, method, params, model_state, images):
  variables = {"params": params, **model_state}
  return jax.lax.stop_gradient(method.encode(config, variables, images)[
      config.online_probe.feature])


def init(config, method, variables, image_shape):
  """`variables` with a zero-initialised linear layer for `config.online_probe` added."""
  params = dict(variables["params"])
  model_state = {k: v for k, v in variables.items() if k != "params"}
  dim = _features(config, method, params, model_state,
                  jnp.zeros(image_shape, jnp.uint8)).shape[-1]
  classes = config.online_probe.num_classes
  params[PARAMS_KEY] = {"kernel": jnp.zeros((dim, classes)), "bias": jnp.zeros((classes,))}
  return dict(variables, params=params)


def wrap_loss(config, method):
  """method.loss with the probe's cross-entropy added (same signature, more metrics)."""
  def loss(config_, params, model_state, batch, rng):
    method_params = {k: v for k, v in params.items() if k != PARAMS_KEY}
    value, (new_state, step_metrics) = method.loss(config_, method_params, model_state, batch,
                                                   rng)
    head = params[PARAMS_KEY]
    features = _features(config, method, method_params, model_state, batch["image"])
    # BatchNorm without affine over the batch (as MAE's probe): scale-free features.
    mean, var = jnp.mean(features, 0), jnp.var(features, 0)
    features = (features - mean) * jax.lax.rsqrt(var + 1e-6)
    logits = features @ head["kernel"] + head["bias"]
    cross_entropy = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["label"]).mean()
    step_metrics = dict(step_metrics, online_probe_loss=cross_entropy,
                        online_probe_top1=jnp.mean(jnp.argmax(logits, -1) == batch["label"]))
    return value + cross_entropy, (new_state, step_metrics)
  return loss


def wrap_optimizer(config, tx):
  """`tx` for the method's parameters, Adam at `online_probe.lr` for the probe's layer."""
  labels = lambda params: {k: jax.tree.map(lambda _, k=k: "probe" if k == PARAMS_KEY
                                           else "method", v) for k, v in params.items()}
  return optax.multi_transform({"method": tx, "probe": optax.adam(config.online_probe.lr)},
                               labels)
