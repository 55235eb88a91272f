"""Scale-out with TensorFlow's own engine: strategies, who writes, precision, inputs.

No flags are read here. :mod:`d3tf.experiment.train_lib` calls these:

* :func:`get_strategy`: the ``tf.distribute`` strategy that
  ``runtime.distribution_strategy`` names: ``default`` (one device),
  ``mirrored`` (every GPU of this machine; without GPUs, every logical CPU
  device, which is how the tests split one CPU in two), ``multi_worker``
  (``MultiWorkerMirroredStrategy``, the cluster read from ``TF_CONFIG``) or
  ``tpu`` (``TPUStrategy`` on a ``TPUClusterResolver``).
* :func:`is_chief` and :func:`write_dir`: under ``multi_worker`` every
  worker runs the same callbacks (saving reads synchronised variables, a
  collective that all workers must join), but only the chief writes into the
  model_dir; the others write into a private temporary folder that is
  removed at the end (the pattern of the Keras multi-worker guide).
* :func:`distribute_inputs`: per-replica input through
  ``strategy.distribute_datasets_from_function``: the function receives a
  ``tf.distribute.InputContext`` (per-replica batch, input pipeline id) and
  the global batch is split across the replicas.
* :func:`precision_policy`: the Keras dtype policy of ``runtime.precision``,
  set while the model is built.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Callable, Iterator

from absl import logging

#: Where a non-chief worker writes (inside the model_dir; removed at the end).
WORKER_TMP_DIRNAME = ".worker_tmp"


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def check_tf_config(environ=None) -> dict:
  """The parsed ``TF_CONFIG`` of a multi-worker run.

  Raises:
    ValueError: it is missing, not JSON, or lacks ``cluster`` / ``task``.
  """
  environ = os.environ if environ is None else environ
  text = environ.get("TF_CONFIG")
  if not text:
    raise ValueError("runtime.distribution_strategy=multi_worker needs the TF_CONFIG "
                     "environment variable (cluster and task; see docs/scale_out.md)")
  try:
    value = json.loads(text)
  except ValueError as e:
    raise ValueError(f"TF_CONFIG is not JSON ({e}): {text!r}") from None
  if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
    raise ValueError(f"TF_CONFIG needs 'cluster' and 'task', got {text!r}")
  return value


def get_strategy(name: str = "default", tpu_address: str | None = None):
  """The ``tf.distribute.Strategy`` called ``name`` (see the module docstring).

  Args:
    name: "default", "mirrored", "multi_worker" or "tpu".
    tpu_address: The TPU resolver's address (tpu only; None: ``TPU_NAME``).

  Raises:
    ValueError: an unknown name, or a multi-worker run without TF_CONFIG.
  """
  tf = _tf()
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if tf.config.list_logical_devices("GPU"):
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(
        devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
  if name == "multi_worker":
    check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  raise ValueError(f"runtime.distribution_strategy must be one of default, mirrored, "
                   f"multi_worker, tpu; got {name!r}")


def _task(strategy) -> tuple[str | None, int]:
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not getattr(resolver, "task_type", None):
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy) -> bool:
  """Whether this process writes the run's files: single-worker runs, the chief, or worker 0.

  Worker 0 is the chief when the cluster has no ``chief`` task.
  """
  task_type, task_id = _task(strategy)
  if task_type is None or task_type == "chief":
    return True
  if task_type != "worker":
    return False
  resolver = strategy.cluster_resolver
  return task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def write_dir(model_dir: str, strategy) -> str:
  """Where this process writes: ``model_dir`` (chief), else a private folder inside it."""
  if is_chief(strategy):
    return model_dir
  task_type, task_id = _task(strategy)
  return os.path.join(model_dir, WORKER_TMP_DIRNAME, f"{task_type}_{task_id}")


def remove_write_dir(model_dir: str, strategy) -> None:
  """Removes a non-chief worker's private folder (nothing for the chief)."""
  if not is_chief(strategy):
    import shutil  # pylint: disable=g-import-not-at-top
    shutil.rmtree(write_dir(model_dir, strategy), ignore_errors=True)


def distribute_inputs(strategy, dataset_fn: Callable):
  """Per-replica input: ``dataset_fn(input_context)`` through the strategy.

  With the default (one-device) strategy the function is called with None and
  its dataset returned as it is.
  """
  tf = _tf()
  if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
    return dataset_fn(None)
  return strategy.distribute_datasets_from_function(dataset_fn)


def shard_by_data(dataset):
  """``dataset`` with auto-sharding by element (its batches split across workers).

  For the validation set, which Keras distributes itself: the sources are not
  files that FILE sharding could split (it would fall back, with a warning).
  """
  if dataset is None:
    return None
  tf = _tf()
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return dataset.with_options(options)


@contextlib.contextmanager
def precision_policy(name: str) -> Iterator[None]:
  """Sets the global Keras dtype policy ``name`` inside the block, then restores it.

  Layers built inside compute in the policy's dtype (float16 / bfloat16) with
  float32 variables; D3-Net's heads convolve in that dtype too and compute the
  rest (sigmoid, metres, thin-lens conversion, log-scale) in float32, and
  ``model.compile`` wraps the optimizer in a ``LossScaleOptimizer`` (dynamic
  loss scaling) when the model's policy is mixed_float16.
  """
  import keras  # pylint: disable=g-import-not-at-top
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(name)
  if name != "float32":
    logging.info("Mixed precision: %s (the heads' outputs in float32)", name)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)
