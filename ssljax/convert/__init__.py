"""Checkpoint interop: official MAE (timm ViT layout) and torchvision ResNet files, Hugging Face
ViTMAE directories, detectron2 backbones.

  python -m ssljax.convert import --config=configs/mae_vitb.py \
      --source=mae_pretrain_vit_base.pth --workdir=/tmp/mae_vitb_official
  python -m ssljax.convert export --init_from=/tmp/ssljax-demo --output=/tmp/demo_mae.pth
  python -m ssljax.convert import --source=vit-mae-base --workdir=/tmp/mae_vitb_hf
  python -m ssljax.convert export --format=hf|detectron2 --init_from=... --output=...

`import` writes an ssljax checkpoint (`WORKDIR/checkpoints/0`) that `--config.init_from`
(linear probe, kNN, fine-tuning) and `ssljax.runtime.pretrained.load` accept; `export` writes an
ssljax pre-training checkpoint back in the PyTorch layout. Modules: `layouts` (parameter names
and array layouts), `state_dicts` (tree <-> flat state dict), `torch_files` (.pth I/O),
`pos_embed_order` (MoCo v3's row-first sin-cos table), `hf_layout` / `hf_config` / `hf_files`
(Hugging Face names, config.json, directories), `detectron2` (.pkl backbones), `checkpoints`
(the two operations).
"""
