"""The runtime under every run: device mesh and shardings, distributed start-up, preemption,
orbax checkpoints, pre-trained checkpoint loading, metric writers and logging. Called by the
run loop; never calls up into runs, methods or evaluators."""
