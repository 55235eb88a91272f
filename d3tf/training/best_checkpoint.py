"""Saves the best model so far, atomically (Keras' ModelCheckpoint writes in place).

Keras 3's ``ModelCheckpoint`` calls ``model.save(filepath)`` directly, so a
kill during the save leaves a truncated ``best.keras``. :class:`BestCheckpoint`
does the same job for d3tf's one use (save when the monitored value improves,
at epoch ends) through :func:`d3tf.atomic_io.save_model`.
"""

from __future__ import annotations

import math
import os

from absl import logging
import keras

from d3tf import atomic_io


class BestCheckpoint(keras.callbacks.Callback):
  """Saves the model to ``path`` at each epoch end where ``monitor`` improves.

  Args:
    path: The ``.keras`` file.
    monitor: The log to watch (e.g. ``"val_rel"``, ``"loss"``).
    mode: ``"min"`` or ``"max"``.
    initial_value_threshold: The best value so far (from a resumed run), or
      None.

  Attributes:
    best: The best value seen (``inf`` / ``-inf`` before any).
  """

  def __init__(self, path: str, monitor: str, mode: str = "min",
               initial_value_threshold: float | None = None):
    super().__init__()
    if mode not in ("min", "max"):
      raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    self.path = path
    self.monitor = monitor
    self.mode = mode
    if initial_value_threshold is not None:
      self.best = float(initial_value_threshold)
    else:
      self.best = math.inf if mode == "min" else -math.inf

  def _improved(self, value: float) -> bool:
    return value < self.best if self.mode == "min" else value > self.best

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is None:
      logging.warning("BestCheckpoint: %r not in the logs (%s); %s not saved", self.monitor,
                      sorted(logs or {}), self.path)
      return
    value = float(value)
    if math.isfinite(value) and self._improved(value):
      self.best = value
      atomic_io.save_model(self.model, self.path)


class EpochModels(keras.callbacks.Callback):
  """Saves the model at each epoch end as ``folder/epoch_NNN.keras`` (NNN from 1), atomically.

  The snapshots of a run's last epochs are what weight averaging
  (``python -m d3tf.average``) averages. A resumed run overwrites the
  snapshot of an epoch it repeats. The run's ``d3tf_metadata.json`` and
  ``config.json`` are copied beside them, so that every snapshot reads as a
  model file with its metadata.

  Args:
    folder: Where the snapshots go (created).
    companions: Files copied into ``folder`` when training begins (those
      that exist).
  """

  def __init__(self, folder: str, companions: tuple[str, ...] = ()):
    super().__init__()
    self.folder = folder
    self.companions = tuple(companions)

  @staticmethod
  def filename(epoch: int) -> str:
    """The snapshot's file name after 0-based ``epoch``."""
    return f"epoch_{epoch + 1:03d}.keras"

  def on_train_begin(self, logs=None):
    os.makedirs(self.folder, exist_ok=True)
    for path in self.companions:
      if os.path.isfile(path):
        with open(path, "rb") as f:
          atomic_io.write_bytes(os.path.join(self.folder, os.path.basename(path)), f.read())

  def on_epoch_end(self, epoch, logs=None):
    atomic_io.save_model(self.model, os.path.join(self.folder, self.filename(epoch)))
