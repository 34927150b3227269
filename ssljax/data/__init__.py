"""Data: sources (host-side reading), the grain pipeline, on-device augmentations."""
