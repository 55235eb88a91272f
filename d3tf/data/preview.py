r"""Writes a PNG grid of data samples for a person to look at.

Columns: the all-in-focus image, its depth map (colour-mapped, with a colour
bar in metres; invalid pixels black), and the image defocused by the camera.
Rows: samples.

Usage::

  python -m d3tf.data.preview --output=grid.png --num=4 \
      --focus_distance_m=2.0 --psf=gaussian --height=256 --width=256
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

_OUTPUT = flags.DEFINE_string("output", None, "Path of the PNG to write.")
_SOURCE = flags.DEFINE_enum("source", "procedural", ["procedural"],
                            "Data source: 'procedural' (the embedded scene generator).")
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "validation", "test"],
                           "Split of the procedural source.")
_NUM = flags.DEFINE_integer("num", 4, "Number of samples (rows).", lower_bound=1, upper_bound=32)
_START = flags.DEFINE_integer("start_index", 0, "Index of the first procedural scene.",
                              lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the procedural scenes.", lower_bound=0)
_HEIGHT = flags.DEFINE_integer("height", 256, "Image height in pixels.")
_WIDTH = flags.DEFINE_integer("width", 256, "Image width in pixels.")
_SUPERSAMPLE = flags.DEFINE_integer("supersample", 1,
                                    "Rays per pixel side of the procedural renderer (1-4).")
_CAMERA = flags.DEFINE_enum("camera", "nyu", ["nyu", "dslr"],
                            "Camera preset: 'nyu' (15 mm f/2.8, 5.6 um) or 'dslr' (D200, 35 mm).")
_FOCUS = flags.DEFINE_float("focus_distance_m", 2.0, "Focus distance of the camera, metres.")
_PSF = flags.DEFINE_enum("psf", "gaussian", ["gaussian", "disk"], "Point-spread function.")
_MODE = flags.DEFINE_enum("render_mode", "improved", ["improved", "paper"],
                          "Defocus renderer mode.")
_DPI = flags.DEFINE_integer("dpi", 100, "Resolution of the PNG, dots per inch.")


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


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _OUTPUT.value:
    raise app.UsageError("--output is required (path of the PNG to write)")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top

  if _CAMERA.value == "nyu":
    camera = Camera.nyu(focus_distance_m=_FOCUS.value)
  else:
    camera = Camera.dslr_d200_35mm(focus_distance_m=_FOCUS.value)
  dataset = procedural.procedural_dataset(
      _SPLIT.value, _NUM.value, height=_HEIGHT.value, width=_WIDTH.value, seed=_SEED.value,
      start_index=_START.value, supersample=_SUPERSAMPLE.value)
  batch = next(iter(dataset.batch(_NUM.value)))
  images = tf.cast(batch["image"], tf.float32) / 255.0
  defocused = render_defocus(images, batch["depth"], camera, psf=_PSF.value, seed=_SEED.value,
                             mode=_MODE.value)
  defocus_title = (f"defocused ({_CAMERA.value}, f/{camera.f_number:g}, "
                   f"focus {camera.focus_distance_m:g} m, {_PSF.value})")
  title = (f"procedural '{_SPLIT.value}' scenes {_START.value}-{_START.value + _NUM.value - 1}, "
           f"seed {_SEED.value}")
  write_preview(batch["image"].numpy(), batch["depth"].numpy(), defocused.numpy(),
                _OUTPUT.value, defocus_title, title, _DPI.value)
  logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
