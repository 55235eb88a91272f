"""Pictures of RGB-D samples for people to look at (no command-line flags here)."""

from __future__ import annotations

import os

import numpy as np


def write_preview(images: np.ndarray, depths: np.ndarray, defocused: np.ndarray, output: str,
                  defocus_title: str = "defocused", title: str | None = None,
                  dpi: int = 100) -> str:
  """Draws the sample grid and writes it as a PNG.

  Args:
    images: All-in-focus images, [N, H, W, 3], uint8 or float in [0, 1].
    depths: Depth maps [N, H, W] (or [N, H, W, 1]) in metres, 0 = invalid.
    defocused: Defocused images, like ``images``.
    output: Path of the PNG; its folder is created if needed.
    defocus_title: Heading of the third column.
    title: Optional figure title.
    dpi: Resolution.

  Returns:
    ``output``.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  images = np.asarray(images)
  depths = np.asarray(depths, np.float32)
  defocused = np.asarray(defocused)
  if depths.ndim == 4:
    depths = depths[..., 0]
  if images.ndim != 4 or depths.ndim != 3 or defocused.shape != images.shape:
    raise ValueError(f"Expected images [N,H,W,3], depths [N,H,W], defocused like images; got "
                     f"{images.shape}, {depths.shape}, {defocused.shape}")
  num, height, width = depths.shape
  aspect = width / height
  panel = 3.0  # Inches per panel height.
  fig, axes = plt.subplots(num, 3, figsize=(3 * panel * aspect + 1.2, panel * num + 0.5),
                           squeeze=False, layout="constrained")
  cmap = matplotlib.colormaps["turbo"].with_extremes(bad="black")
  for row in range(num):
    depth = depths[row]
    valid = np.isfinite(depth) & (depth > 0)
    shown = np.ma.masked_where(~valid, depth)
    low = float(depth[valid].min()) if valid.any() else 0.0
    high = float(depth[valid].max()) if valid.any() else 1.0
    axes[row, 0].imshow(images[row])
    picture = axes[row, 1].imshow(shown, cmap=cmap, vmin=low, vmax=max(high, low + 1e-3),
                                  interpolation="nearest")
    bar = fig.colorbar(picture, ax=axes[row, 1], fraction=0.046, pad=0.03)
    bar.set_label("depth (m)")
    axes[row, 2].imshow(defocused[row])
    for ax in axes[row]:
      ax.set_xticks([])
      ax.set_yticks([])
  axes[0, 0].set_title("all-in-focus")
  axes[0, 1].set_title("depth")
  axes[0, 2].set_title(defocus_title)
  if title:
    fig.suptitle(title)
  folder = os.path.dirname(os.path.abspath(output))
  os.makedirs(folder, exist_ok=True)
  fig.savefig(output, dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  return output
