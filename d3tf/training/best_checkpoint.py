"""Saves the best model so far, atomically (Keras' ModelCheckpoint writes in place).

Keras 3's ``ModelCheckpoint`` calls ``model.save(filepath)`` directly, so a
kill during the save leaves a truncated ``best.keras``. :class:`BestCheckpoint`
does the same job for d3tf's one use (save when the monitored value improves,
at epoch ends) through :func:`d3tf.atomic_io.save_model`.
"""

from __future__ import annotations

import math

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
