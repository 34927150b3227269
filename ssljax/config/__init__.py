"""Configs: loading `file.py:arg` recipes, the shared sections, validation, and durations in
epochs resolved after the command-line overrides."""
