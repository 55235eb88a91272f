"""Keras callbacks of ``python -m d3tf.train``.

* :class:`StepCheckpoint`: saves model weights, optimizer state and the step
  counter every N steps and at every epoch end, atomically, and restores them
  so that a killed run resumes **mid-epoch** (Keras 3.15's
  ``BackupAndRestore`` records the batch but, on restore, restarts the
  interrupted epoch from its first step, repeating those steps).
* :class:`ProgressLogger`: absl log lines with loss, examples/s and ETA.
* :class:`TensorBoardLogger`: scalars and validation images (input, ground
  truth, prediction, absolute error), written with TensorFlow alone.
* :class:`KLAnnealing`: linear warm-up of the KL weight of variational layers.

The global step is always ``model.optimizer.iterations`` (saved with the
optimizer), so every log and checkpoint agrees on it across restarts.
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any, Callable, Mapping

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from d3tf import atomic_io
from d3tf.training import summaries

STATE_FILE = "state.json"
#: Training logs written as TensorBoard batch scalars (those present).
BATCH_SCALARS = ("loss", "nll", "data_loss", "kl")
_WEIGHTS_PATTERN = "ckpt-{step:09d}.weights.h5"


def _global_step(model: keras.Model) -> int:
  return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def load_state(backup_dir: str) -> dict[str, Any] | None:
  """The last saved training state in ``backup_dir``, or None if there is none.

  Returns:
    ``{"global_step": int, "weights": absolute path of the weights file,
    "extra": dict}``.

  Raises:
    ValueError: the state file is corrupt or names a missing weights file.
  """
  path = os.path.join(backup_dir, STATE_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      state = json.load(f)
    weights = os.path.join(backup_dir, state["weights"])
    step = int(state["global_step"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path}: unreadable training state ({e}); delete {backup_dir} to start "
                     "from scratch") from e
  if not os.path.exists(weights):
    raise ValueError(f"{path} names the weights file {weights}, which is missing; delete "
                     f"{backup_dir} to start from scratch")
  return {"global_step": step, "weights": weights, "extra": state.get("extra", {})}


def restore(model: keras.Model, state: Mapping[str, Any]) -> int:
  """Loads the weights and optimizer state of ``state`` into a compiled, built model.

  Returns:
    The restored global step (the optimizer's iteration count).
  """
  if not model.optimizer.built:
    model.optimizer.build(model.trainable_variables)
  model.load_weights(state["weights"])
  step = _global_step(model)
  if step != state["global_step"]:
    raise ValueError(f"{state['weights']}: restored optimizer step {step} differs from the "
                     f"state file's {state['global_step']}")
  return step


class StepCheckpoint(keras.callbacks.Callback):
  """Saves the full training state every ``save_every_steps`` steps and at epoch ends.

  Each save writes ``ckpt-<step>.weights.h5`` (model weights, optimizer
  variables including the step counter, metric variables), then replaces
  ``state.json`` atomically, then deletes older weight files: a kill at any
  moment leaves a consistent state.

  Put it last in the callback list, so that a state saved at an epoch end
  comes after every other callback has finished that epoch (validation, best
  model, CSV row); a step that ends an epoch is saved only then.

  Args:
    backup_dir: Folder of the checkpoints (created).
    save_every_steps: Steps between saves (0: only at epoch ends).
    steps_per_epoch: Steps of a full epoch (global steps that are multiples
      of it end an epoch).
    extra_state: Optional function returning JSON-serialisable values stored
      with each checkpoint (e.g. the best validation value so far).
  """

  def __init__(self, backup_dir: str, save_every_steps: int, steps_per_epoch: int,
               extra_state: Callable[[], Mapping[str, Any]] | None = None):
    super().__init__()
    if save_every_steps < 0:
      raise ValueError(f"save_every_steps must be >= 0, got {save_every_steps!r}")
    if steps_per_epoch < 1:
      raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch!r}")
    self.steps_per_epoch = int(steps_per_epoch)
    self.backup_dir = backup_dir
    self.save_every_steps = int(save_every_steps)
    self.extra_state = extra_state
    self._last_saved = None

  def save(self) -> int:
    """Saves now; returns the global step saved."""
    step = _global_step(self.model)
    if step == self._last_saved:
      return step
    os.makedirs(self.backup_dir, exist_ok=True)
    name = _WEIGHTS_PATTERN.format(step=step)
    # Atomic: the weights go to a temporary name, then replace (an epoch end saves the step
    # state.json may already name); state.json is replaced only after them.
    tmp_weights = os.path.join(self.backup_dir, name[:-len(".weights.h5")] + ".tmp.weights.h5")
    self.model.save_weights(tmp_weights, overwrite=True)
    atomic_io.publish(tmp_weights, os.path.join(self.backup_dir, name))
    state = {"global_step": step, "weights": name, "saved_at": time.time(),
             "extra": dict(self.extra_state()) if self.extra_state else {}}
    atomic_io.write_text(os.path.join(self.backup_dir, STATE_FILE), json.dumps(state, indent=2))
    for old in glob.glob(os.path.join(self.backup_dir, "ckpt-*.weights.h5")):
      if os.path.basename(old) != name:
        os.remove(old)
    self._last_saved = step
    logging.debug("Saved training state at step %d to %s", step, self.backup_dir)
    return step

  def on_train_batch_end(self, batch, logs=None):
    step = _global_step(self.model)
    if (self.save_every_steps and step % self.save_every_steps == 0 and
        step % self.steps_per_epoch):
      self.save()

  def on_epoch_end(self, epoch, logs=None):
    self._last_saved = None  # Save again: the best value may have changed.
    self.save()

  def on_train_end(self, logs=None):
    self.save()


def _format_duration(seconds: float) -> str:
  seconds = int(round(max(seconds, 0.0)))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _format_logs(logs: Mapping[str, Any] | None) -> str:
  return ", ".join(f"{k} {float(v):.4g}" for k, v in sorted((logs or {}).items())
                   if np.ndim(v) == 0)


class ProgressLogger(keras.callbacks.Callback):
  """Logs loss, throughput (examples/s) and ETA every N steps and at each epoch end.

  Args:
    total_steps: Steps of the whole run (all epochs).
    batch_size: Examples per step.
    log_every_steps: Steps between log lines (0: epoch ends only).
  """

  def __init__(self, total_steps: int, batch_size: int, log_every_steps: int):
    super().__init__()
    self.total_steps = int(total_steps)
    self.batch_size = int(batch_size)
    self.log_every_steps = int(log_every_steps)
    self._t0 = None
    self._step0 = 0
    self._window = None

  def _rate(self, step: int) -> float:
    elapsed = time.perf_counter() - self._t0
    return (step - self._step0) / elapsed if elapsed > 0 and step > self._step0 else 0.0

  def _line(self, step: int) -> str:
    rate = self._rate(step)
    eta = (self.total_steps - step) / rate if rate > 0 else float("nan")
    return (f"step {step}/{self.total_steps}, {rate * self.batch_size:.1f} examples/s "
            f"({rate:.2f} steps/s), ETA {_format_duration(eta) if np.isfinite(eta) else '?'}")

  def on_train_begin(self, logs=None):
    # Timing starts at the first finished step, so graph tracing is not counted.
    self._t0 = None

  def on_train_batch_end(self, batch, logs=None):
    step = _global_step(self.model)
    if self._t0 is None:
      self._t0, self._step0 = time.perf_counter(), step
      return
    if self.log_every_steps and step % self.log_every_steps == 0:
      logging.info("%s; %s", self._line(step), _format_logs(logs))

  def on_epoch_end(self, epoch, logs=None):
    step = _global_step(self.model)
    logging.info("Epoch %d done: %s; %s", epoch + 1, self._line(step) if self._t0 else
                 f"step {step}/{self.total_steps}", _format_logs(logs))


class KLAnnealing(keras.callbacks.Callback):
  """Linear warm-up of the KL term of every variational layer.

  Before each training step the weight is set to ``final_weight *
  min(1, global_step / warmup_steps)`` (the step counted from 0), so the
  first steps fit the data almost without the prior's pull and the full KL
  applies from step ``warmup_steps`` on. The weight is a function of the
  global step alone, so a resumed run continues the same schedule. The weight
  only scales the loss: predictions do not depend on it.

  Args:
    warmup_steps: Steps of the ramp (0: ``final_weight`` from the start).
    final_weight: Weight after the ramp (1: the plain ELBO with the layers'
      ``1 / num_train_examples`` scaling).
  """

  def __init__(self, warmup_steps: int, final_weight: float = 1.0):
    super().__init__()
    if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
      raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
    if not 0.0 <= float(final_weight) < float("inf"):
      raise ValueError(f"final_weight must be >= 0 and finite, got {final_weight!r}")
    self.warmup_steps = int(warmup_steps)
    self.final_weight = float(final_weight)
    self.weight = None

  def weight_at(self, step: int) -> float:
    """The KL weight used for the step ``step`` (0-based global step)."""
    if self.warmup_steps == 0:
      return self.final_weight
    return self.final_weight * min(1.0, step / self.warmup_steps)

  def _set(self) -> None:
    from d3tf.models import set_kl_weight  # pylint: disable=g-import-not-at-top
    weight = self.weight_at(_global_step(self.model))
    if weight != self.weight:
      set_kl_weight(self.model, weight)
      self.weight = weight

  def on_train_begin(self, logs=None):
    self.weight = None
    self._set()

  def on_train_batch_begin(self, batch, logs=None):
    self._set()


class TensorBoardLogger(keras.callbacks.Callback):
  """Writes TensorBoard scalars and validation images under ``log_dir``.

  ``log_dir/train``: ``batch_loss`` every N steps (and ``batch_kl``,
  ``batch_nll`` / ``batch_data_loss`` for a Bayesian model), ``epoch_<metric>``
  at each epoch end; ``log_dir/validation``: ``epoch_<metric>``
  of the validation pass, and images of a fixed validation batch: ``input``,
  ``ground_truth`` and ``prediction`` (colour-mapped depth, 0 to
  ``max_depth_m``) and ``abs_error`` (0 to ``max_error_m``). The x axis is the
  global step.

  Args:
    log_dir: Folder of the event files.
    image_batch: ``(inputs [N, H, W, 3] in [0, 1], depth [N, H, W, 1])`` to
      draw at each epoch end, or None for no images.
    log_every_steps: Steps between batch scalars (0: none).
    max_depth_m: Top of the depth colour scale.
    max_error_m: Top of the error colour scale.
  """

  def __init__(self, log_dir: str, image_batch=None, log_every_steps: int = 50,
               max_depth_m: float = 10.0, max_error_m: float = 2.0):
    super().__init__()
    self.log_dir = log_dir
    self.image_batch = image_batch
    self.log_every_steps = int(log_every_steps)
    self.max_depth_m = float(max_depth_m)
    self.max_error_m = float(max_error_m)
    self._writers = None
    self._predict_fn = None

  def _writer(self, name: str):
    if self._writers is None:
      self._writers = {k: tf.summary.create_file_writer(os.path.join(self.log_dir, k))
                       for k in ("train", "validation")}
    return self._writers[name]

  def on_train_batch_end(self, batch, logs=None):
    step = _global_step(self.model)
    if self.log_every_steps and step % self.log_every_steps == 0 and logs and "loss" in logs:
      with self._writer("train").as_default():
        for key in BATCH_SCALARS:
          if key in logs and np.ndim(logs[key]) == 0:
            summaries.write_scalar(f"batch_{key}", logs[key], step)

  def on_epoch_end(self, epoch, logs=None):
    step = _global_step(self.model)
    logs = dict(logs or {})
    with self._writer("train").as_default():
      for key, value in logs.items():
        if not key.startswith("val_") and np.ndim(value) == 0:
          summaries.write_scalar(f"epoch_{key}", value, step)
      summaries.write_scalar("epoch", epoch + 1, step)
    with self._writer("validation").as_default():
      for key, value in logs.items():
        if key.startswith("val_") and np.ndim(value) == 0:
          summaries.write_scalar(f"epoch_{key[4:]}", value, step)
      if self.image_batch is not None:
        self._write_images(step)
    for writer in self._writers.values():
      writer.flush()

  def _predict(self, inputs):
    """``model(inputs, training=False)`` in a ``tf.function`` traced once per model.

    Called eagerly, a functional D3-Net keeps every layer's output until the call returns (the
    full model at batch 4, 256x256: 1.3 GB of tensors, more than its train step;
    ``benchmarks/results/train_step.md``); a traced call frees each as soon as it is used.
    Not ``predict_on_batch``: under a ``tf.distribute`` strategy that gives every replica the
    whole batch and returns their outputs concatenated.
    """
    model = self.model
    if self._predict_fn is None or self._predict_fn[0] is not model:
      self._predict_fn = (model, tf.function(lambda x: model(x, training=False)))
    return self._predict_fn[1](inputs)

  def _write_images(self, step: int) -> None:
    inputs, depth = self.image_batch
    pred = self._predict(inputs)
    if isinstance(pred, Mapping):  # A model with an aleatoric head.
      pred = pred["depth"]
    pred = keras.ops.convert_to_numpy(pred)
    depth = np.asarray(depth)
    error = np.where(depth > 0, np.abs(pred - depth), np.nan)
    summaries.write_images("input", np.asarray(
        inputs["image"] if isinstance(inputs, Mapping) else inputs), step)
    summaries.write_images("ground_truth", summaries.colorize(depth, 0.0, self.max_depth_m), step)
    summaries.write_images("prediction", summaries.colorize(pred, 0.0, self.max_depth_m), step)
    summaries.write_images("abs_error", summaries.colorize(error, 0.0, self.max_error_m,
                                                           cmap="inferno"), step)

  def on_train_end(self, logs=None):
    for writer in (self._writers or {}).values():
      writer.flush()
