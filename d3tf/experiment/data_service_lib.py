"""The training pipeline on tf.data service workers (no flags read here).

``python -m d3tf.data_service`` starts the servers; ``d3tf.train
--data_service=grpc://HOST:PORT`` reads from them:

* the **dispatcher** (:func:`start_dispatcher`) hands out work; with a
  ``work_dir`` and ``fault_tolerant_mode`` it journals its state there and a
  restarted dispatcher carries on the same jobs;
* each **worker** (:func:`start_worker`) first builds the experiment's
  training pipeline and registers it with the dispatcher
  (:func:`register`), then serves it. The pipeline calls Python (the
  procedural scene generator runs in ``tf.numpy_function``), and tf.data
  service ships a dataset's graph, not its Python functions: a graph built
  in the trainer names callbacks that exist only in the trainer's process.
  Built the same way in every worker process (the first thing each does),
  the registered graph names callbacks that every worker holds;
* the **trainer** (:func:`service_dataset`) reads the registered dataset by
  its id (a hash of the data, camera, render and seed settings, so trainer
  and workers must be given the same experiment) in a job named after the
  model_dir, with dynamic sharding: the dispatcher splits the stream's
  example-index range across the workers, each worker generates, augments,
  renders and batches its examples, and the trainer's input pipelines read
  disjoint batches.

What it gives: the same examples as the local pipeline (each keyed by its
index: same scene, augmentation and render noise), in an order that depends
on which worker is faster. A restarted trainer rejoins its job and continues
after the examples already handed out (those in flight at a kill are
skipped, none repeats): at-most-once, where the local pipeline resumes
exactly. Procedural data only (the readers' shuffled, repeated file lists
are not keyed by example index yet).
"""

from __future__ import annotations

import hashlib
import json

from absl import logging

#: Element-index range split into pieces of this many examples (dynamic sharding).
_SECTIONS = ("data", "camera", "render")


def dataset_id(task) -> str:
  """The registered dataset's id: a hash of what the training examples depend on."""
  values = task.config.to_dict()
  key = {name: values[name] for name in _SECTIONS}
  key["seed"] = values["training"]["seed"]
  digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  return f"d3tf-train-{digest}"


def job_name(model_dir: str, task) -> str:
  """The job of one run (its model_dir): a restarted trainer rejoins it."""
  digest = hashlib.sha1(str(model_dir).encode()).hexdigest()[:8]
  return f"{dataset_id(task)}-{digest}"


def _service():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.data.experimental.service


def service_pipeline(task):
  """The pipeline the workers run: the training batches (global batch) from example 0."""
  return task.build_inputs("train")


def register(task, address: str) -> str:
  """Builds the training pipeline here and registers it with the dispatcher at ``address``."""
  dataset = service_pipeline(task)
  name = dataset_id(task)
  registered = _service().register_dataset(address, dataset, dataset_id=name)
  logging.info("Registered the training pipeline as %s with %s", name, address)
  return registered


def service_dataset(task, address: str, input_context=None, job_name: str | None = None):
  """The training batches read from the tf.data service at ``address``.

  Args:
    task: The :class:`~d3tf.experiment.task.DepthTask` (the same experiment as
      the workers').
    address: ``grpc://HOST:PORT`` of the dispatcher.
    input_context: A ``tf.distribute.InputContext``: batches become
      per-replica batches.
    job_name: The shared job (default: one per dataset id).

  Returns:
    A ``tf.data.Dataset`` of ``(inputs, depth)`` batches.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  service = _service()
  spec = service_pipeline(task).element_spec  # Built, never iterated here.
  dataset = service.from_dataset_id(
      processing_mode=service.ShardingPolicy.DYNAMIC, service=address,
      dataset_id=dataset_id(task), element_spec=spec,
      job_name=job_name or dataset_id(task))
  batch = task.config.data.batch_size
  if input_context is not None:
    per_replica = input_context.get_per_replica_batch_size(batch)
    if per_replica != batch:
      dataset = dataset.rebatch(per_replica, drop_remainder=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def start_dispatcher(port: int = 0, work_dir: str | None = None, fault_tolerant: bool = False,
                     start: bool = True):
  """A ``DispatchServer`` on ``port`` (0: any free port); see the module docstring."""
  service = _service()
  config = service.DispatcherConfig(port=port, work_dir=work_dir,
                                    fault_tolerant_mode=bool(fault_tolerant and work_dir))
  return service.DispatchServer(config, start=start)


def start_worker(dispatcher_address: str, port: int = 0, worker_address: str | None = None,
                 start: bool = True):
  """A ``WorkerServer`` of the dispatcher at ``dispatcher_address`` (HOST:PORT, no scheme)."""
  service = _service()
  kwargs = {"worker_address": worker_address} if worker_address else {}
  config = service.WorkerConfig(dispatcher_address=dispatcher_address, port=port, **kwargs)
  return service.WorkerServer(config, start=start)
