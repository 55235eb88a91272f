"""The camera of each photo: its four parameters, each with where it came from.

A photo's camera is resolved value by value, first source first:

1. what the user stated (a flag: ``--focal_length_mm``, or a ``--camera``
   preset's values);
2. the photo's EXIF, and for the pixel pitch the sensor table or the 35 mm
   equivalent (:mod:`d3tf.optics.exif_camera`);
3. a fallback camera: the model's training camera ("model metadata"), for
   models that know one camera.

:func:`resolve` does steps 1-2 (before a model is loaded);
:meth:`PhotoCamera.with_fallback` step 3. A :class:`PhotoCamera` is what a
camera-aware model will take per image (:meth:`PhotoCamera.camera`,
:meth:`PhotoCamera.to_dict`); :func:`refuse_missing` names the photo, each
missing value and the flag that supplies it.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from d3tf.optics import camera as camera_lib
from d3tf.optics import exif_camera

PARAMETER_NAMES = exif_camera.PARAMETER_NAMES
#: Quoted name -> (label, unit), e.g. "focal_length_mm" -> ("focal length", "mm").
_LABELS = {name: (label, unit) for name, (_, label, _, unit)
           in zip(PARAMETER_NAMES, camera_lib.PARAMETERS)}
MODEL_SOURCE = "model metadata"


@dataclasses.dataclass(frozen=True)
class CameraValue:
  """One camera parameter of a photo.

  Attributes:
    value: In quoted units (mm, f-number, um, m); None if not known.
    source: Where the value came from ("--f_number", "EXIF FNumber", "sensor
      table: ...", "model metadata"), or, without a value, why it is missing.
  """

  value: float | None
  source: str


@dataclasses.dataclass(frozen=True)
class PhotoCamera:
  """The camera of one photo: the four parameters by quoted name, each a :class:`CameraValue`."""

  path: str
  values: Mapping[str, CameraValue]

  def missing(self) -> list[str]:
    """Names of the parameters without a value."""
    return [name for name in PARAMETER_NAMES if self.values[name].value is None]

  @property
  def complete(self) -> bool:
    return not self.missing()

  def camera(self) -> camera_lib.Camera:
    """The :class:`~d3tf.optics.Camera` of the four values.

    Raises:
      ValueError: a value is missing or implausible (naming the photo, the
        value's source and the flag that replaces it).
    """
    refuse_missing(self)
    v = {name: self.values[name].value for name in PARAMETER_NAMES}
    try:
      return camera_lib.Camera(
          focal_length_m=v["focal_length_mm"] * 1e-3, f_number=v["f_number"],
          pixel_pitch_m=v["pixel_pitch_um"] * 1e-6, focus_distance_m=v["focus_distance_m"])
    except ValueError as e:
      sources = ", ".join(f"{_LABELS[n][0]} from {self.values[n].source}"
                          for n in PARAMETER_NAMES)
      raise ValueError(f"{self.path}: {e} ({sources}); give the right value with its flag "
                       "(--focal_length_mm, --f_number, --pixel_pitch_um, --focus_distance_m)"
                       ) from None

  def with_fallback(self, fallback: camera_lib.Camera | None,
                    source: str = MODEL_SOURCE) -> "PhotoCamera":
    """A copy whose missing values are ``fallback``'s (None: left missing)."""
    if fallback is None:
      return self
    quoted = _quoted(fallback)
    return dataclasses.replace(self, values={
        name: value if value.value is not None else CameraValue(quoted[name], source)
        for name, value in self.values.items()})

  def describe(self) -> str:
    """One line: each value with its source, e.g. ``focal length 50 mm (EXIF FocalLength), ...``."""
    parts = []
    for name in PARAMETER_NAMES:
      label, unit = _LABELS[name]
      value = self.values[name]
      shown = "unknown" if value.value is None else f"{value.value:.4g}{' ' + unit if unit else ''}"
      parts.append(f"{label} {shown} ({value.source})")
    return ", ".join(parts)

  def to_dict(self) -> dict[str, dict[str, float | str | None]]:
    """``{name: {"value": ..., "source": ...}}``, JSON-ready."""
    return {name: dataclasses.asdict(self.values[name]) for name in PARAMETER_NAMES}


def _quoted(camera: camera_lib.Camera) -> dict[str, float]:
  params = camera.to_dict()
  return {name: params[field] * scale for name, (field, _, scale, _)
          in zip(PARAMETER_NAMES, camera_lib.PARAMETERS)}


def stated_values(camera: camera_lib.Camera | None, source: str,
                  overrides: Mapping[str, float] | None = None) -> dict[str, CameraValue]:
  """The values a user stated: ``camera``'s (a preset, from ``source``), then flag overrides.

  Args:
    camera: A preset camera the user named (e.g. ``--camera=dslr``), or None.
    source: How the preset was named, e.g. "--camera=dslr".
    overrides: Quoted name -> value given by its flag (``--f_number``...).
  """
  values = {}
  if camera is not None:
    values = {name: CameraValue(value, source) for name, value in _quoted(camera).items()}
  for name, value in (overrides or {}).items():
    if name not in _LABELS:
      raise ValueError(f"Unknown camera parameter {name!r}; expected one of {PARAMETER_NAMES}")
    if value is not None:
      values[name] = CameraValue(float(value), f"--{name}")
  return values


def resolve(path: str, stated: Mapping[str, CameraValue] | None = None, *,
            read_exif: bool = True) -> PhotoCamera:
  """The camera of the photo at ``path``: stated values first, then its EXIF.

  Args:
    path: The photo.
    stated: Values the user stated (:func:`stated_values`); they win.
    read_exif: False: the EXIF is not read (values not stated stay missing).

  Returns:
    A :class:`PhotoCamera`, possibly with missing values (see
    :meth:`PhotoCamera.with_fallback` and :func:`refuse_missing`).
  """
  stated = dict(stated or {})
  exif = None
  if read_exif and any(name not in stated for name in PARAMETER_NAMES):
    exif = exif_camera.read_exif_camera(path)
  values = {}
  for name in PARAMETER_NAMES:
    if name in stated:
      values[name] = stated[name]
    elif exif is None:
      values[name] = CameraValue(None, "EXIF not read")
    elif name in exif.values:
      values[name] = CameraValue(*exif.values[name])
    else:
      values[name] = CameraValue(None, exif.missing[name])
  return PhotoCamera(path=path, values=values)


def refuse_missing(photo: PhotoCamera, context: str = "") -> None:
  """Raises ValueError if ``photo`` lacks a value: one line naming the file, values and flags.

  Args:
    photo: The photo's camera.
    context: Prepended to the message, e.g. "--camera_from_exif=require: ".
  """
  missing = photo.missing()
  if not missing:
    return
  what = "; ".join(f"no {_LABELS[n][0]} ({photo.values[n].source})" for n in missing)
  flags = [f"--{n}" for n in missing]
  flags = flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"
  raise ValueError(f"{context}{photo.path}: the photo's camera is incomplete: {what}. Give "
                   f"{flags}")
