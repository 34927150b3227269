"""SimCLR ResNet-50 on ImageNet-1k (Chen et al., ICML 2020), the paper's settings.

  python -m ssljax.main --config=configs/simclr_r50.py --workdir=gs://BUCKET/simclr_r50
  python -m ssljax.main --config=configs/simclr_r50.py:runlocal --workdir=/tmp/simclr_local

Batch 4096, LARS lr 0.3 x 4096 / 256 = 4.8, wd 1e-6, 10 warm-up epochs, cosine; NT-Xent over
the global batch at temperature 0.1; 3-layer projection to 128 (below); crops 0.08-1 from TF's
sample_distorted_bounding_box (`input.crop_sampler="tf_sdbb"`) resized without antialiasing
(`input.resize_antialias=False`), flip, color jitter strength 1.0 (0.8, 0.8, 0.8, 0.2) p=0.8 as
the release (`aug.color_jitter_impl="tf_scaled"`: brightness x * f, contrast around each channel's
mean, saturation scaled in HSV), grayscale p=0.2, blur p=0.5. The paper: 128 TPU v3 cores, linear
accuracy 69.3 at 1000 epochs (paper, Table 6); the seed's comparison (SimSiam paper, Table 4): 66.5
/ 68.3 / 69.8 / 70.4 at 100 / 200 / 400 / 800 epochs. Needs TFDS imagenet2012 as array_record.

Head and loss as the TF2 release: projection 2048 -> 2048 -> 2048 -> 128 without Linear
biases, BN on every layer, the last with a scale and no shift (`simclr.projector_layers`,
`projector_last_bn`, `projector_last_bn_scale`), kernels N(0, 0.01) (`simclr.head_init`);
the loss summed over the two views, twice the mean (`simclr.loss_reduction`). Convolutions
initialised as Keras's VarianceScaling(): truncated normal with std 1/sqrt(fan_in)
(`model.resnet_init`).
Computes in bfloat16 (the release's precision is not audited here); state and loss float32.
"""
from ssljax.config import loading, sections
from ssljax.methods import recipes, simclr


def get_config(arg=None):
  arg = loading.parse_arg(arg, runlocal=False, epochs=100)
  c = sections.base_config()
  c.method, c.simclr = "simclr", simclr.default_config()
  recipes.siamese_imagenet(c, arg, batch_size=4096, optimizer="lars", blr=0.3,
                           weight_decay=1e-6, warmup_epochs=10, interpolation="bicubic")
  if not arg.runlocal:
    c.aug.color_jitter = (0.8, 0.8, 0.8, 0.2)
    c.input.crop_sampler, c.input.resize_antialias = "tf_sdbb", False  # tf.image.resize
    c.aug.color_jitter_impl = "tf_scaled"  # TF's per-channel contrast and HSV saturation
    c.simclr.projector_layers, c.simclr.projector_last_bn = 3, True
    c.simclr.projector_last_bn_scale, c.simclr.head_init = True, "normal_0.01"
    c.simclr.loss_reduction = "sum_over_views"
    c.model.resnet_init = "tf_variance_scaling"  # tf2/resnet.py's conv kernel_initializer
  if arg.runlocal:
    recipes.siamese_runlocal(c)
  c.lock()
  return c
