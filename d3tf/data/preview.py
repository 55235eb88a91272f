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

from d3tf.data.plots import write_preview
from d3tf.optics import psf as psf_lib

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
_PSF = flags.DEFINE_enum("psf", psf_lib.DEFAULT_PSF, list(psf_lib.names()),
                         "Point-spread function.")
_MODE = flags.DEFINE_enum("render_mode", "improved", ["improved", "paper"],
                          "Defocus renderer mode.")
_DPI = flags.DEFINE_integer("dpi", 100, "Resolution of the PNG, dots per inch.")


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
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
