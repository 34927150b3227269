"""Which trainer a config runs: pre-training configs have a `method`, evaluation configs a
`protocol` (linear_probe and knn: `ssljax.linear_probe`; finetune: `ssljax.finetune`)."""


def for_config(config):
  """The `run(config, workdir, *, devices=None) -> summary` function for `config`."""
  # pylint: disable=g-import-not-at-top  # each trainer imports JAX and its models
  if "protocol" not in config:
    from ssljax import train
    return train.train_and_evaluate
  if config.protocol == "finetune" and "finetune" in config:
    from ssljax import finetune
    return finetune.run
  from ssljax import linear_probe  # also reports an unknown protocol
  return linear_probe.run
