"""PyTorch checkpoint interop: official MAE (timm ViT layout) and torchvision ResNet files.

  python -m ssljax.convert import --config=configs/mae_vitb.py \
      --source=mae_pretrain_vit_base.pth --workdir=/tmp/mae_vitb_official
  python -m ssljax.convert export --init_from=/tmp/ssljax-demo --output=/tmp/demo_mae.pth

`import` writes an ssljax checkpoint (`WORKDIR/checkpoints/0`) that `--config.init_from`
(linear probe, kNN, fine-tuning) and `ssljax.runtime.pretrained.load` accept; `export` writes an
ssljax pre-training checkpoint back in the PyTorch layout. Modules: `layouts` (parameter names
and array layouts), `state_dicts` (tree <-> flat state dict), `torch_files` (.pth I/O),
`pos_embed_order` (MoCo v3's row-first sin-cos table), `checkpoints` (the two operations).
"""
