"""Training on several devices or processes: the tf.distribute strategy, who writes the run
directory in a multi-worker job, and the pieces that keep workers in lockstep (see docs/distributed.md)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from fercore.train.config import TrainConfig


def get_strategy(name: str) -> Any:
    """A tf.distribute strategy: default, mirrored (all local devices) or multiworker (TF_CONFIG)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        cpus = tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in (gpus or cpus)])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


def is_chief(strategy: str) -> bool:
    """Whether this process writes the run directory: always, except for a worker of a
    ``multiworker`` cluster that is not its chief. The chief is the task of type "chief" if the
    cluster has one, else worker 0 (TensorFlow's rule). Read from TF_CONFIG, so that it is known
    before TensorFlow loads and before the runs folder's lock is taken."""
    if strategy != "multiworker":
        return True
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError as exc:
        raise ValueError(f"TF_CONFIG is not valid JSON ({exc})") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict) or not cluster:
        return True  # no cluster: a single worker, which is its own chief
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


def num_workers(strategy: Any) -> int:
    """Worker processes that train together under ``strategy`` (1 unless multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def agreed_stop(stop: Callable[[], bool], strategy: Any) -> Any:
    """A stop flag that all workers agree on: true after a batch when any worker's own flag is
    (the chief sees the STOP file, a signal reaches any one worker). Workers that disagreed
    would hang, the ones that went on waiting in the next step's all-reduce for the ones that
    stopped. One tiny all-reduce per batch, which every worker calls at the same point (in a
    tf.function: about half the cost of an eager one, a few ms on loopback)."""
    import tensorflow as tf

    @tf.function
    def count(flag: Any) -> Any:
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(tf.identity, args=(flag,)), axis=None)

    return lambda: float(count(tf.constant(1.0 if stop() else 0.0))) > 0


def fix_keras_multiworker(model: Any, example: tuple[Any, ...]) -> None:
    """Work around Keras 3's MultiWorkerMirroredStrategy path in ``fit`` (keras-team/keras#20585,
    still so in Keras 3.15), on this model only:

    - before training, ``fit`` all-reduces a whole input batch across workers only to learn its
      shapes, and TensorFlow's collective reduce takes no (x, y, weight) tuple: the build gets
      ``example``, one local batch, instead (same shapes, no communication);
    - after every step it MEAN-reduces each metric across workers along axis 0, which a scalar
      does not have: the steps return their metrics as 1-element vectors, whose mean along
      axis 0 over all replicas is the mean of the replicas' values — what Keras intended. With
      equal shards (see ``fercore.train.fit``) that is the metric of the whole global batch, and every
      worker logs the same numbers, so that their callbacks decide alike (best checkpoint,
      early stopping, learning-rate plateaus).
    """
    import keras
    import tensorflow as tf

    build, train_step, test_step = model._maybe_symbolic_build, model.train_step, model.test_step

    def as_vectors(logs: Any) -> Any:
        return keras.tree.map_structure(lambda v: tf.reshape(v, [1]), logs)

    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: build(data_batch=example)
    model.train_step = lambda data: as_vectors(train_step(data))
    model.test_step = lambda data: as_vectors(test_step(data))


def distributable(ds: Any, config: TrainConfig) -> Any:
    """Shard batches across replicas (not files) under the mirrored/multiworker strategies."""
    if config.strategy == "default":
        return ds
    import tensorflow as tf

    opts = tf.data.Options()
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(opts)
