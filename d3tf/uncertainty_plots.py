"""Pictures of predicted uncertainty: sparsification curves and std maps beside the error.

A sparsification curve (:func:`d3tf.uncertainty_metrics.sparsification`)
shows the error of the pixels left after removing the fraction with the
largest predicted std; the oracle removes the largest true errors instead, and
a random ranking leaves the error unchanged on average (a flat line). AUSE is
the area between a model's curve and its oracle.

No command-line flags here: ``d3tf.evaluate`` and the scripts in
``benchmarks/`` call these.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np


def _save(fig, output: str, dpi: int) -> str:
  """Writes a figure as a 256-colour PNG (creating its folder) and frees it."""
  import io  # pylint: disable=g-import-not-at-top
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=dpi, format="png")
  plt.close(fig)
  buffer.seek(0)
  with Image.open(buffer) as picture:  # A palette makes colour-map pictures 3x smaller.
    picture.convert("RGB").quantize(256).save(output, format="PNG", optimize=True)
  return output


def _curves(label: str, sparsification: Mapping[str, object]) -> tuple[np.ndarray, ...]:
  try:
    values = [np.asarray(sparsification[key], np.float64)
              for key in ("fractions", "curve", "oracle")]
  except KeyError as error:
    raise ValueError(f"Sparsification of {label!r} lacks {error}; expected the keys fractions, "
                     f"curve, oracle (d3tf.evaluate's uncertainty.sparsification), got "
                     f"{sorted(sparsification)}") from None
  fractions, curve, oracle = values
  if fractions.ndim != 1 or fractions.size < 2 or curve.shape != fractions.shape or \
      oracle.shape != fractions.shape:
    raise ValueError(f"Sparsification of {label!r}: fractions, curve and oracle must be 1-D of "
                     f"one length >= 2, got shapes {fractions.shape}, {curve.shape}, "
                     f"{oracle.shape}")
  if not np.isfinite(curve[0]) or curve[0] <= 0:
    raise ValueError(f"Sparsification of {label!r}: the error with no pixel removed must be "
                     f"positive and finite, got {float(curve[0])!r}")
  return fractions, curve, oracle


def write_sparsification_plot(curves: Mapping[str, Mapping[str, object]], output: str,
                              title: str | None = None, error_name: str = "mean abs error",
                              dpi: int = 110) -> str:
  """Draws sparsification curves of one or more models and writes a PNG.

  Each model's curve by predicted std (solid) and its oracle (dashed) are
  divided by the model's error with no pixel removed, so that models with
  different errors share one axis; a random ranking is the flat line at 1.
  The legend gives each model's AUSE and the random ranking's, in the
  curves' units.

  Args:
    curves: ``{label: {"fractions": [F], "curve": [F], "oracle": [F]}}``, e.g.
      ``d3tf.evaluate``'s ``uncertainty.sparsification`` per model.
    output: Path of the PNG; its folder is created if needed.
    title: Optional figure title.
    error_name: What the curves measure (the y-axis label).
    dpi: Resolution.

  Returns:
    ``output``.

  Raises:
    ValueError: no curves, or a curve with missing keys, mismatched lengths or
      a non-positive starting error.
  """
  if not curves:
    raise ValueError("write_sparsification_plot needs at least one model's curves, got none")
  checked = {label: _curves(label, values) for label, values in curves.items()}
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
  colours = matplotlib.colormaps["tab10"]
  for k, (label, (fractions, curve, oracle)) in enumerate(checked.items()):
    ause = float(np.trapezoid(curve - oracle, fractions))
    ause_random = float(np.trapezoid(curve[0] - oracle, fractions))
    colour = colours(k % 10)
    ax.plot(fractions, curve / curve[0], color=colour, linewidth=2,
            label=f"{label}: AUSE {ause:.3f} (random {ause_random:.3f})")
    ax.plot(fractions, oracle / curve[0], color=colour, linestyle="--", linewidth=1)
  ax.axhline(1.0, color="grey", linewidth=1, linestyle=":", label="random ranking")
  ax.plot([], [], color="black", linestyle="--", linewidth=1, label="oracle (by true error)")
  ax.set_xlabel("fraction of pixels removed (largest predicted std first)")
  ax.set_ylabel(f"{error_name} of the rest / with none removed")
  ax.set_xlim(0.0, 1.0)
  ax.set_ylim(bottom=0.0)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small", loc="lower left")
  if title:
    ax.set_title(title)
  return _save(fig, output, dpi)


def write_uncertainty_maps(images: np.ndarray, true_depth: np.ndarray, depth: np.ndarray,
                           std: np.ndarray, output: str, image_title: str = "input",
                           title: str | None = None, max_depth_m: float = 10.0,
                           dpi: int = 70) -> str:
  """Draws input, true depth, predicted depth, predicted std and |error| per image.

  One row per image; the true and predicted depth share a colour scale, and
  so do the std and the absolute error (both metres), so that a good
  uncertainty map looks like the error map.

  Args:
    images: The model's input images, [N, H, W, 3], uint8 or float in [0, 1].
    true_depth: Ground truth in metres, [N, H, W] (or [N, H, W, 1]); 0 or
      non-finite = invalid (black).
    depth: Predicted depth in metres, like ``true_depth``.
    std: Predicted total standard deviation in metres, like ``true_depth``.
    output: Path of the PNG; its folder is created if needed.
    image_title: Heading of the first column.
    title: Optional figure title.
    max_depth_m: Valid ground truth lies in (0, max_depth_m].
    dpi: Resolution.

  Returns:
    ``output``.

  Raises:
    ValueError: arrays of mismatched shapes.
  """
  maps = [np.asarray(a, np.float32) for a in (true_depth, depth, std)]
  maps = [a[..., 0] if a.ndim == 4 else a for a in maps]
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3 or any(a.shape != images.shape[:3] for a in maps):
    raise ValueError(f"Expected images [N,H,W,3] and true depth, depth, std [N,H,W]; got "
                     f"{images.shape}, {[a.shape for a in maps]}")
  true_depth, depth, std = maps
  valid = np.isfinite(true_depth) & (true_depth > 0) & (true_depth <= max_depth_m)
  error = np.where(valid, np.abs(depth - true_depth), np.nan)
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  num, height, width = true_depth.shape
  panel = 2.4  # Inches per panel height.
  fig, axes = plt.subplots(num, 5, figsize=(5 * panel * width / height + 2.5, panel * num + 0.6),
                           squeeze=False, layout="constrained")
  depth_cmap = matplotlib.colormaps["turbo"].with_extremes(bad="black")
  std_cmap = matplotlib.colormaps["magma"].with_extremes(bad="black")
  for row in range(num):
    shown_truth = np.ma.masked_where(~valid[row], true_depth[row])
    low = float(true_depth[row][valid[row]].min()) if valid[row].any() else 0.0
    high = float(true_depth[row][valid[row]].max()) if valid[row].any() else max_depth_m
    spread_high = float(np.nanpercentile(np.concatenate(
        [std[row].ravel(), error[row][valid[row]].ravel()]), 99)) if valid[row].any() else 1.0
    axes[row, 0].imshow(images[row])
    for col, (values, cmap, vmin, vmax, label) in enumerate((
        (shown_truth, depth_cmap, low, high, "true depth (m)"),
        (depth[row], depth_cmap, low, high, "predicted depth (m)"),
        (std[row], std_cmap, 0.0, spread_high, "predicted std (m)"),
        (np.ma.masked_invalid(error[row]), std_cmap, 0.0, spread_high, "|error| (m)")), start=1):
      picture = axes[row, col].imshow(values, cmap=cmap, vmin=vmin, vmax=max(vmax, vmin + 1e-3),
                                      interpolation="nearest")
      if row == 0:
        axes[row, col].set_title(label)
      if col in (2, 4):
        fig.colorbar(picture, ax=axes[row, col - 1:col + 1], fraction=0.046, pad=0.02)
    for ax in axes[row]:
      ax.set_xticks([])
      ax.set_yticks([])
  axes[0, 0].set_title(image_title)
  if title:
    fig.suptitle(title)
  return _save(fig, output, dpi)
