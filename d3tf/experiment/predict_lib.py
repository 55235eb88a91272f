"""Prediction as a library: depth files for a list of photos, no flags read.

``python -m d3tf.predict`` (which calls :func:`predict_files`) documents the
files written per photo (depth as 16-bit millimetres, float32 metres, a colour
map; the standard deviations where the model gives them).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from absl import logging
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Standard deviations of Predictor.predict written as files: key (file name part), bar label.
_STD_OUTPUTS = (("depth_std", "total depth std (m)"), ("epistemic_std", "epistemic std (m)"),
                ("aleatoric_std", "aleatoric std (m)"))
def list_inputs(pattern: str) -> list[str]:
  """The image files named by ``pattern``: a file, a folder or a glob.

  Raises:
    ValueError: nothing matches (naming the pattern).
  """
  if os.path.isdir(pattern):
    files = sorted(os.path.join(pattern, f) for f in os.listdir(pattern)
                   if f.lower().endswith(IMAGE_SUFFIXES) and
                   os.path.isfile(os.path.join(pattern, f)))
    if not files:
      raise ValueError(f"--images={pattern}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
  if os.path.isfile(pattern):
    return [pattern]
  files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
  if not files:
    raise ValueError(f"--images={pattern}: no such file or folder, and no file matches it as a "
                     "glob pattern")
  return files


def output_names(paths: list[str]) -> list[str]:
  """File stems, made unique (``NAME``, ``NAME_2``, ...) where two inputs share one."""
  names, seen = [], {}
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    count = seen.get(stem, 0) + 1
    seen[stem] = count
    names.append(stem if count == 1 else f"{stem}_{count}")
  return names


def camera_differences(model_camera, user_camera) -> list[str]:
  """Human-readable differences between two cameras (see :mod:`d3tf.optics.camera_match`)."""
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
  return camera_match.camera_differences(model_camera, user_camera)


def write_color_png(path: str, values: np.ndarray, vmax: float, label: str,
                    cmap: str = "magma_r") -> None:
  """Writes ``values`` [H, W] colour-mapped, with a colour bar (see d3tf.colormap_png)."""
  from d3tf import colormap_png  # pylint: disable=g-import-not-at-top
  colormap_png.write_color_png(path, values, vmax, label, cmap)


def _save_png(path: str, array: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(array).save(path)


def check_camera(model_camera, camera_config) -> list[str]:
  """Logs whether the stated camera matches the model's; returns the differences.

  Args:
    model_camera: The model's :class:`d3tf.optics.Camera` (None: all-in-focus).
    camera_config: A :class:`d3tf.experiment.config.CameraConfig` of the
      photos' camera (preset "model" with no parameters: nothing stated), or
      None.
  """
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
  logging.info("Camera the model was trained with: %s",
               camera_match.describe_camera(model_camera))
  stated = camera_config is not None and (camera_config.preset != "model" or
                                          camera_config.overrides())
  if not stated:
    if model_camera is not None:
      logging.info("Use photos from that camera (state yours with --camera / --focal_length_mm "
                   "... to have it checked).")
    return []
  user_camera = camera_config.build(model_camera)
  diffs = camera_match.warn_if_mismatch(
      model_camera, "none" if user_camera is None else user_camera, "your photos")
  if not diffs:
    logging.info("Your stated camera matches the model's.")
  return diffs


def predict_files(predictor, paths: list[str], output_dir: str, *, samples: int = 1,
                  color_max_depth_m: float | None = None,
                  max_tile_pixels: int = 0) -> list[dict[str, Any]]:
  """Predicts each photo of ``paths`` and writes its depth files into ``output_dir``.

  Args:
    predictor: A loaded predictor (:func:`d3tf.inference.load_predictor`).
    paths: Image files (:func:`list_inputs`).
    output_dir: Folder of the outputs (created).
    samples: Monte-Carlo samples per photo.
    color_max_depth_m: Top of the colour scale (default: the model's
      maximum depth).
    max_tile_pixels: A photo with more pixels is predicted in overlapping
      tiles of at most this many pixels (:mod:`d3tf.tiling`); 0: one pass.

  Returns:
    Per photo: ``{"path", "name", "shape", "min_depth_m", "max_depth_m"}``.
  """
  from d3tf import tiling  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import common  # pylint: disable=g-import-not-at-top
  if max_tile_pixels:
    tiling.tile_side(max_tile_pixels)  # Raises ValueError for a budget below 32x32.
  model_config = (predictor.metadata.model_config if predictor.metadata is not None
                  else None) or {}
  vmax = color_max_depth_m or float(model_config.get("max_depth_m", 10.0))
  out = output_dir
  os.makedirs(out, exist_ok=True)
  written = []
  for path, name in zip(paths, output_names(paths)):
    image = common.read_image(path)
    result = (tiling.predict_tiled(predictor.predict, image, samples=samples,
                                   max_tile_pixels=max_tile_pixels)
              if max_tile_pixels else predictor.predict(image, samples=samples))
    depth = result["depth"][0]
    np.save(os.path.join(out, f"{name}_depth.npy"), depth.astype(np.float32))
    _save_png(os.path.join(out, f"{name}_depth_mm.png"),
              np.clip(np.round(np.nan_to_num(depth) * 1000.0), 0, 65535).astype(np.uint16))
    write_color_png(os.path.join(out, f"{name}_depth_color.png"), depth, vmax, "depth (m)")
    if "depth_std" in result:
      top = max(float(np.nanmax(result["depth_std"][0])), 1e-3)
      for key, label in _STD_OUTPUTS:
        if key in result:
          std = result[key][0]
          np.save(os.path.join(out, f"{name}_{key}.npy"), std.astype(np.float32))
          write_color_png(os.path.join(out, f"{name}_{key}_color.png"), std, top, label,
                          cmap="viridis")
    logging.info("%s: %dx%d, depth %.2f-%.2f m -> %s", path, image.shape[1], image.shape[0],
                 float(np.nanmin(depth)), float(np.nanmax(depth)),
                 os.path.join(out, f"{name}_depth*"))
    written.append({"path": path, "name": name, "shape": list(depth.shape),
                    "min_depth_m": float(np.nanmin(depth)),
                    "max_depth_m": float(np.nanmax(depth))})
  logging.info("Wrote depth for %d image(s) to %s", len(paths), os.path.abspath(out))
  return written
