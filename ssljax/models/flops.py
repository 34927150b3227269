"""Analytic model FLOPs and model FLOPs utilisation (MFU).

FLOPs count a multiply-add as 2 and only matrix multiplications and convolutions (the model
FLOPs of the MFU convention: norms, softmax and activations are left out). A training step
costs 3x the forward pass (the backward pass computes two products per forward one); networks
that only run forward in a step (momentum targets) count 1x. Each method's
`flops_per_example(config)` combines these for its step.
"""
import jax

# Peak dense bf16 throughput per JAX device, TFLOP/s (a TPU v2/v3 chip shows as two devices).
PEAK_TFLOPS = (("TPU v2", 22.5), ("TPU v3", 61.5), ("TPU v4", 275.0), ("TPU v5 lite", 197.0),
               ("TPU v5e", 197.0), ("TPU v5p", 459.0), ("TPU v5", 459.0),
               ("TPU v6 lite", 918.0), ("TPU v6e", 918.0), ("TPU7x", 2307.0),
               ("A100", 312.0), ("H100", 989.0), ("H200", 989.0), ("B200", 2250.0))


def peak_tflops(device_kind):
  """Peak bf16 TFLOP/s of one device of this kind ("TPU v4", "NVIDIA H100 80GB HBM3"), or
  None when unknown (CPUs)."""
  for name, tflops in PEAK_TFLOPS:
    if name.lower() in device_kind.lower():
      return tflops
  return None


def dense(d_in, d_out, rows=1):
  return 2 * rows * d_in * d_out


def transformer_blocks(tokens, width, mlp_dim, depth):
  """Forward FLOPs of `depth` pre-norm blocks on `tokens` tokens: qkv, q k^T, attention x v,
  output projection, MLP."""
  per_block = (dense(width, 3 * width, tokens) + 2 * 2 * tokens * tokens * width
               + dense(width, width, tokens) + 2 * dense(width, mlp_dim, tokens))
  return depth * per_block


def vit_forward(spec, image_size, channels=3, kept_patches=None):
  """ViT encoder forward FLOPs for one image: patch embedding of every patch, then the blocks
  on the cls token plus `kept_patches` (default: all) patches."""
  num_patches = (image_size // spec["patch_size"]) ** 2
  embed = dense(spec["patch_size"] ** 2 * channels, spec["width"], num_patches)
  tokens = 1 + (num_patches if kept_patches is None else kept_patches)
  return embed + transformer_blocks(tokens, spec["width"], spec["mlp_dim"], spec["depth"])


def _conv(size, k, c_in, c_out, stride):
  out = -(-size // stride)  # "same" padding: ceil(size / stride)
  return 2 * out * out * k * k * c_in * c_out, out


def resnet_forward(name, image_size, width=64, cifar_stem=False):
  """ResNet forward FLOPs for one image (convolutions; the pooled features, no classifier)."""
  from ssljax.models import resnet  # pylint: disable=g-import-not-at-top
  kind, stages = resnet.DEPTHS[name]
  bottleneck = kind == "bottleneck"
  if cifar_stem:
    total, size = _conv(image_size, 3, 3, width, 1)
  else:
    total, size = _conv(image_size, 7, 3, width, 2)
    size = -(-size // 2)  # max-pool
  c_in = width
  for stage, num_blocks in enumerate(stages):
    filters = width * 2 ** stage
    c_out = filters * (4 if bottleneck else 1)
    for block in range(num_blocks):
      stride = 2 if stage > 0 and block == 0 else 1
      if bottleneck:
        f1, _ = _conv(size, 1, c_in, filters, 1)
        f2, out = _conv(size, 3, filters, filters, stride)
        f3, _ = _conv(out, 1, filters, c_out, 1)
        flops = f1 + f2 + f3
      else:
        f1, out = _conv(size, 3, c_in, filters, stride)
        f2, _ = _conv(out, 3, filters, filters, 1)
        flops = f1 + f2
      if c_in != c_out or stride != 1:
        flops += _conv(size, 1, c_in, c_out, stride)[0]
      total += flops
      size, c_in = out, c_out
  return total


def mfu(examples_per_s, flops_per_example, devices=None):
  """(achieved TFLOP/s, MFU in [0, 1] or None) for a step rate over `devices` (default all)."""
  devices = devices if devices is not None else jax.devices()
  achieved = examples_per_s * flops_per_example / 1e12
  peak = peak_tflops(devices[0].device_kind)
  return achieved, (achieved / (peak * len(devices)) if peak else None)
