"""Colour-mapped depth PNGs with a colour bar, in memory proportional to the pixels.

Drawing a 24-megapixel map with matplotlib's ``imshow`` and ``savefig`` took
about 2.6 GB (a full-size figure canvas and float64 copies). Here the map is
coloured through a 256-entry lookup table in row blocks (3 bytes per pixel),
only the colour bar (a narrow strip) is drawn with matplotlib, and the two are
joined and written with Pillow.
"""

from __future__ import annotations

import io

import numpy as np

_BLOCK_ROWS = 512
_BAR_PX = 110


def colorize(values: np.ndarray, vmax: float, cmap: str = "magma_r") -> np.ndarray:
  """``values`` [H, W] in [0, vmax] as ``uint8 [H, W, 3]`` RGB (NaN: white)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  lut = np.round(matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0)
  lut = np.concatenate([lut.astype(np.uint8), np.full((1, 3), 255, np.uint8)])  # 256: NaN.
  height, width = values.shape
  rgb = np.empty((height, width, 3), np.uint8)
  scale = 255.0 / max(float(vmax), 1e-12)
  for top in range(0, height, _BLOCK_ROWS):
    block = np.asarray(values[top:top + _BLOCK_ROWS], np.float32)
    index = np.clip(np.round(np.nan_to_num(block, nan=0.0) * scale), 0, 255).astype(np.int16)
    index[np.isnan(block)] = 256
    rgb[top:top + _BLOCK_ROWS] = lut[index]
  return rgb


def _colour_bar(height: int, vmax: float, label: str, cmap: str) -> np.ndarray:
  """A white strip ``[height, 110, 3]`` holding a vertical colour bar, ticks and ``label``."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  dpi = 100
  fig = plt.figure(figsize=(_BAR_PX / dpi, height / dpi), dpi=dpi)
  cax = fig.add_axes((12 / _BAR_PX, 0.08, 14 / _BAR_PX, 0.84))
  mappable = matplotlib.cm.ScalarMappable(
      norm=matplotlib.colors.Normalize(vmin=0.0, vmax=vmax), cmap=cmap)
  bar = fig.colorbar(mappable, cax=cax)
  bar.set_label(label)
  buffer = io.BytesIO()
  fig.savefig(buffer, dpi=dpi, format="png")
  plt.close(fig)
  buffer.seek(0)
  with Image.open(buffer) as png:
    strip = np.asarray(png.convert("RGB"))
  out = np.full((height, _BAR_PX, 3), 255, np.uint8)
  h, w = min(height, strip.shape[0]), min(_BAR_PX, strip.shape[1])
  out[:h, :w] = strip[:h, :w]
  return out


def write_color_png(path: str, values: np.ndarray, vmax: float, label: str,
                    cmap: str = "magma_r") -> None:
  """Writes ``values`` [H, W] colour-mapped (0 to ``vmax``), with a colour bar titled ``label``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  height, width = values.shape
  canvas_h, image_w = max(height, 120), max(width, 160)
  canvas = np.full((canvas_h, image_w + _BAR_PX, 3), 255, np.uint8)
  canvas[:height, :width] = colorize(values, vmax, cmap)
  canvas[:, image_w:] = _colour_bar(canvas_h, vmax, label, cmap)
  Image.fromarray(canvas).save(path)
