"""Masked depth metrics as streaming Keras metrics, for validation during ``fit``.

They follow :func:`d3tf.metrics.depth_metrics`'s conventions: a pixel is valid
where the ground truth is finite and in ``(0, max_depth_m]``, and predictions
are clipped to ``[min_depth_m, max_depth_m]``. They are **pixel-weighted**
over all batches (sums of errors over valid pixels divided by the count of
valid pixels), which is cheap to stream and fine for picking the best
checkpoint; the evaluation CLI reports the paper's per-image means.
"""

from __future__ import annotations

import keras
import tensorflow as tf

DEFAULT_MAX_DEPTH_M = 10.0
DEFAULT_MIN_DEPTH_M = 1e-3


def _valid_pairs(y_true, y_pred, min_depth_m: float, max_depth_m: float):
  y_true = tf.cast(y_true, tf.float32)
  y_pred = tf.cast(y_pred, tf.float32)
  safe_true = tf.where(tf.math.is_finite(y_true), y_true, tf.zeros_like(y_true))
  valid = tf.logical_and(safe_true > 0.0, safe_true <= max_depth_m)
  pred = tf.clip_by_value(y_pred, min_depth_m, max_depth_m)
  pred = tf.where(tf.math.is_finite(pred), pred, tf.fill(tf.shape(pred), max_depth_m))
  return safe_true, pred, tf.cast(valid, tf.float32)


class _MaskedDepthMetric(keras.metrics.Metric):
  """Base: streams a sum of per-pixel errors and a count of valid pixels."""

  def __init__(self, name: str, max_depth_m: float = DEFAULT_MAX_DEPTH_M,
               min_depth_m: float = DEFAULT_MIN_DEPTH_M, **kwargs):
    super().__init__(name=name, **kwargs)
    if not 0 < min_depth_m < max_depth_m:
      raise ValueError(f"need 0 < min_depth_m < max_depth_m, got {min_depth_m!r}, "
                       f"{max_depth_m!r}")
    self.max_depth_m = float(max_depth_m)
    self.min_depth_m = float(min_depth_m)
    self.total = self.add_variable(shape=(), initializer="zeros", name="total")
    self.count = self.add_variable(shape=(), initializer="zeros", name="count")

  def _errors(self, gt, pred):
    raise NotImplementedError

  def update_state(self, y_true, y_pred, sample_weight=None):
    del sample_weight  # Invalid pixels are masked by the ground truth itself.
    gt, pred, valid = _valid_pairs(y_true, y_pred, self.min_depth_m, self.max_depth_m)
    safe_gt = tf.where(valid > 0, gt, tf.ones_like(gt))
    errors = self._errors(safe_gt, pred) * valid
    self.total.assign_add(tf.reduce_sum(errors))
    self.count.assign_add(tf.reduce_sum(valid))

  def reset_state(self):
    self.total.assign(0.0)
    self.count.assign(0.0)

  def get_config(self):
    return {"name": self.name, "max_depth_m": self.max_depth_m,
            "min_depth_m": self.min_depth_m}


@keras.saving.register_keras_serializable(package="d3tf")
class MaskedAbsRel(_MaskedDepthMetric):
  """Mean absolute relative error ``|pred - gt| / gt`` over valid pixels ("rel")."""

  def __init__(self, name: str = "rel", **kwargs):
    super().__init__(name=name, **kwargs)

  def _errors(self, gt, pred):
    return tf.abs(pred - gt) / gt

  def result(self):
    return tf.math.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="d3tf")
class MaskedRMS(_MaskedDepthMetric):
  """Root mean squared error in metres over valid pixels ("rms")."""

  def __init__(self, name: str = "rms", **kwargs):
    super().__init__(name=name, **kwargs)

  def _errors(self, gt, pred):
    return tf.square(pred - gt)

  def result(self):
    return tf.sqrt(tf.math.divide_no_nan(self.total, self.count))
