"""Depth-estimation metrics (NumPy): the standard set of Eigen et al., per-bin RMS and WKDR.

One function computes every dense metric, with a fixed signature::

  depth_metrics(gt, pred, mask=None, max_depth_m=10.0, min_depth_m=1e-3,
                median_scaling=False)

on the **valid** pixels: ``mask & isfinite(gt) & 0 < gt <= max_depth_m``.
``pred`` is clipped to ``[min_depth_m, max_depth_m]`` first (the usual
protocol), after optional median scaling (``pred *= median(gt) /
median(pred)`` over the valid pixels, as for models without metric scale).
With ``d = pred - gt``:

========  =====================================================
rel       mean(|d| / gt)                (abs_rel; gt divides)
sq_rel    mean(d^2 / gt)
rms       sqrt(mean(d^2))               metres
rmslog    sqrt(mean((ln pred - ln gt)^2))
log10     mean(|log10 pred - log10 gt|)
delta1-3  mean(max(pred / gt, gt / pred) < 1.25^k), k = 1, 2, 3
========  =====================================================

``rel`` and ``sq_rel`` divide by the ground truth: swapping ``gt`` and
``pred`` changes them (a peer implementation divided by the prediction).

Over a dataset, :class:`MetricsAccumulator` gives both usual averages:

* **per-image mean** (``"per_image_mean"``): metrics computed per image, then
  averaged over images. This is what Eigen et al.'s evaluation and most NYU
  papers (including the D3-Net paper's tables) report, and what
  ``python -m d3tf.evaluate`` shows first;
* **pixel-weighted** (``"pixel_weighted"``): every valid pixel of the dataset
  counts once, i.e. :func:`depth_metrics` on the concatenation of all images.

Also here: :func:`rms_per_depth_bin` (RMS per 1 m ground-truth depth bin, as
the paper plots), :func:`wkdr` (ordinal error on Depth-in-the-Wild pairs) and
:func:`format_table`.

This module is a leaf: it imports nothing else of d3tf, and no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

#: The dense metrics, in table order.
METRIC_NAMES = ("rel", "sq_rel", "rms", "rmslog", "log10", "delta1", "delta2", "delta3")
#: Whether a larger value of the metric is better.
HIGHER_IS_BETTER = {name: name.startswith("delta") for name in METRIC_NAMES}
DEFAULT_MAX_DEPTH_M = 10.0
DEFAULT_MIN_DEPTH_M = 1e-3
#: Default ground-truth depth bins for :func:`rms_per_depth_bin`: 0-1 m, ..., 9-10 m.
DEFAULT_BIN_EDGES_M = tuple(range(0, 11))

# Sums from which the pixel-weighted metrics follow (see _sums / _from_sums).
_SUM_KEYS = ("abs_rel", "sq_rel", "sq_err", "sq_log", "abs_log10", "delta1", "delta2",
             "delta3")


# ------------------------------------------------------------------ inputs
def _squeeze_channel(array: np.ndarray) -> np.ndarray:
  """Drops a trailing channel axis of size 1 from ``[..., H, W, 1]`` (rank >= 3)."""
  if array.ndim >= 3 and array.shape[-1] == 1:
    return array[..., 0]
  return array


def _prepare(gt, pred, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """Float64 arrays of one shape (channel axis dropped), mask broadcast to it."""
  gt = _squeeze_channel(np.asarray(gt, dtype=np.float64))
  pred = _squeeze_channel(np.asarray(pred, dtype=np.float64))
  if gt.shape != pred.shape:
    raise ValueError(f"gt and pred must have the same shape, got gt {gt.shape} and pred "
                     f"{pred.shape}")
  if gt.ndim < 1:
    raise ValueError(f"gt must be an array of depths, got a scalar {gt!r}")
  if mask is not None:
    mask = _squeeze_channel(np.asarray(mask))
    if mask.dtype != bool:
      raise ValueError(f"mask must be boolean, got dtype {mask.dtype}")
    try:
      mask = np.broadcast_to(mask, gt.shape)
    except ValueError:
      raise ValueError(f"mask of shape {mask.shape} does not broadcast to the depth shape "
                       f"{gt.shape}") from None
  return gt, pred, mask


def _check_range(min_depth_m: float, max_depth_m: float) -> None:
  if not (math.isfinite(min_depth_m) and math.isfinite(max_depth_m)
          and 0 < min_depth_m < max_depth_m):
    raise ValueError("need 0 < min_depth_m < max_depth_m (finite), got min_depth_m="
                     f"{min_depth_m!r}, max_depth_m={max_depth_m!r}")


def valid_mask(gt, mask=None, max_depth_m: float = DEFAULT_MAX_DEPTH_M) -> np.ndarray:
  """Boolean mask of the pixels that count: ``mask & isfinite(gt) & 0 < gt <= max_depth_m``.

  Args:
    gt: Ground-truth depth in metres, any shape (a trailing channel axis of
      size 1 is dropped).
    mask: Optional boolean mask broadcastable to ``gt`` (e.g. the Eigen crop).
    max_depth_m: Largest ground-truth depth evaluated.

  Returns:
    The boolean mask, of ``gt``'s shape without the channel axis.
  """
  gt = _squeeze_channel(np.asarray(gt, dtype=np.float64))
  with np.errstate(invalid="ignore"):
    valid = np.isfinite(gt) & (gt > 0) & (gt <= max_depth_m)
  if mask is not None:
    _, _, mask = _prepare(gt, gt, mask)
    valid &= mask
  return valid


def _clipped_pred(gt: np.ndarray, pred: np.ndarray, valid: np.ndarray, min_depth_m: float,
                  max_depth_m: float, median_scaling: bool) -> tuple[np.ndarray, float]:
  """The valid pixels' predictions: median-scaled (optional) and clipped; and the scale."""
  p = pred[valid]
  if p.size and not np.all(np.isfinite(p)):
    bad = int(np.count_nonzero(~np.isfinite(p)))
    raise ValueError(f"pred has {bad} non-finite value(s) (NaN or inf) on valid pixels")
  scale = 1.0
  if median_scaling and p.size:
    median_pred = float(np.median(np.clip(p, min_depth_m, None)))
    scale = float(np.median(gt[valid])) / median_pred
    p = p * scale
  return np.clip(p, min_depth_m, max_depth_m), scale


# ------------------------------------------------------------- dense metrics
def _sums(g: np.ndarray, p: np.ndarray) -> dict[str, float]:
  """Per-pixel error sums over valid ground truth ``g`` and clipped prediction ``p`` (1-D)."""
  diff = p - g
  ratio = np.maximum(p / g, g / p)
  log_diff = np.log(p) - np.log(g)
  return {
      "n": float(g.size),
      "abs_rel": float(np.sum(np.abs(diff) / g)),
      "sq_rel": float(np.sum(diff ** 2 / g)),
      "sq_err": float(np.sum(diff ** 2)),
      "sq_log": float(np.sum(log_diff ** 2)),
      "abs_log10": float(np.sum(np.abs(np.log10(p) - np.log10(g)))),
      "delta1": float(np.count_nonzero(ratio < 1.25)),
      "delta2": float(np.count_nonzero(ratio < 1.25 ** 2)),
      "delta3": float(np.count_nonzero(ratio < 1.25 ** 3)),
  }


def _from_sums(sums: Mapping[str, float]) -> dict[str, float]:
  """The metrics from :func:`_sums` (or a sum of them); NaN when there is no pixel."""
  n = sums["n"]
  if n <= 0:
    out = {name: float("nan") for name in METRIC_NAMES}
  else:
    out = {
        "rel": sums["abs_rel"] / n,
        "sq_rel": sums["sq_rel"] / n,
        "rms": math.sqrt(sums["sq_err"] / n),
        "rmslog": math.sqrt(sums["sq_log"] / n),
        "log10": sums["abs_log10"] / n,
        "delta1": sums["delta1"] / n,
        "delta2": sums["delta2"] / n,
        "delta3": sums["delta3"] / n,
    }
  out["n_pixels"] = int(n)
  return out


def depth_metrics(gt, pred, mask=None, max_depth_m: float = DEFAULT_MAX_DEPTH_M,
                  min_depth_m: float = DEFAULT_MIN_DEPTH_M,
                  median_scaling: bool = False) -> dict[str, float]:
  """The standard depth metrics of ``pred`` against ``gt`` over the valid pixels.

  All pixels given are pooled (pixel-weighted); for per-image averaging over a
  dataset use :class:`MetricsAccumulator`.

  Args:
    gt: Ground-truth depth in metres, ``[H, W]``, ``[B, H, W]`` or with a
      trailing channel axis of size 1. Zero, negative, non-finite values and
      values above ``max_depth_m`` are invalid and ignored.
    pred: Predicted depth in metres, same shape as ``gt``. Must be finite on
      the valid pixels.
    mask: Optional boolean mask broadcastable to ``gt``: False excludes a
      pixel (e.g. outside the Eigen crop).
    max_depth_m: Largest valid ground truth; predictions are clipped to it.
    min_depth_m: Predictions are clipped up to this (avoids log(0)).
    median_scaling: Multiply ``pred`` by ``median(gt) / median(pred)`` over
      the valid pixels (one ratio for everything given) before clipping.

  Returns:
    ``{"rel", "sq_rel", "rms", "rmslog", "log10", "delta1", "delta2",
    "delta3": float, "n_pixels": int}``, plus ``"median_scale"`` when
    ``median_scaling``. With no valid pixel every metric is NaN and
    ``n_pixels`` is 0.

  Raises:
    ValueError: shapes that differ, a non-boolean mask, a bad depth range,
      or a non-finite prediction on a valid pixel.
  """
  _check_range(min_depth_m, max_depth_m)
  gt, pred, mask = _prepare(gt, pred, mask)
  valid = valid_mask(gt, mask, max_depth_m)
  p, scale = _clipped_pred(gt, pred, valid, min_depth_m, max_depth_m, median_scaling)
  out = _from_sums(_sums(gt[valid], p))
  if median_scaling:
    out["median_scale"] = scale
  return out


# ------------------------------------------------------------ per-bin RMS
def _check_edges(bin_edges_m: Iterable[float]) -> np.ndarray:
  edges = np.asarray(list(bin_edges_m), dtype=np.float64)
  if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) or np.any(
      np.diff(edges) <= 0):
    raise ValueError(f"bin_edges_m must be at least two increasing finite values, got "
                     f"{edges.tolist()!r}")
  return edges


def _bin_sums(g: np.ndarray, p: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per-bin (sum of squared error, pixel count); bins [lo, hi), the last one [lo, hi]."""
  index = np.searchsorted(edges, g, side="right") - 1
  index[g == edges[-1]] = edges.size - 2
  inside = (index >= 0) & (index < edges.size - 1)
  nbins = edges.size - 1
  sq = np.bincount(index[inside], weights=(p[inside] - g[inside]) ** 2, minlength=nbins)
  count = np.bincount(index[inside], minlength=nbins).astype(np.float64)
  return sq, count


def _bins_from_sums(edges: np.ndarray, sq: np.ndarray, count: np.ndarray) -> list[dict[str, Any]]:
  out = []
  for k in range(edges.size - 1):
    rms = math.sqrt(sq[k] / count[k]) if count[k] > 0 else float("nan")
    out.append({"lo_m": float(edges[k]), "hi_m": float(edges[k + 1]), "rms": rms,
                "n_pixels": int(count[k])})
  return out


def rms_per_depth_bin(gt, pred, mask=None, bin_edges_m: Iterable[float] = DEFAULT_BIN_EDGES_M,
                      max_depth_m: float = DEFAULT_MAX_DEPTH_M,
                      min_depth_m: float = DEFAULT_MIN_DEPTH_M,
                      median_scaling: bool = False) -> list[dict[str, Any]]:
  """RMS error per ground-truth depth bin (the paper plots it per 1 m bin).

  Valid pixels and the prediction's clipping are as in :func:`depth_metrics`.
  A pixel belongs to bin ``k`` when ``edges[k] <= gt < edges[k + 1]``; the
  last bin also holds ``gt == edges[-1]``.

  Args:
    gt: Ground-truth depth in metres (shapes as in :func:`depth_metrics`).
    pred: Predicted depth in metres, same shape.
    mask: Optional boolean mask broadcastable to ``gt``.
    bin_edges_m: Increasing bin edges in metres; default 0, 1, ..., 10.
    max_depth_m: Largest valid ground truth.
    min_depth_m: Lower clip of the prediction.
    median_scaling: As in :func:`depth_metrics`.

  Returns:
    One ``{"lo_m", "hi_m", "rms", "n_pixels"}`` dict per bin; ``rms`` is NaN
    for an empty bin.
  """
  _check_range(min_depth_m, max_depth_m)
  edges = _check_edges(bin_edges_m)
  gt, pred, mask = _prepare(gt, pred, mask)
  valid = valid_mask(gt, mask, max_depth_m)
  p, _ = _clipped_pred(gt, pred, valid, min_depth_m, max_depth_m, median_scaling)
  return _bins_from_sums(edges, *_bin_sums(gt[valid], p, edges))


# -------------------------------------------------------------- accumulator
class MetricsAccumulator:
  """Aggregates :func:`depth_metrics` over a dataset, image by image.

  ``update`` takes one image ``[H, W]`` or a batch ``[B, H, W]`` (a trailing
  channel axis of size 1 is dropped); every image is scored on its own
  (median scaling, when on, uses each image's own ratio, the usual protocol)
  and kept for both averages:

  * ``per_image_mean``: mean over images of each image's metrics (the
    convention of Eigen et al. and the NYU literature; d3tf reports it
    first). Images without a valid pixel are left out of it (and counted in
    ``num_empty_images``).
  * ``pixel_weighted``: metrics of all valid pixels pooled, equal to
    :func:`depth_metrics` on the concatenated arrays (without median
    scaling; with it, on the per-image scaled predictions).

  Args:
    max_depth_m: As in :func:`depth_metrics`.
    min_depth_m: As in :func:`depth_metrics`.
    median_scaling: Scale each image's prediction by its median ratio.
    bin_edges_m: Edges of the per-bin RMS (pixel-weighted over the dataset).
  """

  def __init__(self, max_depth_m: float = DEFAULT_MAX_DEPTH_M,
               min_depth_m: float = DEFAULT_MIN_DEPTH_M, median_scaling: bool = False,
               bin_edges_m: Iterable[float] = DEFAULT_BIN_EDGES_M):
    _check_range(min_depth_m, max_depth_m)
    self.max_depth_m = float(max_depth_m)
    self.min_depth_m = float(min_depth_m)
    self.median_scaling = bool(median_scaling)
    self.bin_edges_m = _check_edges(bin_edges_m)
    self.reset()

  def reset(self) -> None:
    """Forgets every image seen."""
    self._sums = {key: 0.0 for key in ("n",) + _SUM_KEYS}
    self._per_image: list[dict[str, float]] = []
    self._bin_sq = np.zeros(self.bin_edges_m.size - 1)
    self._bin_count = np.zeros(self.bin_edges_m.size - 1)

  @property
  def num_images(self) -> int:
    """Images seen (including those without a valid pixel)."""
    return len(self._per_image)

  @property
  def per_image(self) -> list[dict[str, float]]:
    """Each image's metrics, in the order seen (a copy)."""
    return [dict(m) for m in self._per_image]

  def update(self, gt, pred, mask=None) -> list[dict[str, float]]:
    """Scores one image or a batch of images and adds them.

    Args:
      gt: Ground truth ``[H, W]`` or ``[B, H, W]`` (optionally ``[..., 1]``),
        metres.
      pred: Prediction, same shape.
      mask: Optional boolean mask broadcastable to ``gt`` (e.g. an ``[H, W]``
        Eigen-crop mask for a whole batch).

    Returns:
      The metrics of each image added (as :func:`depth_metrics`).
    """
    gt, pred, mask = _prepare(gt, pred, mask)
    if gt.ndim == 2:
      gt, pred = gt[None], pred[None]
      mask = None if mask is None else mask[None]
    elif gt.ndim != 3:
      raise ValueError(f"update takes [H, W] or [B, H, W] depth, got shape {gt.shape}")
    added = []
    for i in range(gt.shape[0]):
      valid = valid_mask(gt[i], None if mask is None else mask[i], self.max_depth_m)
      p, scale = _clipped_pred(gt[i], pred[i], valid, self.min_depth_m, self.max_depth_m,
                               self.median_scaling)
      g = gt[i][valid]
      sums = _sums(g, p)
      for key, value in sums.items():
        self._sums[key] += value
      sq, count = _bin_sums(g, p, self.bin_edges_m)
      self._bin_sq += sq
      self._bin_count += count
      metrics = _from_sums(sums)
      if self.median_scaling:
        metrics["median_scale"] = scale
      self._per_image.append(metrics)
      added.append(dict(metrics))
    return added

  def per_image_mean(self) -> dict[str, float]:
    """Mean over images (with a valid pixel) of each metric; ``n_pixels`` is the total."""
    scored = [m for m in self._per_image if m["n_pixels"] > 0]
    out = {name: (float(np.mean([m[name] for m in scored])) if scored else float("nan"))
           for name in METRIC_NAMES}
    out["n_pixels"] = int(sum(m["n_pixels"] for m in scored))
    return out

  def pixel_weighted(self) -> dict[str, float]:
    """Metrics of all valid pixels seen, pooled."""
    return _from_sums(self._sums)

  def rms_per_depth_bin(self) -> list[dict[str, Any]]:
    """RMS per ground-truth depth bin over all valid pixels seen."""
    return _bins_from_sums(self.bin_edges_m, self._bin_sq, self._bin_count)

  def result(self) -> dict[str, Any]:
    """Everything: both averages, per-bin RMS and counts.

    Returns:
      ``{"per_image_mean": {...}, "pixel_weighted": {...}, "rms_per_depth_bin":
      [...], "num_images": int, "num_empty_images": int, "median_scaling":
      bool, "max_depth_m": float, "min_depth_m": float}``.
    """
    empty = sum(1 for m in self._per_image if m["n_pixels"] == 0)
    return {"per_image_mean": self.per_image_mean(), "pixel_weighted": self.pixel_weighted(),
            "rms_per_depth_bin": self.rms_per_depth_bin(), "num_images": self.num_images,
            "num_empty_images": empty, "median_scaling": self.median_scaling,
            "max_depth_m": self.max_depth_m, "min_depth_m": self.min_depth_m}


# ------------------------------------------------------------------- WKDR
def wkdr(pred_depth, pairs, ordinal) -> float:
  """Ordinal error rate on relative-depth point pairs (Depth in the Wild).

  A pair counts as an error unless the predicted depths order its points as
  the label says: with ``z = pred_depth``, correct when ``(z[A] - z[B]) *
  ordinal > 0`` (the DIW authors' rule; a tie is an error). With one pair per
  image and unit weights this is DIW's WHDR.

  Args:
    pred_depth: Predicted depth ``[H, W]`` (or ``[H, W, 1]``), or a batch
      ``[B, H, W]`` with ``pairs`` ``[B, N, 4]``.
    pairs: Integer ``[N, 4]`` rows ``(row_A, col_A, row_B, col_B)``, 0-based
      (as :class:`d3tf.data.readers.DiwReader` returns them).
    ordinal: ``[N]`` (or ``[B, N]``) of ``+1`` (depth(A) > depth(B): A is
      farther, DIW's ``>``) or ``-1`` (A nearer, ``<``).

  Returns:
    The fraction of pairs ordered wrongly, in [0, 1]; NaN with no pair.

  Raises:
    ValueError: bad shapes, points outside the image, ordinals other than
      +-1, or a non-finite predicted depth at a point.
  """
  z = _squeeze_channel(np.asarray(pred_depth, dtype=np.float64))
  pairs = np.asarray(pairs)
  ordinal = np.asarray(ordinal)
  if z.ndim == 2:
    z, pairs, ordinal = z[None], pairs[None], ordinal[None]
  if (z.ndim != 3 or pairs.ndim != 3 or pairs.shape[-1] != 4 or ordinal.shape != pairs.shape[:2]
      or pairs.shape[0] != z.shape[0]):
    raise ValueError("wkdr needs pred_depth [H, W] with pairs [N, 4] and ordinal [N] (or "
                     f"batched [B, ...]), got shapes {np.shape(pred_depth)}, "
                     f"{np.shape(pairs)} (after batching) and {np.shape(ordinal)}")
  if not np.issubdtype(pairs.dtype, np.integer):
    raise ValueError(f"pairs must be integer pixel indices, got dtype {pairs.dtype}")
  if not np.all(np.isin(ordinal, (-1, 1))):
    raise ValueError(f"ordinal must be +1 or -1, got values {np.unique(ordinal).tolist()}")
  height, width = z.shape[1:]
  rows, cols = pairs[..., 0::2], pairs[..., 1::2]
  if rows.size and (rows.min() < 0 or rows.max() >= height or cols.min() < 0
                    or cols.max() >= width):
    raise ValueError(f"pair coordinates must lie inside the {height}x{width} prediction "
                     f"(0-based), got rows [{rows.min()}, {rows.max()}], cols "
                     f"[{cols.min()}, {cols.max()}]")
  if ordinal.size == 0:
    return float("nan")
  batch = np.arange(z.shape[0])[:, None]
  z_a = z[batch, pairs[..., 0], pairs[..., 1]]
  z_b = z[batch, pairs[..., 2], pairs[..., 3]]
  if not (np.all(np.isfinite(z_a)) and np.all(np.isfinite(z_b))):
    raise ValueError("pred_depth is not finite at some pair points")
  correct = (z_a - z_b) * ordinal > 0
  return float(np.count_nonzero(~correct) / correct.size)


# ------------------------------------------------------------------- tables
def _format_value(value: Any) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return "-"
  if isinstance(value, (int, np.integer)):
    return str(int(value))
  return f"{float(value):.4f}"


def format_table(metrics: Mapping[str, Any], names: Sequence[str] | None = None) -> str:
  """A plain-text table of metrics, one column per metric.

  Args:
    metrics: Either one metrics dict (as :func:`depth_metrics` returns), or a
      mapping of row label -> metrics dict (e.g. ``{"per-image mean": ...,
      "pixel-weighted": ...}``), or the dict of
      :meth:`MetricsAccumulator.result` (its two averages become the rows).
    names: The columns; default the standard metrics (plus ``n_pixels``)
      present.

  Returns:
    The table, lines joined by newlines (no trailing newline). Missing or NaN
    values show as ``-``.
  """
  if "per_image_mean" in metrics and "pixel_weighted" in metrics:
    rows = {"per-image mean": metrics["per_image_mean"],
            "pixel-weighted": metrics["pixel_weighted"]}
  elif all(isinstance(v, Mapping) for v in metrics.values()) and metrics:
    rows = dict(metrics)
  else:
    rows = {"": metrics}
  if names is None:
    present = set().union(*(row.keys() for row in rows.values()))
    names = [n for n in METRIC_NAMES + ("n_pixels",) if n in present]
  label_width = max(len(str(label)) for label in rows)
  cells = [[_format_value(row.get(name)) for name in names] for row in rows.values()]
  widths = [max([len(name)] + [len(r[k]) for r in cells]) for k, name in enumerate(names)]
  lines = [" " * label_width + " | " + " | ".join(n.rjust(w) for n, w in zip(names, widths))]
  lines.append("-" * label_width + "-+-" + "-+-".join("-" * w for w in widths))
  for label, row in zip(rows, cells):
    lines.append(str(label).ljust(label_width) + " | " + " | ".join(
        c.rjust(w) for c, w in zip(row, widths)))
  return "\n".join(lines)


def format_bin_table(bins: Sequence[Mapping[str, Any]]) -> str:
  """A two-row table of :func:`rms_per_depth_bin`'s result: bin (m) and RMS (m)."""
  heads = [f"{b['lo_m']:g}-{b['hi_m']:g}" for b in bins]
  values = [_format_value(b["rms"]) for b in bins]
  counts = [str(b["n_pixels"]) for b in bins]
  widths = [max(len(h), len(v), len(c)) for h, v, c in zip(heads, values, counts)]
  return "\n".join([
      "bin (m)  | " + " | ".join(h.rjust(w) for h, w in zip(heads, widths)),
      "rms (m)  | " + " | ".join(v.rjust(w) for v, w in zip(values, widths)),
      "n_pixels | " + " | ".join(c.rjust(w) for c, w in zip(counts, widths)),
  ])
