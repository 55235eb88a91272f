"""Thin-lens camera model: how large a point at a given depth is blurred.

All lengths are in metres; blur sizes are in pixels of the sensor.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np


#: The parameters as people quote them: (field, label, scale from SI, unit).
PARAMETERS = (("focal_length_m", "focal length", 1e3, "mm"), ("f_number", "f-number", 1.0, ""),
              ("pixel_pitch_m", "pixel pitch", 1e6, "um"),
              ("focus_distance_m", "focus distance", 1.0, "m"))


def _check_positive_finite(name: str, value: Any) -> float:
  """Returns ``value`` as a float, or raises ValueError naming the parameter."""
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"Camera parameter {name} must be a number, got {value!r}") from None
  if not math.isfinite(number) or number <= 0.0:
    raise ValueError(
        f"Camera parameter {name} must be positive and finite, got {value!r}")
  return number


#: Plausible range of each parameter (SI units), with the unit people quote it in. A value
#: outside is almost always a unit mistake (millimetres given as metres, or the reverse).
PLAUSIBLE_RANGES = {
    "focal_length_m": (1e-4, 5.0, 1e-3, "mm"),      # 0.1 mm (phones: ~2 mm) to 5 m.
    "f_number": (0.3, 256.0, 1.0, ""),
    "pixel_pitch_m": (1e-7, 1e-2, 1e-6, "um"),       # 0.1 um to 10 mm (binned, downsampled).
    "focus_distance_m": (1e-4, 1e6, 1.0, "m"),
}


def _check_plausible(name: str, value: float) -> None:
  """Raises ValueError naming ``name`` if ``value`` is outside :data:`PLAUSIBLE_RANGES`."""
  lo, hi, unit_scale, unit = PLAUSIBLE_RANGES[name]
  if lo <= value <= hi:
    return
  if unit_scale == 1.0:
    shown = f"{value:g}{' ' + unit if unit else ''}"
    bounds = f"{lo:g}-{hi:g}{' ' + unit if unit else ''}"
  else:
    shown = f"{value:g} m = {value / unit_scale:g} {unit}"
    bounds = f"{lo / unit_scale:g}-{hi / unit_scale:g} {unit}"
  raise ValueError(f"Camera parameter {name} must be within {bounds}, got {shown}: "
                   "is it in the wrong unit?")


@dataclasses.dataclass(frozen=True)
class Camera:
  """A thin-lens camera focused at a fixed distance.

  Attributes:
    focal_length_m: Focal length ``f`` in metres (15 mm is ``0.015``).
    f_number: The f-number ``N``; the aperture diameter is ``f / N``.
    pixel_pitch_m: Size of one (possibly downsampled) sensor pixel, metres.
    focus_distance_m: Distance ``d_f`` of the plane in focus, metres. Must be
      beyond the focal length, or the lens cannot focus on it.
  """

  focal_length_m: float
  f_number: float
  pixel_pitch_m: float
  focus_distance_m: float

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = _check_positive_finite(field.name, getattr(self, field.name))
      _check_plausible(field.name, value)
      object.__setattr__(self, field.name, value)
    if self.focus_distance_m <= self.focal_length_m:
      raise ValueError(
          "Camera parameter focus_distance_m must be beyond the focal length "
          f"({self.focal_length_m!r} m), got {self.focus_distance_m!r}")

  # ----------------------------------------------------------------- presets
  @classmethod
  def nyu(cls, focus_distance_m: float = 2.0) -> "Camera":
    """The paper's synthetic camera for NYU Depth v2: 15 mm, f/2.8, 5.6 um."""
    return cls(focal_length_m=15e-3, f_number=2.8, pixel_pitch_m=5.6e-6,
               focus_distance_m=focus_distance_m)

  @classmethod
  def dslr_d200_35mm(cls, f_number: float = 2.8,
                     focus_distance_m: float = 1.7) -> "Camera":
    """The real DFD dataset's Nikon D200 with a 35 mm lens, images downsampled x6.

    Args:
      f_number: 2.8 for the real photos; the paper's synthetic pre-training
        used 2.5.
      focus_distance_m: 1.7 m in the dataset.
    """
    return cls(focal_length_m=35e-3, f_number=f_number, pixel_pitch_m=36e-6,
               focus_distance_m=focus_distance_m)

  # --------------------------------------------------------------- geometry
  @property
  def aperture_diameter_m(self) -> float:
    """Diameter ``A = f / N`` of the entrance pupil, metres."""
    return self.focal_length_m / self.f_number

  @property
  def sensor_distance_m(self) -> float:
    """Lens-to-sensor distance ``s = 1 / (1/f - 1/d_f)``, metres."""
    return 1.0 / (1.0 / self.focal_length_m - 1.0 / self.focus_distance_m)

  @property
  def blur_scale_px(self) -> float:
    """``A * s / p``: blur diameter in pixels per unit of ``|1/d_f - 1/d|`` (1/m)."""
    return self.aperture_diameter_m * self.sensor_distance_m / self.pixel_pitch_m

  def signed_blur_px(self, depth_m):
    """Signed blur-circle diameter in pixels: negative in front of the focal plane.

    ``c(d) = (f/N) * s * (1/d_f - 1/d) / p``. It grows monotonically with depth,
    so ordering by ``c`` is ordering by depth, and ``|c|`` is the blur diameter.

    Args:
      depth_m: Depth in metres: a number, a NumPy array or a ``tf.Tensor``.

    Returns:
      The signed diameter, of the same kind as ``depth_m``.
    """
    return self.blur_scale_px * (1.0 / self.focus_distance_m - 1.0 / depth_m)

  def blur_diameter_px(self, depth_m):
    """Blur-circle diameter ``eps(d)`` in pixels of a point at ``depth_m`` metres.

    ``eps(d) = (f/N) * s * |1/d_f - 1/d| / p`` with ``s = 1/(1/f - 1/d_f)``.

    Args:
      depth_m: Depth in metres: a number, a NumPy array or a ``tf.Tensor``.

    Returns:
      The diameter, of the same kind as ``depth_m`` (a float for a number).
    """
    signed = self.signed_blur_px(depth_m)
    if isinstance(signed, (float, int, np.floating, np.ndarray)):
      return np.abs(signed) if isinstance(signed, np.ndarray) else abs(float(signed))
    return abs(signed)  # tf.Tensor and other array types implement __abs__.

  def depth_for_signed_blur(self, signed_blur_px):
    """Inverse of :meth:`signed_blur_px`: the depth (m) whose signed blur is given.

    Signed blurs at or beyond ``blur_scale / d_f`` (infinitely far) give ``inf``.
    """
    inverse_depth = 1.0 / self.focus_distance_m - np.asarray(signed_blur_px,
                                                              dtype=np.float64) / self.blur_scale_px
    with np.errstate(divide="ignore"):
      return np.where(inverse_depth > 0, 1.0 / np.maximum(inverse_depth, 1e-300), np.inf)

  def with_parameters(self, focal_length_mm: float | None = None, f_number: float | None = None,
                      pixel_pitch_um: float | None = None,
                      focus_distance_m: float | None = None) -> "Camera":
    """A copy with some parameters replaced, given in the units people quote them.

    Args:
      focal_length_mm: New focal length in millimetres, or None to keep it.
      f_number: New f-number, or None.
      pixel_pitch_um: New pixel pitch in micrometres, or None.
      focus_distance_m: New focus distance in metres, or None.

    Returns:
      The new (validated) camera.
    """
    params = self.to_dict()
    for key, value, unit in (("focal_length_m", focal_length_mm, 1e-3),
                             ("f_number", f_number, 1.0),
                             ("pixel_pitch_m", pixel_pitch_um, 1e-6),
                             ("focus_distance_m", focus_distance_m, 1.0)):
      if value is not None:
        params[key] = value * unit
    return Camera(**params)

  def describe(self) -> str:
    """The four parameters in the units people quote them, e.g. for logs.

    ``"focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m"``.
    """
    return ", ".join(f"{label} {getattr(self, key) * scale:g}{' ' + unit if unit else ''}"
                     for key, label, scale, unit in PARAMETERS)

  def to_dict(self) -> dict[str, float]:
    """The four parameters as a JSON-ready dictionary (saved with runs and exports)."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, params: dict[str, Any]) -> "Camera":
    """Builds a camera from :meth:`to_dict`'s output; names any missing key."""
    names = [field.name for field in dataclasses.fields(cls)]
    missing = [name for name in names if name not in params]
    if missing:
      raise ValueError(f"Camera parameters are missing {missing}; got {dict(params)!r}")
    return cls(**{name: params[name] for name in names})
