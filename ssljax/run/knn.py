"""kNN run type (`protocol="knn"`), evaluation only: weighted kNN top-1 of the frozen features
of the encoder `config` names (or a baseline), k and temperatures from `config.knn`, the same
evaluator and metric names as the pre-training monitor (`knn/top1_k20_t0.07`)."""
import ml_collections
import optax

from ssljax.config import durations
from ssljax.data import sources
from ssljax.evals import knn, run_record
from ssljax.run import linear_probe
from ssljax.run.plan import Plan

NAME = "kNN"
validate = linear_probe.validate


class _NoBatches:
  """The data of a run without training steps."""

  def __next__(self):
    raise StopIteration

  def get_state(self):
    return {}

  def set_state(self, state):
    del state

  def close(self):
    pass


def plan(config, mesh):
  train_source, test_source, num_classes = run_record.splits(config, "probe")
  train = sources.labelled_arrays(sources.eval_source(train_source, config.input))
  test = sources.labelled_arrays(test_source)
  featurizer, encode = linear_probe.frozen_features(config, mesh, train[0])
  knn_config = ml_collections.ConfigDict(dict(k=tuple(config.knn.k),
                                              temperatures=tuple(config.knn.temperatures),
                                              batch_size=config.probe.eval_batch_size))
  evaluator = knn.KnnEvaluator(encode, train, test, num_classes, knn_config, mesh,
                               every_steps=0)

  def best(evals):
    scalars = {k: v for k, v in evals.items() if k.startswith("knn/")}
    metric = max(scalars, key=scalars.get)
    return {"metric": metric, "value": scalars[metric], "all": scalars}

  return Plan(
      name=NAME, data=_NoBatches(), source=train_source, batch_size=config.input.batch_size,
      schedule=durations.Schedule(steps_per_epoch=1, total_steps=0, warmup_steps=0,
                                  checkpoint_every_steps=1, eval_every_steps=0),
      init=lambda key: ({}, {}), objective=None, tx=optax.identity(),
      learning_rate=lambda step: 0.0, eval_variables=lambda state: featurizer.variables,
      evaluators={"knn": evaluator}, description=f"kNN of {featurizer.description}",
      record=dict(run_record.base_record(config, featurizer.description, config.probe.feature,
                                         train_source, test_source), **featurizer.fit),
      result=best)
