"""Prediction as a library: depth files for a list of photos, no flags read.

``python -m d3tf.predict`` (which calls :func:`predict_files`) documents the
files written per photo (depth as 16-bit millimetres, float32 metres, a colour
map; the standard deviations where the model gives them).
"""

from __future__ import annotations

import glob
import os
import pathlib
from typing import Any

from absl import logging
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Standard deviations of Predictor.predict written as files: key (file name part), bar label.
_STD_OUTPUTS = (("depth_std", "total depth std (m)"), ("epistemic_std", "epistemic std (m)"),
                ("aleatoric_std", "aleatoric std (m)"))
#: --camera_from_exif: use the EXIF where no flag states a value ("auto"), insist that each
#: value comes from a flag or the photo ("require"), or do not read it ("off").
EXIF_MODES = ("auto", "require", "off")
#: The model ``python -m d3tf.predict`` uses without ``--model``: the shipped camera-aware
#: export ``savedmodels/d3tf_anycamera/<latest version>`` (docs/any_camera.md).
DEFAULT_MODEL_NAME = "d3tf_anycamera"
#: Environment variable naming another exports folder to find the default model in (instead
#: of ``<repository root>/savedmodels``), e.g. for tests.
SAVEDMODELS_ENV = "D3TF_SAVEDMODELS"


def repository_root() -> pathlib.Path:
  """The d3tf repository's root folder (the parent of the ``d3tf`` package)."""
  return pathlib.Path(__file__).resolve().parents[2]


def savedmodels_dir() -> pathlib.Path:
  """The exports folder of the default model: ``$D3TF_SAVEDMODELS``, else ``<repo>/savedmodels``."""
  override = os.environ.get(SAVEDMODELS_ENV)
  return pathlib.Path(override) if override else repository_root() / "savedmodels"


def default_model_path() -> str:
  """The model of ``python -m d3tf.predict`` without ``--model``, logged as such.

  The latest SavedModel version of :data:`DEFAULT_MODEL_NAME` in
  :func:`savedmodels_dir`: the shipped camera-aware model, which takes each photo's camera
  (EXIF or the camera flags).

  Raises:
    FileNotFoundError: no SavedModel version there, naming the folder and ``--model``.
  """
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  base = savedmodels_dir() / DEFAULT_MODEL_NAME
  versions = [v for v in artifacts.list_versions(base)
              if (base / str(v) / artifacts.exports.SAVED_MODEL_FILENAME).is_file()]
  if not versions:
    raise FileNotFoundError(
        f"No --model given, and the default camera-aware model {base} is absent (no SavedModel "
        f"version folder with {artifacts.exports.SAVED_MODEL_FILENAME} in it). Pass "
        "--model=PATH: a model_dir of d3tf.train, a .keras file, or an export of d3tf.export "
        f"(or set ${SAVEDMODELS_ENV} to a folder holding {DEFAULT_MODEL_NAME}/<version>)")
  path = base / str(versions[-1])
  try:
    shown = path.relative_to(repository_root())
  except ValueError:
    shown = path
  logging.info("No --model given: using the camera-aware model %s (any camera; camera from each "
               "photo's EXIF or the flags)", shown)
  return str(path)


def list_inputs(pattern: str, argument: str | None = None) -> list[str]:
  """The image files named by ``pattern``: a file, a folder or a glob.

  Args:
    pattern: A file, a folder (its image files) or a glob pattern.
    argument: How the pattern was given, for messages (default
      ``--images=PATTERN``).

  Raises:
    ValueError: nothing matches (naming the argument).
  """
  argument = argument or f"--images={pattern}"
  if os.path.isdir(pattern):
    files = sorted(os.path.join(pattern, f) for f in os.listdir(pattern)
                   if f.lower().endswith(IMAGE_SUFFIXES) and
                   os.path.isfile(os.path.join(pattern, f)))
    if not files:
      raise ValueError(f"{argument}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
  if os.path.isfile(pattern):
    return [pattern]
  files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
  if not files:
    raise ValueError(f"{argument}: no such file or folder, and no file matches it as a "
                     "glob pattern")
  return files


def list_photos(arguments: list[tuple[str, str]]) -> list[str]:
  """The image files of several ``(argument, pattern)`` (:func:`list_inputs`), each once."""
  paths, seen = [], set()
  for argument, pattern in arguments:
    for path in list_inputs(pattern, argument):
      key = os.path.realpath(path)
      if key not in seen:
        seen.add(key)
        paths.append(path)
  return paths


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


def read_photo_cameras(paths: list[str], camera_config, camera_from_exif: str = "auto"):
  """Each photo's camera from the stated values and its EXIF (before a model is loaded).

  Per value: a flag (``--focal_length_mm``...) or a ``--camera`` preset's value, then the
  photo's EXIF (pixel pitch: FocalPlaneXResolution, the sensor table, the 35 mm equivalent);
  :func:`check_photo_cameras` then fills what is left from the model's camera.

  Args:
    paths: The photos.
    camera_config: The stated camera (:class:`d3tf.experiment.config.CameraConfig`; preset
      "model": no preset stated, "none": all-in-focus photos).
    camera_from_exif: One of :data:`EXIF_MODES`.

  Returns:
    A :class:`d3tf.optics.photo_camera.PhotoCamera` per photo, or None for preset "none".

  Raises:
    ValueError: a bad mode, or with "require" a value neither stated nor in a photo's EXIF
      (naming the photo, the value and its flag).
  """
  from d3tf.optics import photo_camera  # pylint: disable=g-import-not-at-top
  if camera_from_exif not in EXIF_MODES:
    raise ValueError(f"camera_from_exif must be one of {EXIF_MODES}, got {camera_from_exif!r}")
  if camera_config.preset == "none":
    return None
  preset = None if camera_config.preset == "model" else type(camera_config)(
      camera_config.preset).build()
  stated = photo_camera.stated_values(preset, f"--camera={camera_config.preset}",
                                      camera_config.overrides())
  cameras = [photo_camera.resolve(path, stated, read_exif=camera_from_exif != "off")
             for path in paths]
  if camera_from_exif == "require":
    for camera in cameras:
      photo_camera.refuse_missing(camera, "--camera_from_exif=require: ")
  return cameras


def needs_photo_camera(predictor) -> bool:
  """Whether each photo must state its camera (EXIF or flags) for ``predictor``.

  True for a camera-aware model trained on a camera range (its metadata's
  ``camera_range``): a photo's camera is its own, the model's default no
  fallback. A camera-aware model fine-tuned at one camera (no range, e.g. the
  DFD protocol started from the camera-aware weights) knows that camera alone:
  as for a single-camera model, a photo's missing values come from it.
  """
  if not getattr(predictor, "camera_aware", False):
    return False
  metadata = getattr(predictor, "metadata", None)
  return metadata is None or metadata.camera_range_name is not None


def check_photo_cameras(photo_cameras, model_camera, *, needs_camera: bool = False):
  """Completes each photo's camera from the model's, logs it, and warns where it differs.

  Logs one line per photo (each value and its source) and one mismatch warning per distinct
  camera that differs from the model's (naming its photos).

  Args:
    photo_cameras: :func:`read_photo_cameras`' output.
    model_camera: The model's training camera (its values are the last fallback), or None
      (a model trained on all-in-focus input: nothing to fall back on).
    needs_camera: The model takes the camera as input (camera-aware models): the model's
      default camera is no fallback (a photo's camera is its own), and a missing value is
      refused.

  Returns:
    The completed cameras (a photo's may still miss values when the model has no camera
    and does not need one).

  Raises:
    ValueError: a missing value that is needed, or an implausible one (naming the photo).
  """
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
  logging.info("Camera the model was trained with: %s",
               camera_match.describe_camera(model_camera))
  from d3tf.optics import photo_camera  # pylint: disable=g-import-not-at-top
  completed, groups = [], {}
  for photo in photo_cameras:
    photo = photo if needs_camera else photo.with_fallback(model_camera)
    logging.info("Camera of %s: %s", photo.path, photo.describe())
    if needs_camera:
      photo_camera.refuse_missing(photo, "the model is camera-aware: it needs each photo's "
                                  "camera; ")
    if photo.complete:
      groups.setdefault(photo.camera(), []).append(photo.path)  # Raises if implausible.
    completed.append(photo)
  for camera, paths in groups.items():
    if needs_camera:
      continue  # The camera is an input of the model: no mismatch to warn of.
    shown = (f"photo {paths[0]}" if len(paths) == 1 else
             f"{len(paths)} photos ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})")
    camera_match.warn_if_mismatch(model_camera, camera, shown)
  return completed


def predict_files(predictor, paths: list[str], output_dir: str, *, samples: int = 1,
                  color_max_depth_m: float | None = None,
                  max_tile_pixels: int = 0, cameras=None) -> list[dict[str, Any]]:
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
    cameras: Each photo's camera (:func:`check_photo_cameras`), or None. A camera-aware
      model (``predictor.camera_aware``) takes ``cameras[i].camera()`` with image ``i``
      (None: its metadata's default camera); other models know their one camera.

  Returns:
    Per photo: ``{"path", "name", "shape", "min_depth_m", "max_depth_m"}``, and
    ``"camera"`` (each value and its source) when ``cameras`` are given.
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
  if cameras is not None and len(cameras) != len(paths):
    raise ValueError(f"cameras: {len(cameras)} given for {len(paths)} photos")
  for index, (path, name) in enumerate(zip(paths, output_names(paths))):
    image = common.read_image(path)
    kwargs = {"samples": samples}
    if getattr(predictor, "camera_aware", False) and cameras is not None:
      kwargs["camera"] = cameras[index].camera()  # docs/any_camera.md
    result = (tiling.predict_tiled(predictor.predict, image, max_tile_pixels=max_tile_pixels,
                                   **kwargs)
              if max_tile_pixels else predictor.predict(image, **kwargs))
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
    if cameras is not None:
      written[-1]["camera"] = cameras[index].to_dict()
  logging.info("Wrote depth for %d image(s) to %s", len(paths), os.path.abspath(out))
  return written
