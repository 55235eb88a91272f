"""Training losses for metric depth, all masked to valid ground truth.

Every loss is ``fn(y_true, y_pred) -> scalar float32`` with ``y_true`` and
``y_pred`` depth in metres, ``[B, H, W, 1]`` (``[B, H, W]`` also works; a
rank difference of one is resolved by adding a channel axis). Ground truth
that is zero, negative or non-finite marks an invalid pixel: it is left out of
the loss and gets no gradient, and a batch without a valid pixel gives a loss
of exactly 0 and zero gradients (never NaN). They are plain TensorFlow ops,
so they run inside ``tf.function`` and ``model.fit``; they are registered as
Keras serializables (package ``d3tf``) so that a model compiled with them can
be saved and reloaded.

* ``"l1"``: mean absolute error over valid pixels (the paper's loss).
* ``"berhu"``: reverse Huber (Laina et al., 3DV 2016): ``|r|`` where ``|r| <=
  c``, ``(r^2 + c^2) / (2c)`` beyond, with ``c = 0.2 * max |r|`` over the
  batch's valid pixels (held constant for the gradient).
* ``"silog"``: scale-invariant log loss (Eigen et al., NIPS 2014, eq. 4),
  per image ``mean(g^2) - lambda * mean(g)^2`` with ``g = ln pred - ln gt``,
  averaged over the images that have valid pixels. ``lambda = 0.85`` (as in
  BTS, Lee et al. 2019): ``lambda = 1`` would be fully scale-invariant and
  could not learn metric scale, Eigen et al. used 0.5; 0.85 mostly ignores a
  global scale error but keeps some of it. Predictions are clamped to
  ``>= 1e-3`` m inside the log.
* ``"gradient"``: L1 plus multi-scale gradient matching (Li & Snavely,
  MegaDepth, CVPR 2018; MiDaS): on the residual ``r = pred - gt`` in metres,
  the mean of ``|dr/dx| + |dr/dy|`` over pixel pairs whose two ends are
  valid, at 4 scales (strided subsampling by 1, 2, 4, 8, which never mixes
  invalid pixels in), averaged over scales and weighted by 0.5 against L1.
  It penalises wrong depth edges and surface slopes that L1 alone tolerates.
* ``"log_l1"``: mean ``|ln pred - ln gt|`` over valid pixels (predictions
  clamped to ``>= 1e-3`` m): L1 on log depth, so an error costs in proportion
  to the depth (a 10 cm error at 1 m as much as 1 m at 10 m), as the relative
  error ``rel`` scores it; unlike ``silog`` it keeps the metric scale.

Use :func:`get_loss` to pick one by name (``--loss`` of ``d3tf.train``).

Negative log-likelihoods, for a model with an aleatoric head that predicts a
per-pixel log-scale ``s`` besides the depth ``mu`` (metres), averaged over
the valid pixels like the losses above:

* ``gaussian_nll_loss``: ``s + 0.5 * ((y - mu) / exp(s))^2 + 0.5 * ln(2 pi)``
  (``exp(s)`` the standard deviation); the aleatoric analogue of L2;
* ``laplace_nll_loss``: ``s + |y - mu| / exp(s) + ln 2`` (``exp(s)`` the
  Laplace scale ``b``, variance ``2 b^2``); the analogue of the paper's L1.

Their ``y_pred`` is the model's output dict ``{"depth": mu, "log_scale":
s}`` (or a ``[..., 2]`` tensor, depth then log-scale; or pass ``log_scale=``
explicitly). Pick one with :func:`get_nll_loss`.

This module is a leaf: it imports nothing else of d3tf.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import keras
import tensorflow as tf

#: Names accepted by :func:`get_loss`.
LOSS_NAMES = ("l1", "berhu", "silog", "gradient", "log_l1")
#: Names accepted by :func:`get_nll_loss` (the aleatoric likelihoods).
NLL_NAMES = ("gaussian", "laplace")
BERHU_FRACTION = 0.2
SILOG_LAMBDA = 0.85
GRADIENT_SCALES = 4
GRADIENT_WEIGHT = 0.5
#: Predictions are clamped to at least this (metres) inside logarithms.
LOG_MIN_DEPTH_M = 1e-3
# Lower bound of berHu's threshold, so that a perfect prediction cannot divide by 0.
_BERHU_MIN_C = 1e-6


def _prepare(y_true, y_pred) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """float32 ``(y_true with invalid set to 1, y_pred, valid mask)`` of one rank."""
  y_true = tf.cast(tf.convert_to_tensor(y_true), tf.float32)
  y_pred = tf.cast(tf.convert_to_tensor(y_pred), tf.float32)
  rank_true, rank_pred = y_true.shape.rank, y_pred.shape.rank
  if rank_true is not None and rank_pred is not None:
    if rank_true == rank_pred - 1:
      y_true = y_true[..., None]
    elif rank_pred == rank_true - 1:
      y_pred = y_pred[..., None]
    elif rank_true != rank_pred:
      raise ValueError(f"y_true and y_pred ranks must match (or differ by a channel axis), got "
                       f"shapes {y_true.shape} and {y_pred.shape}")
  valid = tf.math.is_finite(y_true) & (y_true > 0)
  # Invalid ground truth becomes a harmless 1 m, so no NaN/inf enters any branch (tf.where
  # passes a zero gradient to the unselected branch, but 0 * NaN would still be NaN).
  safe_true = tf.where(valid, y_true, tf.ones_like(y_true))
  return safe_true, y_pred, valid


def _masked_mean(values: tf.Tensor, valid: tf.Tensor, axis=None) -> tf.Tensor:
  """Mean of ``values`` over ``valid``; 0 where nothing is valid."""
  values = tf.where(valid, values, tf.zeros_like(values))
  total = tf.reduce_sum(values, axis=axis)
  count = tf.reduce_sum(tf.cast(valid, tf.float32), axis=axis)
  return total / tf.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="d3tf")
def l1_loss(y_true, y_pred) -> tf.Tensor:
  """Mean absolute error (metres) over the valid pixels.

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: Predicted depth, metres, same shape.

  Returns:
    Scalar float32; 0 for a batch without a valid pixel.
  """
  y_true, y_pred, valid = _prepare(y_true, y_pred)
  return _masked_mean(tf.abs(y_pred - y_true), valid)


@keras.saving.register_keras_serializable(package="d3tf")
def berhu_loss(y_true, y_pred) -> tf.Tensor:
  """Reverse Huber loss with ``c = 0.2 * max |residual|`` over the batch's valid pixels.

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: Predicted depth, metres, same shape.

  Returns:
    Scalar float32; 0 for a batch without a valid pixel.
  """
  y_true, y_pred, valid = _prepare(y_true, y_pred)
  residual = tf.where(valid, tf.abs(y_pred - y_true), tf.zeros_like(y_true))
  c = tf.stop_gradient(tf.maximum(BERHU_FRACTION * tf.reduce_max(residual), _BERHU_MIN_C))
  values = tf.where(residual <= c, residual, (tf.square(residual) + tf.square(c)) / (2.0 * c))
  return _masked_mean(values, valid)


def _per_image_axes(x: tf.Tensor) -> list[int]:
  rank = x.shape.rank
  if rank is None:
    raise ValueError("silog_loss needs inputs of known rank")
  return list(range(1, rank))


@keras.saving.register_keras_serializable(package="d3tf")
def silog_loss(y_true, y_pred) -> tf.Tensor:
  """Scale-invariant log loss of Eigen et al. with ``lambda = 0.85``.

  Per image: ``mean(g^2) - 0.85 * mean(g)^2`` over its valid pixels, with ``g
  = ln(max(pred, 1e-3)) - ln(gt)``; then the mean over images that have valid
  pixels.

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: Predicted depth, metres, same shape.

  Returns:
    Scalar float32 (>= 0); 0 for a batch without a valid pixel.
  """
  y_true, y_pred, valid = _prepare(y_true, y_pred)
  log_diff = tf.math.log(tf.maximum(y_pred, LOG_MIN_DEPTH_M)) - tf.math.log(y_true)
  axes = _per_image_axes(log_diff)
  mean_sq = _masked_mean(tf.square(log_diff), valid, axis=axes)
  mean = _masked_mean(log_diff, valid, axis=axes)
  per_image = mean_sq - SILOG_LAMBDA * tf.square(mean)
  has_pixels = tf.reduce_any(valid, axis=axes)
  return _masked_mean(per_image, has_pixels)


@keras.saving.register_keras_serializable(package="d3tf")
def log_l1_loss(y_true, y_pred) -> tf.Tensor:
  """Mean ``|ln(max(pred, 1e-3)) - ln(gt)|`` over the valid pixels.

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: Predicted depth, metres, same shape.

  Returns:
    Scalar float32 (>= 0); 0 for a batch without a valid pixel.
  """
  y_true, y_pred, valid = _prepare(y_true, y_pred)
  log_diff = tf.math.log(tf.maximum(y_pred, LOG_MIN_DEPTH_M)) - tf.math.log(y_true)
  return _masked_mean(tf.abs(log_diff), valid)


def gradient_matching_term(y_true, y_pred, scales: int = GRADIENT_SCALES) -> tf.Tensor:
  """Multi-scale gradient matching on the residual ``pred - gt`` (metres).

  At scale ``s`` the maps are subsampled with stride ``2**s``; the term is the
  mean of ``|r[i, j+1] - r[i, j]|`` and ``|r[i+1, j] - r[i, j]|`` over the
  pairs whose two pixels are valid (0 when none is), averaged over scales.

  Args:
    y_true: Ground-truth depth, ``[B, H, W, 1]``; <= 0 or non-finite is
      invalid.
    y_pred: Predicted depth, same shape.
    scales: Number of scales (>= 1).

  Returns:
    Scalar float32.
  """
  if scales < 1:
    raise ValueError(f"scales must be >= 1, got {scales!r}")
  y_true, y_pred, valid = _prepare(y_true, y_pred)
  if y_true.shape.rank == 3:
    y_true, y_pred, valid = y_true[..., None], y_pred[..., None], valid[..., None]
  residual = tf.where(valid, y_pred - y_true, tf.zeros_like(y_true))
  terms = []
  for s in range(scales):
    step = 2 ** s
    r = residual[:, ::step, ::step, :]
    v = valid[:, ::step, ::step, :]
    dx = tf.abs(r[:, :, 1:, :] - r[:, :, :-1, :])
    vx = v[:, :, 1:, :] & v[:, :, :-1, :]
    dy = tf.abs(r[:, 1:, :, :] - r[:, :-1, :, :])
    vy = v[:, 1:, :, :] & v[:, :-1, :, :]
    total = (tf.reduce_sum(tf.where(vx, dx, tf.zeros_like(dx))) +
             tf.reduce_sum(tf.where(vy, dy, tf.zeros_like(dy))))
    count = tf.reduce_sum(tf.cast(vx, tf.float32)) + tf.reduce_sum(tf.cast(vy, tf.float32))
    terms.append(total / tf.maximum(count, 1.0))
  return tf.add_n(terms) / float(scales)


@keras.saving.register_keras_serializable(package="d3tf")
def gradient_loss(y_true, y_pred) -> tf.Tensor:
  """L1 plus 0.5 times the 4-scale gradient-matching term (see the module docstring).

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: Predicted depth, metres, same shape.

  Returns:
    Scalar float32; 0 for a batch without a valid pixel.
  """
  return l1_loss(y_true, y_pred) + GRADIENT_WEIGHT * gradient_matching_term(y_true, y_pred)


_LOSSES: dict[str, Callable[..., tf.Tensor]] = {
    "l1": l1_loss,
    "berhu": berhu_loss,
    "silog": silog_loss,
    "gradient": gradient_loss,
    "log_l1": log_l1_loss,
}


def _split_prediction(y_pred, log_scale) -> tuple[tf.Tensor, tf.Tensor]:
  """``(depth, log_scale)`` from a dict, a ``[..., 2]`` tensor, or depth plus ``log_scale``."""
  if log_scale is not None:
    return y_pred, log_scale
  if isinstance(y_pred, Mapping):
    missing = {"depth", "log_scale"} - set(y_pred)
    if missing:
      raise ValueError(f"y_pred dict needs 'depth' and 'log_scale', missing {sorted(missing)} "
                       f"(got keys {sorted(y_pred)})")
    return y_pred["depth"], y_pred["log_scale"]
  y_pred = tf.convert_to_tensor(y_pred)
  if y_pred.shape.rank is None or y_pred.shape[-1] != 2:
    raise ValueError("y_pred must be a dict with 'depth' and 'log_scale', or a [..., 2] tensor "
                     f"(depth, log-scale), or log_scale must be given; got shape {y_pred.shape}")
  return y_pred[..., :1], y_pred[..., 1:]


def _nll(y_true, y_pred, log_scale, per_pixel) -> tf.Tensor:
  depth, log_scale = _split_prediction(y_pred, log_scale)
  y_true, depth, valid = _prepare(y_true, depth)
  log_scale = tf.cast(tf.convert_to_tensor(log_scale), tf.float32)
  if log_scale.shape.rank is not None and depth.shape.rank is not None:
    if log_scale.shape.rank == depth.shape.rank - 1:
      log_scale = log_scale[..., None]
  log_scale = tf.broadcast_to(log_scale, tf.shape(depth))
  # Invalid pixels get a harmless residual 0 and log-scale 0 (no NaN into either branch).
  residual = tf.where(valid, depth - y_true, tf.zeros_like(depth))
  log_scale = tf.where(valid, log_scale, tf.zeros_like(log_scale))
  return _masked_mean(per_pixel(residual, log_scale), valid)


@keras.saving.register_keras_serializable(package="d3tf")
def gaussian_nll_loss(y_true, y_pred, log_scale=None) -> tf.Tensor:
  """Gaussian negative log-likelihood (nats per valid pixel) with a predicted log-sigma.

  Per pixel ``s + 0.5 * ((y - mu) * exp(-s))^2 + 0.5 * ln(2 pi)``.

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: ``{"depth": mu, "log_scale": s}`` (``[B, H, W, 1]`` each), a
      ``[B, H, W, 2]`` tensor (mu, s), or mu alone when ``log_scale`` is given.
    log_scale: Optional ``s = ln sigma`` (sigma in metres), same shape as mu.

  Returns:
    Scalar float32; 0 for a batch without a valid pixel.
  """
  half_log_2pi = 0.5 * math.log(2.0 * math.pi)
  return _nll(y_true, y_pred, log_scale, lambda r, s: (
      s + 0.5 * tf.square(r * tf.exp(-s)) + half_log_2pi))


@keras.saving.register_keras_serializable(package="d3tf")
def laplace_nll_loss(y_true, y_pred, log_scale=None) -> tf.Tensor:
  """Laplace negative log-likelihood (nats per valid pixel) with a predicted log-scale.

  Per pixel ``s + |y - mu| * exp(-s) + ln 2`` (``b = exp(s)``, variance
  ``2 b^2``).

  Args:
    y_true: Ground-truth depth, metres, ``[B, H, W, 1]``; <= 0 or non-finite
      is invalid.
    y_pred: ``{"depth": mu, "log_scale": s}`` (``[B, H, W, 1]`` each), a
      ``[B, H, W, 2]`` tensor (mu, s), or mu alone when ``log_scale`` is given.
    log_scale: Optional ``s = ln b`` (b in metres), same shape as mu.

  Returns:
    Scalar float32; 0 for a batch without a valid pixel.
  """
  log_2 = math.log(2.0)
  return _nll(y_true, y_pred, log_scale, lambda r, s: s + tf.abs(r) * tf.exp(-s) + log_2)


def get_nll_loss(name: str) -> Callable[..., tf.Tensor]:
  """The negative log-likelihood of an aleatoric head, by distribution name.

  Args:
    name: "gaussian" or "laplace" (case-insensitive).

  Returns:
    ``fn(y_true, y_pred) -> scalar`` whose ``y_pred`` is the output dict.

  Raises:
    ValueError: an unknown name (listing the known ones).
  """
  key = str(name).strip().lower()
  table = {"gaussian": gaussian_nll_loss, "laplace": laplace_nll_loss}
  if key not in table:
    raise ValueError(f"Unknown likelihood {name!r}; choose one of {list(NLL_NAMES)}")
  return table[key]


def get_loss(name: str) -> Callable[..., tf.Tensor]:
  """The loss function called ``name``.

  Args:
    name: One of :data:`LOSS_NAMES`: "l1", "berhu", "silog", "gradient",
      "log_l1" (case-insensitive).

  Returns:
    ``fn(y_true, y_pred) -> scalar``, usable as ``model.compile(loss=fn)``.

  Raises:
    ValueError: an unknown name (the message lists the known ones).
  """
  key = str(name).strip().lower()
  if key not in _LOSSES:
    raise ValueError(f"Unknown loss {name!r}; choose one of {list(LOSS_NAMES)}")
  return _LOSSES[key]


@keras.saving.register_keras_serializable(package="d3tf")
class GlobalBatchLoss(keras.losses.Loss):
  """One of the losses above, scaled for ``tf.distribute``: its value / replicas in sync.

  Under a strategy each replica computes the loss on its share of the global
  batch and the gradients of the replicas are summed, so each replica's loss
  must be divided by the number of replicas for the sum to be the gradient of
  the mean over the global batch (``tf.nn.compute_average_loss``). Keras 3.15
  divides the losses it reduces itself (``sum_over_batch_size``) and every
  ``add_loss`` term so, but returns a loss function's scalar as it is; the
  losses here are scalars (masked means), so compile with this wrapper
  (:meth:`d3tf.experiment.task.DepthTask.build_losses` does). With equal valid
  pixel counts on the replicas the result is exactly the global-batch mean;
  otherwise it is the mean of the replicas' means. On one device it is the
  plain loss.

  Args:
    loss: A name of :data:`LOSS_NAMES`, or ``"gaussian_nll"`` /
      ``"laplace_nll"`` (the aleatoric likelihoods, taking the output dict).
  """

  def __init__(self, loss: str = "l1", name: str | None = None, **kwargs):
    kwargs.pop("reduction", None)
    super().__init__(name=name or f"{loss}_loss", **kwargs)
    key = str(loss).strip().lower()
    if key.endswith("_nll"):
      self.fn = get_nll_loss(key[:-len("_nll")])
    else:
      self.fn = get_loss(key)
    self.loss = key

  def __call__(self, y_true, y_pred, sample_weight=None):
    del sample_weight  # Invalid pixels are masked by the ground truth itself.
    value = tf.cast(self.fn(y_true, y_pred), tf.float32)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return value / float(replicas) if replicas > 1 else value

  def get_config(self):
    return {"loss": self.loss, "name": self.name}
