"""Pure-functional Flax Linen models: ViT encoder, MAE decoder."""
