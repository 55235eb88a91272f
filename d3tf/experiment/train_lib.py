"""Training as a library: ``run_training(config, model_dir)``, no flags read.

What a model_dir receives (the same as ``python -m d3tf.train``, which calls
this):

* ``config.json``: the resolved :class:`ExperimentConfig` (a resumed run
  warns where the config changed);
* ``d3tf_metadata.json`` (:class:`d3tf.artifacts.Metadata`: camera, render
  settings, model config; read by evaluate, predict and export);
* ``model.keras`` (final) and ``best.keras`` (best validation ``rel``, else
  training loss);
* ``backup/``: the training state, saved every ``save_every_steps`` steps and
  at epoch ends; calling again with the same model_dir resumes at the last
  saved step with the data stream continuing at the next unseen example;
* ``tensorboard/`` and ``metrics.csv``;
* ``epochs/epoch_NNN.keras`` with ``training.keep_epoch_models``: the model
  after each epoch (to average the last ones: ``d3tf.average``).

Under a ``tf.distribute`` strategy (``runtime.distribution_strategy``, see
:mod:`d3tf.experiment.distribute_lib` and docs/scale_out.md) the batch is the
global batch, the training input goes through
``distribute_datasets_from_function``, and only the chief writes these files
(other workers write into ``.worker_tmp/`` inside the model_dir, removed at the
end); every worker resumes from the chief's ``backup/``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

from absl import logging

from d3tf.artifacts import model_dir as model_dir_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import distribute_lib
from d3tf.experiment import task as task_lib

_MONITOR = "val_rel"
CONFIG_FILENAME = model_dir_lib.CONFIG_FILENAME


def get_strategy(name: str = "default", tpu_address: str | None = None):
  """The ``tf.distribute`` strategy named by ``runtime.distribution_strategy``.

  See :func:`d3tf.experiment.distribute_lib.get_strategy`.
  """
  return distribute_lib.get_strategy(name, tpu_address)


# -------------------------------------------------------------- run files
def write_metadata(model_dir: str, task: task_lib.DepthTask, model_config,
                   extra: dict[str, Any]) -> None:
  """d3tf_metadata.json (:class:`d3tf.artifacts.Metadata`): camera, render, model config."""
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  config = task.config
  camera = task.camera
  data = config.data
  train_data = data.dataset if config.is_procedural else f"{data.dataset}:{data.data_path}"
  if data.dataset == "nyu_densedepth":
    extra = {"val_scenes": list(data.val_scenes), "mix_procedural": data.mix_procedural,
             **extra}
  if config.camera.range:  # The cameras it was trained on (docs/any_camera.md).
    extra = {"camera_range": config.build_camera_range().to_dict(), **extra}
  artifacts.write_metadata(model_dir, artifacts.Metadata.for_training(
      # No PSF for real photos' blur (issue 14's DFD fine-tunes): none was rendered.
      camera=camera, psf=config.render.psf if task.render_camera is not None else None,
      render_options=(config.render.render_options()
                      if task.render_camera is not None else None),
      model_config=model_config, input_kind="defocus" if camera is not None else "sharp",
      train_data=train_data, extra={"crop_size": data.crop_size, "loss": task.loss_name,
                                    "real_defocus": task.render_camera is None and
                                    camera is not None, **extra}))


def _write_config(model_dir: str, config: config_lib.ExperimentConfig, resuming: bool) -> None:
  path = os.path.join(model_dir, CONFIG_FILENAME)
  new = config.to_dict()
  if resuming and os.path.exists(path):
    try:
      with open(path) as f:
        old = json.load(f)
    except (OSError, ValueError):
      old = None
    if isinstance(old, dict) and old != new:
      # A field the old config.json lacks (added since) had its default value.
      defaults = config_lib.ExperimentConfig().resolved().to_dict()
      changed = sorted(f"{s}.{k}" for s in new for k in new[s]
                       if (old.get(s) or {}).get(k, defaults[s].get(k)) != new[s][k])
      if changed:
        logging.warning("Resuming with a config that differs from %s: %s", path, changed)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_json(path, new, indent=2)


def load_config(model_dir: str) -> config_lib.ExperimentConfig:
  """The :class:`ExperimentConfig` a run of :func:`run_training` saved."""
  with open(os.path.join(model_dir, CONFIG_FILENAME)) as f:
    return config_lib.ExperimentConfig.from_dict(json.load(f))


def init_from(model, path: str, camera=None, check_camera: bool = False) -> None:
  """Copies the weights of a trained model (model_dir, .keras or export) into ``model``, by layer name.

  Args:
    model: The model to initialise.
    path: The trained model: a model_dir (its model.keras, else best.keras),
      a .keras file, or a SavedModel export of ``d3tf.export`` (a version
      folder or a model's export folder, e.g. ``savedmodels/d3tf_anycamera``:
      the shipped models can be fine-tuned).
    camera: This run's camera (None: all-in-focus input).
    check_camera: Warn if the trained model's camera (its metadata) differs
      from ``camera``: fine-tuning then starts from features of another blur.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  ref = artifacts.find_export(path)
  if ref is not None:  # A SavedModel export: rebuilt from its model_config.
    from d3tf.serving import keras_restore  # pylint: disable=g-import-not-at-top
    try:
      source, _ = keras_restore.keras_model_from_export(path)
    except (OSError, ValueError) as e:
      raise ValueError(f"training.init_from={path}: {e}") from e
    metadata_at = ref.metadata_path
  else:
    if os.path.isdir(path):
      for name in (artifacts.FINAL_MODEL_FILENAME, artifacts.BEST_MODEL_FILENAME):
        if os.path.exists(os.path.join(path, name)):
          path = os.path.join(path, name)
          break
      else:
        raise ValueError(f"training.init_from={path}: neither model.keras nor best.keras in it")
    if not os.path.exists(path):
      raise ValueError(f"training.init_from={path}: no such file")
    source = keras.models.load_model(path, compile=False)
    metadata_at = path
  try:
    models.copy_weights_by_name(model, source)
  except ValueError as e:
    raise ValueError(f"training.init_from={path}: its weights do not fit this model ({e})") from e
  logging.info("Initialised the weights from %s", path)
  if check_camera:
    _warn_if_other_camera(metadata_at, camera)


def _warn_if_other_camera(path: str, camera) -> None:
  """Logs a warning if the model at ``path`` was trained on another camera than ``camera``."""
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
  try:
    source_camera = artifacts.read_metadata(path).camera
  except (OSError, ValueError) as e:
    logging.info("training.init_from=%s: no camera to compare (%s)", path, e)
    return
  diffs = camera_match.camera_differences(source_camera, camera)
  if diffs:
    logging.warning("training.init_from=%s was trained on another camera than this run's: %s",
                    path, "; ".join(d.replace("(model:", "(init_from:") for d in diffs))
  else:
    logging.info("training.init_from=%s: the same camera as this run (%s)", path,
                 camera_match.describe_camera(camera))


def _finite_or_none(value):
  return float(value) if value is not None and abs(float(value)) != float("inf") else None


def _progress_verbose(choice: str) -> int:
  if choice == "auto":
    choice = "bar" if sys.stdout.isatty() else "line"
  return {"bar": 1, "line": 2, "none": 0}[choice]


# -------------------------------------------------------------- training
def run_training(config: config_lib.ExperimentConfig, model_dir: str, strategy=None, *,
                 on_model_dir: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Trains (or resumes) the experiment ``config`` into ``model_dir``.

  Args:
    config: The experiment (validated here; None fields resolved from the
      dataset).
    model_dir: Folder of the run (created); a folder with a saved training
      state resumes it.
    strategy: A ``tf.distribute.Strategy``; default the one that
      ``config.runtime.distribution_strategy`` names.
    on_model_dir: Called with ``model_dir`` once it is created (after the
      config and the data are checked: a refused run leaves no folder), e.g.
      to write a CLI's ``flags.txt``.

  Returns:
    A summary: ``model_dir``, ``steps`` (global step at the end),
    ``planned_steps``, ``final_model``, ``best_model``, ``monitor``,
    ``best`` (the monitored value of best.keras), ``resumed_from`` (step, or
    None), ``history`` (the per-epoch logs of this call),
    ``weights_digest`` (:func:`weights_digest` of the final weights).

  Raises:
    config_lib.ConfigError: a bad config value (naming the field).
    ValueError: bad data or init_from paths.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  from d3tf import model_files  # pylint: disable=g-import-not-at-top
  from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.training import best_checkpoint  # pylint: disable=g-import-not-at-top
  from d3tf.training import callbacks as callbacks_lib  # pylint: disable=g-import-not-at-top

  task = task_lib.DepthTask(config)
  config = task.config
  data, training = config.data, config.training
  model_dir_abs = os.path.abspath(model_dir)
  logging.info("Outputs go to %s", model_dir_abs)
  runtime = config.runtime
  if strategy is None:
    strategy = get_strategy(runtime.distribution_strategy, runtime.tpu_address)
  replicas = strategy.num_replicas_in_sync
  if data.batch_size % replicas:
    raise config_lib.ConfigError(
        "data.batch_size", data.batch_size, f"data.batch_size={data.batch_size} (the global "
        f"batch) must be a multiple of the {replicas} replicas in sync")
  chief = distribute_lib.is_chief(strategy)
  out_dir = distribute_lib.write_dir(model_dir, strategy)  # Non-chief: a private folder.

  keras.utils.set_random_seed(training.seed)
  camera = task.camera
  if camera is not None:
    logging.info("Camera%s: %s", " of the real photos" if task.render_camera is None else "",
                 camera.to_dict())
  else:
    logging.info("Input: all-in-focus images (no defocus)")
  steps_per_epoch = task.steps_per_epoch
  def train_dataset(step):  # Per replica, through the strategy (the global batch split).
    if runtime.data_service:
      from d3tf.experiment import data_service_lib  # pylint: disable=g-import-not-at-top
      fn = lambda context: data_service_lib.service_dataset(  # pylint: disable=unnecessary-lambda-assignment
          task, runtime.data_service, context, job_name=data_service_lib.job_name(
              model_dir_abs, task))
    else:
      fn = lambda context: task.build_inputs("train", input_context=context, start_step=step)  # pylint: disable=unnecessary-lambda-assignment
    return distribute_lib.distribute_inputs(strategy, fn)
  val = distribute_lib.shard_by_data(task.build_inputs("validation"))
  epochs = training.epochs
  total = epochs * steps_per_epoch
  extra: dict[str, Any] = {}
  blocks = config.model.variational_blocks
  if blocks:
    num_examples, source = task.kl_num_examples
    extra["num_train_examples_source"] = source
    extra.update(kl_weight=training.kl_weight, kl_anneal_steps=training.kl_anneal_steps)
    logging.info("Variational (%s) 3x3 convolutions in decoder blocks %s; KL / %d examples (%s) "
                 "x %g%s", config.model.variational_type, list(blocks), num_examples, source,
                 training.kl_weight, f", warmed up over {training.kl_anneal_steps} steps"
                 if training.kl_anneal_steps else "")
  model_config = task.d3net_config()
  backup_dir = os.path.join(out_dir, artifacts.model_dir.BACKUP_DIRNAME)
  os.makedirs(out_dir, exist_ok=True)  # Only now: a refused run leaves nothing behind.
  # Every worker resumes from the chief's state (the model_dir is shared storage).
  state = callbacks_lib.load_state(os.path.join(model_dir, artifacts.model_dir.BACKUP_DIRNAME))
  if chief:
    if on_model_dir is not None:
      on_model_dir(model_dir)
    _write_config(model_dir, config, resuming=state is not None)
    write_metadata(model_dir, task, model_config, extra)
  if replicas > 1 or not chief:
    logging.info("%s: %d replicas in sync, global batch %d (%d per replica); this is %s",
                 type(strategy).__name__, replicas, data.batch_size, data.batch_size // replicas,
                 "the chief" if chief else f"a worker writing to {out_dir}")

  with distribute_lib.precision_policy(runtime.precision), strategy.scope():
    model = task.build_model(sync_batch_norm=replicas > 1)
    if training.init_from and state is None:
      init_from(model, training.init_from, task.camera,
                check_camera=not config.model.camera_aware)
    task.compile_model(model)
  max_depth = model_config.max_depth_m
  logging.info("D3-Net '%s': %d parameters; loss %s; Adam lr %g beta1 %g; crops %dx%d, batch %d",
               config.model.size, model.count_params(), task.loss_name, training.learning_rate,
               training.beta1, data.crop_size, data.crop_size, data.batch_size)
  start_step, best = 0, None
  if state is not None:
    with strategy.scope():  # The optimizer's variables are built in the strategy's scope.
      start_step = callbacks_lib.restore(model, state)
    best = state["extra"].get("best")
    logging.info("Resuming from step %d (%s)", start_step, state["weights"])
  final_path = os.path.join(model_dir, artifacts.FINAL_MODEL_FILENAME)
  best_path = os.path.join(model_dir, artifacts.BEST_MODEL_FILENAME)
  final_out = os.path.join(out_dir, artifacts.FINAL_MODEL_FILENAME)
  monitor = _MONITOR if val is not None else "loss"
  summary = {"model_dir": model_dir_abs, "planned_steps": total, "final_model": final_path,
             "best_model": best_path, "monitor": monitor, "best": best,
             "resumed_from": start_step if state is not None else None, "history": []}
  if start_step >= total:
    logging.info("Already trained for %d steps (planned %d): nothing to do.", start_step, total)
    model_files.ensure_saved(model, final_out)  # Missing or unreadable after a kill: rewrite.
    distribute_lib.remove_write_dir(model_dir, strategy)
    logging.info("Outputs are in %s", model_dir_abs)
    summary["steps"] = start_step
    return summary

  best_cb = best_checkpoint.BestCheckpoint(  # Atomic, unlike keras' ModelCheckpoint.
      os.path.join(out_dir, artifacts.BEST_MODEL_FILENAME), monitor=monitor, mode="min", initial_value_threshold=best)
  image_batch = None
  if val is not None and training.tensorboard_images:
    for inputs, depth in stream_errors.call(list, val.take(1)):
      image_batch = (tf.nest.map_structure(lambda x: x[:training.tensorboard_images], inputs),
                     depth[:training.tensorboard_images].numpy())
  history = keras.callbacks.History()
  callbacks = [
      best_cb,
      callbacks_lib.ProgressLogger(total, data.batch_size, training.log_every_steps),
      callbacks_lib.TensorBoardLogger(os.path.join(out_dir, artifacts.model_dir.TENSORBOARD_DIRNAME), image_batch,
                                      training.log_every_steps, max_depth_m=max_depth),
      keras.callbacks.CSVLogger(
          os.path.join(out_dir, artifacts.model_dir.METRICS_FILENAME), append=True),
      keras.callbacks.TerminateOnNaN(),
      history,
  ]
  if blocks:
    callbacks.append(callbacks_lib.KLAnnealing(training.kl_anneal_steps, training.kl_weight))
  if training.keep_epoch_models:
    callbacks.append(best_checkpoint.EpochModels(
        os.path.join(out_dir, artifacts.model_dir.EPOCH_MODELS_DIRNAME),
        companions=(artifacts.metadata_path(out_dir), os.path.join(out_dir, CONFIG_FILENAME))))
  callbacks += [
      # Last: a state saved at an epoch end includes the other callbacks' work on it.
      callbacks_lib.StepCheckpoint(
          backup_dir, training.save_every_steps, steps_per_epoch,
          extra_state=lambda: {"best": _finite_or_none(best_cb.best), "monitor": monitor}),
  ]
  logging.info("Training %d epochs of %d steps (%d examples each), from step %d of %d; "
               "validation on %s; the state is saved every %d steps to %s", epochs,
               steps_per_epoch, steps_per_epoch * data.batch_size, start_step, total,
               "a fixed set" if val is not None else "nothing (best by training loss)",
               training.save_every_steps, backup_dir)
  epoch, done_in_epoch = divmod(start_step, steps_per_epoch)
  verbose = _progress_verbose(config.runtime.progress)
  epoch_logs = []
  if done_in_epoch:  # Finish the interrupted epoch first, with its remaining steps.
    stream_errors.call(  # A bad example: a clean DataError, no hang (see stream_errors).
        model.fit, train_dataset(start_step), initial_epoch=epoch, epochs=epoch + 1,
        steps_per_epoch=steps_per_epoch - done_in_epoch, validation_data=val,
        callbacks=callbacks, verbose=verbose, shuffle=False)
    epoch_logs.append(dict(history.history))
    epoch += 1
  if epoch < epochs and not model.stop_training:
    stream_errors.call(
        model.fit, train_dataset(epoch * steps_per_epoch), initial_epoch=epoch, epochs=epochs,
        steps_per_epoch=steps_per_epoch, validation_data=val, callbacks=callbacks,
        verbose=verbose, shuffle=False)
    epoch_logs.append(dict(history.history))
  atomic_io.save_model(model, final_out)  # Every worker saves (a collective); the chief's stays.
  distribute_lib.remove_write_dir(model_dir, strategy)
  if data.on_error == "skip" and chief:
    stream_errors.write_skip_report(task.readers, model_dir)
  steps = int(model.optimizer.iterations.numpy())
  logging.info("Done: %d steps. Final model %s; best (%s %s) %s; TensorBoard: tensorboard "
               "--logdir %s", steps, final_path, monitor, best_cb.best, best_path,
               os.path.join(model_dir_abs, artifacts.model_dir.TENSORBOARD_DIRNAME))
  logging.info("Outputs are in %s", model_dir_abs)
  summary.update(steps=steps, best=_finite_or_none(best_cb.best), history=epoch_logs,
                 weights_digest=weights_digest(model))
  return summary


def weights_digest(model) -> str:
  """SHA-256 of a model's weights (e.g. to check that every worker ends with the same)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  for weight in model.weights:
    digest.update(np.ascontiguousarray(np.asarray(weight.numpy(), np.float32)).tobytes())
  return digest.hexdigest()
