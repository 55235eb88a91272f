"""Does a model's training camera match the camera of the photos it is given?

A depth-from-defocus model only works on photos of the camera it was trained
with. :func:`camera_differences` lists where two cameras differ;
:func:`warn_if_mismatch` logs the warning that predict and evaluate give.
"""

from __future__ import annotations

import math

from absl import logging

from d3tf.optics import camera as camera_lib


def camera_differences(model_camera, photo_camera, rel_tol: float = 1e-3) -> list[str]:
  """Human-readable differences between two cameras (``None``/"none": all-in-focus).

  Args:
    model_camera: The model's training camera, or None (all-in-focus input).
    photo_camera: The photos' camera, or the string "none" / None for
      all-in-focus photos.
    rel_tol: Relative tolerance on each parameter.

  Returns:
    One line per difference, e.g. ``"focal length 35mm (model: 15mm)"``;
    empty if the cameras match.
  """
  if photo_camera is None:
    photo_camera = "none"
  if model_camera is None and photo_camera == "none":
    return []
  if model_camera is None:
    return ["the model was trained on all-in-focus images, not on a camera's defocus blur"]
  if photo_camera == "none":
    return ["the photos are all-in-focus, but the model was trained on defocused ones"]
  model_params, photo_params = model_camera.to_dict(), photo_camera.to_dict()
  diffs = []
  for key, label, scale, unit in camera_lib.PARAMETERS:
    a, b = model_params[key], photo_params[key]
    if not math.isclose(a, b, rel_tol=rel_tol):
      diffs.append(f"{label} {b * scale:g}{unit} (model: {a * scale:g}{unit})")
  return diffs


def describe_camera(camera) -> str:
  """One line: the camera's parameters in the units people quote, or all-in-focus."""
  return "none (all-in-focus input)" if camera is None else camera.describe()


def warn_if_mismatch(model_camera, photo_camera, photos: str = "the photos") -> list[str]:
  """Logs a warning if ``photo_camera`` differs from ``model_camera``; returns the differences."""
  diffs = camera_differences(model_camera, photo_camera)
  if diffs:
    logging.warning("The camera of %s differs from the model's training camera: %s. Depth from "
                    "defocus depends on the camera: expect wrong depth unless the photos match "
                    "the model's camera.", photos, "; ".join(diffs))
  return diffs
