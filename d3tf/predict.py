r"""Predicts depth for your own photos with a trained model: ``python -m d3tf.predict``.

``--input`` is an image file, a folder (its .png/.jpg/.jpeg/.bmp/.tif files)
or a glob pattern (quote it). For each photo ``NAME`` it writes, into
``--output_dir``, at the photo's own resolution:

* ``NAME_depth_mm.png``: depth as a 16-bit grey PNG in millimetres
  (``round(depth_m * 1000)``, clipped to 0-65535);
* ``NAME_depth.npy``: depth as float32 metres, ``[H, W]``;
* ``NAME_depth_color.png``: colour-mapped depth with a colour bar in metres;
* uncertainty, when the model gives one (``--samples`` T > 1 with MC dropout
  or variational layers, or a model with an aleatoric head): the depth above
  is then the mean of the samples, and the standard deviations go to
  ``NAME_depth_std.npy`` (the total, float32 metres) and
  ``NAME_depth_std_color.png``, plus where present its parts
  ``NAME_epistemic_std.npy`` / ``_color.png`` (spread of the T samples) and
  ``NAME_aleatoric_std.npy`` / ``_color.png`` (the log-scale head's). The
  three colour maps of a photo share one scale (0 to the largest total std)
  and have a colour bar in metres.

``--model`` may also be an export of ``python -m d3tf.export``: a SavedModel
(version folder, or the model's export folder for its latest version) or a
``.tflite`` file (a fixed-size TFLite model needs photos of its input size).
The export's camera, training data and d3tf versions are logged; it draws the
number of Monte-Carlo samples fixed at export (``--samples`` 1 or that number).

Images of any size work: they are padded (reflect) to a multiple of 32 and
the prediction is cropped back.

A depth-from-defocus model only works on photos taken with the camera it was
trained with (same focal length, f-number, pixel pitch after any resizing,
and focus distance). That camera is read from the model's
``d3tf_metadata.json`` and logged; state your own camera with ``--camera``
and/or its parameters, and a warning says where they differ.

Examples::

  python -m d3tf.predict --model=runs/nyu_focus2m --input=photos/ --output_dir=depth
  python -m d3tf.predict --model=runs/dfd_finetune/best.keras --input='shots/*.JPG' \
      --camera=dslr --samples=20
"""

from __future__ import annotations

import glob
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf import inference

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Standard deviations of Predictor.predict written as files: key (file name part), bar label.
_STD_OUTPUTS = (("depth_std", "total depth std (m)"), ("epistemic_std", "epistemic std (m)"),
                ("aleatoric_std", "aleatoric std (m)"))

_MODEL = flags.DEFINE_string(
    "model", None, "Trained model: a model_dir of d3tf.train (model.keras, else best.keras), "
    "a .keras file with d3tf_metadata.json beside it, or an export of d3tf.export (a SavedModel "
    "version folder, a model's export folder for its latest version, or a .tflite file).")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "auto", list(artifacts.CHECKPOINTS),
                                artifacts.model_dir.CHECKPOINT_HELP)
_INPUT = flags.DEFINE_string("input", None, "An image file, a folder of images, or a glob "
                             "pattern (quoted) of images.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "predictions", "Folder for the depth files.")
_SAMPLES = flags.DEFINE_integer(
    "samples", 1, "Monte-Carlo samples (MC dropout and variational layers): 1 for a single "
    "deterministic pass; T > 1 (e.g. 20) also writes the epistemic and total std maps. A model "
    "with an aleatoric head writes its std maps with any T.", lower_bound=1)
_CAMERA = flags.DEFINE_enum(
    "camera", None, ["nyu", "dslr", "none"],
    "The camera that took your photos, to check against the model's: 'nyu' or 'dslr' presets "
    "(see d3tf.train), or 'none' for all-in-focus photos. Unset: not checked, unless a "
    "parameter below is given (then it overrides the model's camera).")
_FOCAL = flags.DEFINE_float("focal_length_mm", None, "Your camera's focal length, mm.")
_F_NUMBER = flags.DEFINE_float("f_number", None, "Your camera's f-number.")
_PITCH = flags.DEFINE_float("pixel_pitch_um", None, "Your camera's pixel pitch, um (after any "
                            "resizing of the photos).")
_FOCUS = flags.DEFINE_float("focus_distance_m", None, "Your camera's focus distance, metres.")
_MAX_DEPTH = flags.DEFINE_float("color_max_depth_m", None, "Top of the colour scale, metres "
                                "(default: the model's maximum depth).")

_MAX_TILE_PIXELS = flags.DEFINE_integer(
    "max_tile_pixels", 1024 * 1024, "Bounded memory for large photos: a photo with more pixels "
    "is predicted in overlapping square tiles of at most this many pixels (side a multiple of "
    "32; 64 px overlap, blended; see d3tf.tiling) and the depth comes back at its full "
    "resolution. 0: one pass whatever the size.", lower_bound=0)

flags.mark_flags_as_required(["model", "input"])


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
      raise ValueError(f"--input={pattern}: the folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files
  if os.path.isfile(pattern):
    return [pattern]
  files = sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
  if not files:
    raise ValueError(f"--input={pattern}: no such file or folder, and no file matches it as a "
                     "glob pattern")
  return files


def _output_names(paths: list[str]) -> list[str]:
  """File stems, made unique (``NAME``, ``NAME_2``, ...) where two inputs share one."""
  names, seen = [], {}
  for path in paths:
    stem = os.path.splitext(os.path.basename(path))[0]
    count = seen.get(stem, 0) + 1
    seen[stem] = count
    names.append(stem if count == 1 else f"{stem}_{count}")
  return names


def stated_camera(model_camera):
  """The camera the user stated with flags, the string "none", or None if not stated."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  overrides = [(f, k, u) for f, k, u in ((_FOCAL, "focal_length_m", 1e-3),
                                          (_F_NUMBER, "f_number", 1.0),
                                          (_PITCH, "pixel_pitch_m", 1e-6),
                                          (_FOCUS, "focus_distance_m", 1.0))
               if f.value is not None]
  if _CAMERA.value == "none":
    if overrides:
      raise app.UsageError("--camera=none (all-in-focus photos) contradicts the camera "
                           "parameters given")
    return "none"
  if _CAMERA.value is None and not overrides:
    return None
  if _CAMERA.value == "nyu":
    base = Camera.nyu()
  elif _CAMERA.value == "dslr":
    base = Camera.dslr_d200_35mm()
  elif model_camera is not None:
    base = model_camera
  else:
    missing = {"focal_length_m", "f_number", "pixel_pitch_m", "focus_distance_m"} - {
        k for _, k, _ in overrides}
    if missing:
      raise app.UsageError(f"The model has no camera to start from: give --camera, or all "
                           f"four camera parameters (missing {sorted(missing)})")
    base = None
  if base is not None:
    return base.with_parameters(_FOCAL.value, _F_NUMBER.value, _PITCH.value, _FOCUS.value)
  return Camera(**{key: flag.value * unit for flag, key, unit in overrides})


def camera_differences(model_camera, user_camera) -> list[str]:
  """Human-readable differences between two cameras (see d3tf.optics.camera_match)."""
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    paths = list_inputs(_INPUT.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  from d3tf.data.readers import common  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top

  from d3tf import tiling  # pylint: disable=g-import-not-at-top

  stated_camera(Camera.nyu())  # Checks the camera flags now, before the slow model load.
  if _MAX_TILE_PIXELS.value:
    tiling.tile_side(_MAX_TILE_PIXELS.value)  # Raises ValueError for a budget below 32x32.
  predictor = inference.load_predictor(_MODEL.value, checkpoint=_CHECKPOINT.value)
  logging.info("Model %s: %s", predictor.path, artifacts.describe(predictor.metadata))
  logging.info("Camera the model was trained with: %s",
               camera_match.describe_camera(predictor.camera))
  user_camera = stated_camera(predictor.camera)
  if user_camera is not None:
    if not camera_match.warn_if_mismatch(predictor.camera, user_camera, "your photos"):
      logging.info("Your stated camera matches the model's.")
  elif predictor.camera is not None:
    logging.info("Use photos from that camera (state yours with --camera / --focal_length_mm "
                 "... to have it checked).")
  model_config = (predictor.metadata.model_config if predictor.metadata is not None else None) or {}
  vmax = _MAX_DEPTH.value or float(model_config.get("max_depth_m", 10.0))
  out = _OUTPUT_DIR.value
  os.makedirs(out, exist_ok=True)
  for path, name in zip(paths, _output_names(paths)):
    image = common.read_image(path)
    result = (tiling.predict_tiled(predictor.predict, image, samples=_SAMPLES.value,
                                   max_tile_pixels=_MAX_TILE_PIXELS.value)
              if _MAX_TILE_PIXELS.value else predictor.predict(image, samples=_SAMPLES.value))
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
  logging.info("Wrote depth for %d image(s) to %s", len(paths), os.path.abspath(out))


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
