"""The camera parameters a photo's EXIF holds: focal length, f-number, pixel pitch, focus.

:func:`read_exif_camera` reads a photo's EXIF with Pillow and returns each of
the four parameters that it finds, with where it came from:

* focal length: ``FocalLength`` (0x920A);
* f-number: ``FNumber`` (0x829D), else ``ApertureValue`` (0x9202, APEX);
* pixel pitch: ``FocalPlaneXResolution`` / ``FocalPlaneResolutionUnit``
  (0xA20E / 0xA210; pixels per unit on the sensor at the full resolution
  ``PixelXDimension`` 0xA002), rescaled to the photo's own width; else the
  sensor width of the camera (:mod:`d3tf.optics.sensor_sizes`, by ``Make`` /
  ``Model`` 0x010F / 0x0110) over the photo's width; else, approximately, the
  35 mm equivalent focal length (``FocalLengthIn35mmFilm`` 0xA405: a sensor
  diagonal of ``43.27 mm * FocalLength / FocalLengthIn35mmFilm``, phones);
* focus distance: ``SubjectDistance`` (0x9206, metres; 0 means unknown, a
  numerator of 0xFFFFFFFF infinity, taken as :data:`INFINITE_FOCUS_M`).

Widths are taken along the long side, so the EXIF orientation does not
matter; a cropped photo has no right pitch here (give it by flag). Values
are in the units people quote (mm, f-number, um, m), as the camera flags.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

from d3tf.optics import sensor_sizes

#: The four camera parameters in quoted units: the names of the camera flags.
PARAMETER_NAMES = ("focal_length_mm", "f_number", "pixel_pitch_um", "focus_distance_m")
#: A focus distance of infinity is taken as this many metres (1/d_f = 1e-6 per metre: none).
INFINITE_FOCUS_M = 1e6
#: Diagonal of a 36 x 24 mm frame, the reference of 35 mm equivalent focal lengths.
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)

_EXIF_IFD = 0x8769
_MAKE, _MODEL = 0x010F, 0x0110
_FNUMBER, _APERTURE_VALUE, _SUBJECT_DISTANCE, _FOCAL_LENGTH = 0x829D, 0x9202, 0x9206, 0x920A
_PIXEL_X, _PIXEL_Y = 0xA002, 0xA003
_FOCAL_PLANE_X_RES, _FOCAL_PLANE_UNIT = 0xA20E, 0xA210
_FOCAL_LENGTH_35MM, _SUBJECT_DISTANCE_RANGE = 0xA405, 0xA40C
# FocalPlaneResolutionUnit: 2 inch (the default), 3 centimetre; 4 (millimetre) is written by
# some cameras though not in the standard. 1 (no absolute unit) gives no pitch.
_UNIT_MM = {2: 25.4, 3: 10.0, 4: 1.0}
_DISTANCE_RANGES = {1: "macro", 2: "close view", 3: "distant view"}


@dataclasses.dataclass(frozen=True)
class ExifCamera:
  """What a photo's EXIF says of its camera.

  Attributes:
    values: Parameter name (:data:`PARAMETER_NAMES`) -> ``(value, source)``,
      the value in quoted units, the source as logged, e.g.
      ``"EXIF FocalLength"``.
    missing: Parameter name -> why the EXIF gives no value (for messages).
    camera: Make and model, e.g. "Canon Canon EOS 5D Mark II" ("" if absent).
    size: The photo's ``(width, height)`` in pixels as stored.
  """

  values: dict[str, tuple[float, str]]
  missing: dict[str, str]
  camera: str = ""
  size: tuple[int, int] = (0, 0)


def _number(value: Any) -> float | None:
  """A positive finite float of an EXIF value (rational, int, float, 1-tuple), else None."""
  if isinstance(value, tuple) and len(value) == 1:
    value = value[0]
  try:
    number = float(value)
  except (TypeError, ValueError, ZeroDivisionError):
    return None
  return number if math.isfinite(number) and number > 0 else None


def _text(value: Any) -> str:
  if isinstance(value, bytes):
    value = value.decode("ascii", "replace")
  return " ".join(str(value or "").replace("\x00", " ").split())


def _focus_distance(exif_ifd) -> tuple[tuple[float, str] | None, str]:
  raw = exif_ifd.get(_SUBJECT_DISTANCE)
  range_code = exif_ifd.get(_SUBJECT_DISTANCE_RANGE)
  range_text = (f" (SubjectDistanceRange: {_DISTANCE_RANGES[range_code]})"
                if range_code in _DISTANCE_RANGES else "")
  if raw is None:
    return None, f"no SubjectDistance in the EXIF{range_text}"
  if getattr(raw, "numerator", None) == 0xFFFFFFFF or (
      isinstance(raw, float) and math.isinf(raw)):
    return (INFINITE_FOCUS_M, f"EXIF SubjectDistance infinity (taken as {INFINITE_FOCUS_M:g} m)"), ""
  distance = _number(raw)
  if distance is None:
    return None, f"EXIF SubjectDistance {raw} means unknown{range_text}"
  return (distance, "EXIF SubjectDistance"), ""


def _pixel_pitch(exif_ifd, make: str, model: str, size: tuple[int, int],
                 focal_length_mm: float | None) -> tuple[tuple[float, str] | None, str]:
  long_px = max(size)
  why = []
  resolution = _number(exif_ifd.get(_FOCAL_PLANE_X_RES))
  unit = exif_ifd.get(_FOCAL_PLANE_UNIT, 2)
  if resolution is not None and unit in _UNIT_MM:
    pitch_um = _UNIT_MM[unit] / resolution * 1000.0  # At the full resolution.
    full = [int(_number(exif_ifd.get(tag)) or 0) for tag in (_PIXEL_X, _PIXEL_Y)]
    if max(full) > 0 and max(full) != long_px:
      pitch_um *= max(full) / long_px
      return (pitch_um, f"EXIF FocalPlaneXResolution, rescaled from {max(full)} to {long_px} px"), ""
    return (pitch_um, "EXIF FocalPlaneXResolution"), ""
  why.append("no FocalPlaneXResolution" if resolution is None
             else f"FocalPlaneResolutionUnit {unit} is not a length")
  sensor = sensor_sizes.lookup(make, model)
  if sensor is not None:
    return (sensor.width_mm / long_px * 1000.0,
            f"sensor table: {sensor.name} {sensor.width_mm:g} mm wide / {long_px} px"), ""
  why.append(f"camera {make} {model!r} not in the sensor table" if model
             else "no Make/Model for the sensor table")
  equivalent = _number(exif_ifd.get(_FOCAL_LENGTH_35MM))
  if equivalent is not None and focal_length_mm is not None:
    diagonal_mm = FULL_FRAME_DIAGONAL_MM * focal_length_mm / equivalent
    return (diagonal_mm / math.hypot(*size) * 1000.0,
            f"EXIF FocalLengthIn35mmFilm {equivalent:g} mm (sensor diagonal "
            f"{diagonal_mm:.2f} mm, approximate)"), ""
  why.append("no FocalLengthIn35mmFilm")
  return None, "; ".join(why)


def camera_from_exif(exif, size: tuple[int, int]) -> ExifCamera:
  """The camera parameters of a Pillow ``Image.Exif`` of a photo of ``size`` (width, height)."""
  exif_ifd = exif.get_ifd(_EXIF_IFD) if exif is not None else {}
  make = _text(exif.get(_MAKE)) if exif is not None else ""
  model = _text(exif.get(_MODEL)) if exif is not None else ""
  values, missing = {}, {}
  focal = _number(exif_ifd.get(_FOCAL_LENGTH))
  if focal is not None:
    values["focal_length_mm"] = (focal, "EXIF FocalLength")
  else:
    missing["focal_length_mm"] = "no FocalLength in the EXIF"
  f_number = _number(exif_ifd.get(_FNUMBER))
  aperture_value = _number(exif_ifd.get(_APERTURE_VALUE))
  if f_number is not None:
    values["f_number"] = (f_number, "EXIF FNumber")
  elif aperture_value is not None:
    values["f_number"] = (math.sqrt(2.0) ** aperture_value, "EXIF ApertureValue")
  else:
    missing["f_number"] = "no FNumber or ApertureValue in the EXIF"
  for name, (found, why) in (
      ("pixel_pitch_um", _pixel_pitch(exif_ifd, make, model, size, focal)),
      ("focus_distance_m", _focus_distance(exif_ifd))):
    if found is not None:
      values[name] = found
    else:
      missing[name] = why
  return ExifCamera(values=values, missing=missing, camera=f"{make} {model}".strip(),
                    size=tuple(size))


def read_exif_camera(path: str) -> ExifCamera:
  """The camera parameters in the EXIF of the photo at ``path`` (only its header is read).

  Raises:
    ValueError: the file is not an image Pillow can open (naming it).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as image:
      size = image.size
      try:
        exif = image.getexif()
      except (OSError, ValueError, SyntaxError, struct.error):  # Corrupt EXIF: as none.
        exif = None
      return camera_from_exif(exif, size)
  except OSError as e:
    raise ValueError(f"{path}: cannot read the photo's header: {e}") from None
