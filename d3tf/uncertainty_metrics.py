"""Metrics of predicted depth uncertainty (NumPy): NLL, sparsification / AUSE, Spearman, coverage.

Every function takes the same arguments::

  fn(gt, pred, std, mask=None, *, max_depth_m=10.0, ...)

``gt``, ``pred`` (the predicted mean depth) and ``std`` (its predicted
standard deviation, e.g. ``Predictor.predict(...)["depth_std"]``) in metres,
of one shape (``[H, W]``, ``[B, H, W]``, a trailing channel axis of 1 is
dropped). Pixels count where ``mask`` (optional, broadcastable) is true, the
ground truth is finite and in ``(0, max_depth_m]`` (as
:func:`d3tf.metrics.depth_metrics`), and ``pred`` and ``std`` are finite with
``std >= 0``. With ``e = pred - gt``:

===================  ===========================================================
``nll``              mean Gaussian negative log-likelihood of ``gt`` under
                     ``N(pred, std^2)``: ``0.5 ln(2 pi std^2) + e^2 / (2 std^2)``
                     (nats per pixel; ``std`` floored at ``min_std``)
``ause``             area under the sparsification error: remove the pixels
                     with the largest ``std`` first, a fraction ``f`` at a time
                     (``f`` = 0, 0.02, ..., 0.98), and compute the error of the
                     rest (the *sparsification curve*); the *oracle curve*
                     removes the largest ``|e|`` first. AUSE is the trapezoidal
                     area between the two over ``f`` (Ilg et al., ECCV 2018;
                     Poggi et al., CVPR 2020; not normalised). Error metric:
                     ``"abs"`` (mean ``|e|``, metres; the default) or
                     ``"rmse"``. 0 for a perfect ranking, larger is worse
``ause_random``      the AUSE a random ranking gets in expectation: the area
                     between the flat curve at the error of all pixels (what
                     removing random pixels leaves, on average) and the oracle
                     curve. ``ause / ause_random`` < 1 says how much better
                     than chance the uncertainty ranks the errors
``spearman``         Spearman rank correlation between ``std`` and ``|e|``
                     (1: the uncertainty orders the errors perfectly)
``within_1sigma``    fraction of pixels with ``|e| <= std``
``within_2sigma``    fraction of pixels with ``|e| <= 2 std`` (a calibrated
                     Gaussian gives 0.683 and 0.954)
``mean_std``         mean predicted ``std``, metres
===================  ===========================================================

**Over a test set**, :class:`UncertaintyAccumulator` streams image by image:
NLL, coverage and mean std are pooled over all pixels (pixel-weighted, from
running sums) and also averaged per image; AUSE and Spearman are computed
per image (each image's ranking on its own, as Poggi et al. do) and averaged
over images, so no pixel array outlives its image. The accumulator also
averages the per-image sparsification and oracle curves (for plots).

This module imports no TensorFlow and nothing else of d3tf; Spearman uses SciPy.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

#: Error metrics of the sparsification curves.
AUSE_METRICS = ("abs", "rmse")
#: Default fractions of pixels removed: 0, 0.02, ..., 0.98.
DEFAULT_FRACTIONS = tuple(np.round(np.arange(50) * 0.02, 2))
#: The metrics of :func:`uncertainty_metrics`, in table order.
UNCERTAINTY_METRIC_NAMES = ("nll", "ause", "ause_random", "spearman", "within_1sigma", "within_2sigma",
                            "mean_std")
#: Those that :class:`UncertaintyAccumulator` also pools over all pixels.
POOLED_NAMES = ("nll", "within_1sigma", "within_2sigma", "mean_std")
DEFAULT_MAX_DEPTH_M = 10.0
#: ``std`` is floored at this (metres) inside the NLL.
DEFAULT_MIN_STD_M = 1e-6


def _squeeze(array: np.ndarray) -> np.ndarray:
  if array.ndim >= 3 and array.shape[-1] == 1:
    return array[..., 0]
  return array


def valid_pixels(gt, pred, std, mask=None, max_depth_m: float = DEFAULT_MAX_DEPTH_M
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The valid pixels' ``(gt, pred, std)`` as 1-D float64 arrays (see the module docstring).

  Raises:
    ValueError: arrays of different shapes, a mask that does not broadcast,
      or a non-positive ``max_depth_m``.
  """
  gt = _squeeze(np.asarray(gt, np.float64))
  pred = _squeeze(np.asarray(pred, np.float64))
  std = _squeeze(np.asarray(std, np.float64))
  if not gt.shape == pred.shape == std.shape:
    raise ValueError(f"gt, pred and std must have one shape, got {gt.shape}, {pred.shape} and "
                     f"{std.shape}")
  if not max_depth_m > 0:
    raise ValueError(f"max_depth_m must be positive, got {max_depth_m!r}")
  with np.errstate(invalid="ignore"):
    valid = (np.isfinite(gt) & (gt > 0) & (gt <= max_depth_m) & np.isfinite(pred) &
             np.isfinite(std) & (std >= 0))
  if mask is not None:
    mask = np.asarray(mask, bool)
    if mask.ndim > gt.ndim and mask.shape[-1] == 1:
      mask = mask[..., 0]
    try:
      valid &= np.broadcast_to(mask, gt.shape)
    except ValueError:
      raise ValueError(f"mask of shape {mask.shape} does not broadcast to {gt.shape}") from None
  return gt[valid], pred[valid], std[valid]


def _check_fractions(fractions: Iterable[float]) -> np.ndarray:
  values = np.asarray(list(fractions), np.float64)
  if (values.ndim != 1 or values.size < 2 or np.any(np.diff(values) <= 0) or values[0] < 0 or
      values[-1] >= 1):
    raise ValueError(f"fractions must be at least 2 increasing values in [0, 1), got "
                     f"{[float(f) for f in fractions]}")
  return values


def _curve(errors: np.ndarray, order: np.ndarray, fractions: np.ndarray, metric: str
           ) -> np.ndarray:
  """Error of the pixels kept (those first in ``order``) after removing each fraction."""
  values = np.abs(errors[order]) if metric == "abs" else np.square(errors[order])
  cumulative = np.cumsum(values)
  n = errors.size
  keep = np.maximum(n - np.floor(fractions * n).astype(np.int64), 1)
  mean = cumulative[keep - 1] / keep
  return mean if metric == "abs" else np.sqrt(mean)


def _sparsification(e: np.ndarray, s: np.ndarray, metric: str, fractions: np.ndarray
                    ) -> dict[str, Any]:
  if e.size == 0:
    nan = np.full(fractions.size, np.nan)
    return {"fractions": fractions, "curve": nan, "oracle": nan.copy(), "ause": math.nan,
            "ause_random": math.nan}
  # Keep the lowest std (resp. lowest |e|) first: removing a fraction drops the tail.
  curve = _curve(e, np.argsort(s, kind="stable"), fractions, metric)
  oracle = _curve(e, np.argsort(np.abs(e), kind="stable"), fractions, metric)
  area = float(np.trapezoid(curve - oracle, fractions))
  # A random ranking leaves, on average, the error of all pixels at every fraction.
  random_area = float(np.trapezoid(curve[0] - oracle, fractions))
  return {"fractions": fractions, "curve": curve, "oracle": oracle, "ause": area,
          "ause_random": random_area}


def _check_metric(metric: str) -> str:
  if metric not in AUSE_METRICS:
    raise ValueError(f"metric must be one of {AUSE_METRICS}, got {metric!r}")
  return metric


def sparsification(gt, pred, std, mask=None, *, metric: str = "abs",
                   fractions: Iterable[float] = DEFAULT_FRACTIONS,
                   max_depth_m: float = DEFAULT_MAX_DEPTH_M) -> dict[str, Any]:
  """Sparsification and oracle curves and the area between them (AUSE).

  Args:
    gt: Ground-truth depth, metres.
    pred: Predicted (mean) depth, metres, same shape.
    std: Predicted standard deviation, metres, same shape.
    mask: Optional boolean mask of the pixels to score.
    metric: ``"abs"`` (mean absolute error) or ``"rmse"``.
    fractions: Increasing fractions in [0, 1) of the pixels removed.
    max_depth_m: Ground truth above it is not scored.

  Returns:
    ``{"fractions": [F], "curve": [F], "oracle": [F], "ause": float,
    "ause_random": float}`` (the expected AUSE of a random ranking); curves
    and areas are NaN without a valid pixel.
  """
  g, p, s = valid_pixels(gt, pred, std, mask, max_depth_m)
  return _sparsification(p - g, s, _check_metric(metric), _check_fractions(fractions))


def ause(gt, pred, std, mask=None, *, metric: str = "abs",
         fractions: Iterable[float] = DEFAULT_FRACTIONS,
         max_depth_m: float = DEFAULT_MAX_DEPTH_M) -> float:
  """Area under the sparsification error (see :func:`sparsification`); NaN without pixels."""
  return sparsification(gt, pred, std, mask, metric=metric, fractions=fractions,
                        max_depth_m=max_depth_m)["ause"]


def _nll(e: np.ndarray, s: np.ndarray, min_std: float) -> np.ndarray:
  var = np.square(np.maximum(s, min_std))
  return 0.5 * np.log(2.0 * np.pi * var) + np.square(e) / (2.0 * var)


def gaussian_nll(gt, pred, std, mask=None, *, max_depth_m: float = DEFAULT_MAX_DEPTH_M,
                 min_std: float = DEFAULT_MIN_STD_M) -> float:
  """Mean Gaussian negative log-likelihood (nats per pixel) of ``gt`` under ``N(pred, std^2)``.

  Args:
    gt: Ground-truth depth, metres.
    pred: Predicted mean, metres.
    std: Predicted standard deviation, metres (floored at ``min_std``).
    mask: Optional boolean mask.
    max_depth_m: Ground truth above it is not scored.
    min_std: Floor of ``std`` (> 0).

  Returns:
    The mean NLL over valid pixels; NaN without a valid pixel.
  """
  if not min_std > 0:
    raise ValueError(f"min_std must be positive, got {min_std!r}")
  g, p, s = valid_pixels(gt, pred, std, mask, max_depth_m)
  return float(np.mean(_nll(p - g, s, min_std))) if g.size else math.nan


def _spearman(e: np.ndarray, s: np.ndarray) -> float:
  from scipy import stats  # pylint: disable=g-import-not-at-top
  if e.size < 2 or np.all(s == s[0]) or np.all(np.abs(e) == np.abs(e[0])):
    return math.nan  # Undefined for constant inputs.
  return float(stats.spearmanr(s, np.abs(e)).statistic)


def spearman(gt, pred, std, mask=None, *, max_depth_m: float = DEFAULT_MAX_DEPTH_M) -> float:
  """Spearman rank correlation between ``std`` and ``|pred - gt|`` over valid pixels.

  Returns:
    In [-1, 1]; NaN with fewer than 2 pixels or a constant ``std`` or error.
  """
  g, p, s = valid_pixels(gt, pred, std, mask, max_depth_m)
  return _spearman(p - g, s)


def _coverage(e: np.ndarray, s: np.ndarray) -> dict[str, float]:
  if e.size == 0:
    return {"within_1sigma": math.nan, "within_2sigma": math.nan}
  a = np.abs(e)
  return {"within_1sigma": float(np.mean(a <= s)), "within_2sigma": float(np.mean(a <= 2 * s))}


def coverage(gt, pred, std, mask=None, *, max_depth_m: float = DEFAULT_MAX_DEPTH_M
             ) -> dict[str, float]:
  """Fractions of valid pixels with ``|pred - gt| <= std`` and ``<= 2 std``.

  Returns:
    ``{"within_1sigma": float, "within_2sigma": float}`` (NaN without pixels).
  """
  g, p, s = valid_pixels(gt, pred, std, mask, max_depth_m)
  return _coverage(p - g, s)


def _all(e: np.ndarray, s: np.ndarray, metric: str, fractions: np.ndarray, min_std: float
         ) -> tuple[dict[str, Any], dict[str, Any]]:
  curves = _sparsification(e, s, metric, fractions)
  result = {"nll": float(np.mean(_nll(e, s, min_std))) if e.size else math.nan,
            "ause": curves["ause"], "ause_random": curves["ause_random"], "spearman": _spearman(e, s), **_coverage(e, s),
            "mean_std": float(np.mean(s)) if s.size else math.nan, "n_pixels": int(e.size)}
  return result, curves


def uncertainty_metrics(gt, pred, std, mask=None, *, metric: str = "abs",
                        fractions: Iterable[float] = DEFAULT_FRACTIONS,
                        max_depth_m: float = DEFAULT_MAX_DEPTH_M,
                        min_std: float = DEFAULT_MIN_STD_M) -> dict[str, Any]:
  """Every uncertainty metric over the valid pixels of the given arrays, pooled.

  Args:
    gt: Ground-truth depth, metres.
    pred: Predicted mean depth, metres.
    std: Predicted standard deviation, metres.
    mask: Optional boolean mask.
    metric: Error metric of the sparsification curves, ``"abs"`` or ``"rmse"``.
    fractions: Fractions of pixels removed for the curves.
    max_depth_m: Ground truth above it is not scored.
    min_std: Floor of ``std`` inside the NLL.

  Returns:
    ``{name: float for name in UNCERTAINTY_METRIC_NAMES}`` plus ``n_pixels``.
  """
  g, p, s = valid_pixels(gt, pred, std, mask, max_depth_m)
  return _all(p - g, s, _check_metric(metric), _check_fractions(fractions), min_std)[0]


class UncertaintyAccumulator:
  """Streams the uncertainty metrics over a test set, image by image.

  Args:
    metric: Error metric of the sparsification curves, ``"abs"`` or ``"rmse"``.
    fractions: Fractions of pixels removed for the curves.
    max_depth_m: Ground truth above it is not scored.
    min_std: Floor of ``std`` inside the NLL.
  """

  def __init__(self, metric: str = "abs", fractions: Iterable[float] = DEFAULT_FRACTIONS,
               max_depth_m: float = DEFAULT_MAX_DEPTH_M, min_std: float = DEFAULT_MIN_STD_M):
    self.metric = _check_metric(metric)
    self.fractions = _check_fractions(fractions)
    if not max_depth_m > 0:
      raise ValueError(f"max_depth_m must be positive, got {max_depth_m!r}")
    if not min_std > 0:
      raise ValueError(f"min_std must be positive, got {min_std!r}")
    self.max_depth_m = float(max_depth_m)
    self.min_std = float(min_std)
    self.reset()

  def reset(self) -> None:
    """Forgets every image seen."""
    self._per_image: list[dict[str, Any]] = []
    self._sums = {"nll": 0.0, "within_1sigma": 0.0, "within_2sigma": 0.0, "mean_std": 0.0}
    self._count = 0
    self._curve_sum = np.zeros(self.fractions.size)
    self._oracle_sum = np.zeros(self.fractions.size)
    self._curve_images = 0

  @property
  def per_image(self) -> list[dict[str, Any]]:
    """Each image's metrics, in the order seen (copies)."""
    return [dict(m) for m in self._per_image]

  def update(self, gt, pred, std, mask=None) -> list[dict[str, Any]]:
    """Scores one image ``[H, W]`` or a batch ``[B, H, W]`` and adds it.

    Args:
      gt: Ground-truth depth, metres.
      pred: Predicted mean depth, metres, same shape.
      std: Predicted standard deviation, metres, same shape.
      mask: Optional boolean mask broadcastable to ``gt`` (e.g. one ``[H, W]``
        crop mask for a batch).

    Returns:
      The metrics of each image added (as :func:`uncertainty_metrics`).
    """
    gt = _squeeze(np.asarray(gt, np.float64))
    pred = _squeeze(np.asarray(pred, np.float64))
    std = _squeeze(np.asarray(std, np.float64))
    if gt.ndim == 2:
      gt, pred, std = gt[None], pred[None], std[None]
      mask = None if mask is None else np.asarray(mask, bool)[None]
    elif gt.ndim != 3:
      raise ValueError(f"update takes [H, W] or [B, H, W] arrays, got shape {gt.shape}")
    if mask is not None:
      mask = np.broadcast_to(np.asarray(mask, bool), gt.shape)
    added = []
    for i in range(gt.shape[0]):
      g, p, s = valid_pixels(gt[i], pred[i], std[i], None if mask is None else mask[i],
                             self.max_depth_m)
      e = p - g
      result, curves = _all(e, s, self.metric, self.fractions, self.min_std)
      if e.size:
        self._sums["nll"] += float(np.sum(_nll(e, s, self.min_std)))
        self._sums["within_1sigma"] += float(np.sum(np.abs(e) <= s))
        self._sums["within_2sigma"] += float(np.sum(np.abs(e) <= 2 * s))
        self._sums["mean_std"] += float(np.sum(s))
        self._count += e.size
        self._curve_sum += curves["curve"]
        self._oracle_sum += curves["oracle"]
        self._curve_images += 1
      self._per_image.append(result)
      added.append(dict(result))
    return added

  def per_image_mean(self) -> dict[str, float]:
    """Mean over images (with a valid pixel) of each metric (NaN images skipped)."""
    scored = [m for m in self._per_image if m["n_pixels"] > 0]
    out = {}
    for name in UNCERTAINTY_METRIC_NAMES:
      values = [m[name] for m in scored if not math.isnan(m[name])]
      out[name] = float(np.mean(values)) if values else math.nan
    out["n_pixels"] = int(sum(m["n_pixels"] for m in scored))
    return out

  def pixel_weighted(self) -> dict[str, float]:
    """NLL, coverage and mean std of all valid pixels seen, pooled."""
    out = {name: (self._sums[name] / self._count if self._count else math.nan)
           for name in POOLED_NAMES}
    out["n_pixels"] = self._count
    return out

  def result(self) -> dict[str, Any]:
    """Both averages and the mean curves.

    Returns:
      ``{"per_image_mean": {...}, "pixel_weighted": {...}, "ause_metric":
      str, "sparsification": {"fractions": [...], "curve": [...], "oracle":
      [...]} (per-image curves averaged over images), "num_images": int}``.
    """
    n = max(self._curve_images, 1)
    nan = [math.nan] * self.fractions.size
    return {
        "per_image_mean": self.per_image_mean(),
        "pixel_weighted": self.pixel_weighted(),
        "ause_metric": self.metric,
        "sparsification": {
            "fractions": [float(f) for f in self.fractions],
            "curve": [float(v) for v in self._curve_sum / n] if self._curve_images else nan,
            "oracle": [float(v) for v in self._oracle_sum / n] if self._curve_images else nan,
        },
        "num_images": len(self._per_image),
    }
