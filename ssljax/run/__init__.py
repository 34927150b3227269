"""Runs: THE loop (`loop.run`) and the run types it drives (pre-training, linear probe,
fine-tuning, kNN), with the train state, the generic train step, optimizers and the
non-finite guard. `registry.for_config` picks the run type of a config."""
