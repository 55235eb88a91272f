"""Pictures of uncertainty quality: sparsification curves (no command-line flags here).

A sparsification curve (:func:`d3tf.uncertainty_metrics.sparsification`)
shows the error of the pixels left after removing the fraction with the
largest predicted std; the oracle removes the largest true errors instead, and
a random ranking leaves the error unchanged on average (a flat line). AUSE is
the area between a model's curve and its oracle.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np


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
  folder = os.path.dirname(os.path.abspath(output))
  os.makedirs(folder, exist_ok=True)
  fig.savefig(output, dpi=dpi)
  plt.close(fig)
  return output
