"""Ranges of cameras, a camera drawn per training example, and its render.

A camera-aware model (``D3NetConfig.camera_aware``) is trained on cameras
drawn per example from a :class:`CameraRange`: a weighted mixture of camera
*families*, each a box of focal length, f-number, pixel pitch and focus
distance (each drawn log-uniformly inside its bounds). The presets
(:data:`RANGES`) are data, with their sources; ``docs/any_camera.md`` holds
the table.

A drawn camera travels with its example as a *camera vector*: float32 ``[4]``
in the units people quote, in the order of :data:`VECTOR_FIELDS`
(focal length mm, f-number, pixel pitch um, focus distance m).

Drawing is stateless: example ``i`` of a run seeded ``seed`` always gets the
same camera (:func:`sample_camera_vector`), so a resumed run draws what an
uninterrupted one would.

Rendering a drawn camera inside ``tf.data`` (:func:`render_defocus_vector`):
the layered renderer builds its slab grid from a Python camera, once per
graph. What the image shows depends on the camera only through the signed
blur diameter of each pixel, ``c(d) = K (1/d_f - 1/d)`` with ``K = f^2 d_f /
(N (d_f - f) p)``. So each example's depth is turned into its signed blur
(with the drawn camera's tensors), and that blur into the *pseudo-depth*
that a fixed reference camera (:func:`reference_camera`) blurs by the same
amount; the renderer, given the reference camera and the pseudo-depth,
renders exactly the drawn camera's blur (blur-spaced slabs sit at the same
blur values for every camera). One traced graph serves every camera.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

from d3tf.optics.camera import Camera

#: The camera vector's fields, in order, in the units people quote.
VECTOR_FIELDS = ("focal_length_mm", "f_number", "pixel_pitch_um", "focus_distance_m")
#: Largest blur diameter (pixels) a drawn camera may give over the depth range.
DEFAULT_MAX_BLUR_PX = 32.0


def _pair(name: str, values) -> tuple[float, float]:
  try:
    low, high = (float(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f"CameraFamily.{name} must be a pair (low, high), got {values!r}") from None
  if not (0 < low <= high < math.inf):
    raise ValueError(f"CameraFamily.{name} must satisfy 0 < low <= high < inf, got {values!r}")
  return low, high


@dataclasses.dataclass(frozen=True)
class CameraFamily:
  """A box of cameras: each parameter drawn log-uniformly in [low, high].

  Attributes:
    name: Short name, e.g. "nyu".
    focal_length_mm, f_number, pixel_pitch_um, focus_distance_m: (low,
      high) bounds; equal bounds fix the value. The pixel pitch is that of
      the image the model sees (after any downsampling).
    weight: Share of the examples drawn from this family (relative).
    source: Where the values come from.
  """

  name: str
  focal_length_mm: tuple[float, float]
  f_number: tuple[float, float]
  pixel_pitch_um: tuple[float, float]
  focus_distance_m: tuple[float, float]
  weight: float = 1.0
  source: str = ""

  def __post_init__(self):
    for name in VECTOR_FIELDS:
      object.__setattr__(self, name, _pair(name, getattr(self, name)))
    if not (isinstance(self.weight, (int, float)) and 0 < self.weight < math.inf):
      raise ValueError(f"CameraFamily.weight must be positive, got {self.weight!r}")
    if self.focus_distance_m[0] * 1e3 <= self.focal_length_mm[1]:
      raise ValueError(f"CameraFamily {self.name}: focus_distance_m {self.focus_distance_m} "
                       f"must lie beyond the focal length {self.focal_length_mm} mm")

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()}


@dataclasses.dataclass(frozen=True)
class CameraRange:
  """A weighted mixture of camera families, drawn from per training example.

  Attributes:
    name: The preset's name.
    families: The :class:`CameraFamily` boxes.
    max_blur_px: A drawn camera whose blur diameter would exceed this over
      ``depth_range_m`` gets a coarser pixel pitch (its photo downsampled,
      as the DFD photos were x6) so that it does not.
    depth_range_m: The depths (m) the blur bound holds over (the renderer's
      and the model's range).
  """

  name: str
  families: tuple[CameraFamily, ...]
  max_blur_px: float = DEFAULT_MAX_BLUR_PX
  depth_range_m: tuple[float, float] = (0.5, 10.0)

  def __post_init__(self):
    if not self.families:
      raise ValueError(f"CameraRange {self.name!r} needs at least one family")
    object.__setattr__(self, "families", tuple(self.families))
    if not 1.0 <= float(self.max_blur_px) <= 256.0:
      raise ValueError(f"CameraRange.max_blur_px must be in [1, 256], got {self.max_blur_px!r}")

  @property
  def weights(self) -> np.ndarray:
    w = np.array([f.weight for f in self.families], np.float64)
    return w / w.sum()

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready (saved in a camera-aware model's metadata)."""
    return {"name": self.name, "families": [f.to_dict() for f in self.families],
            "max_blur_px": float(self.max_blur_px), "depth_range_m": list(self.depth_range_m)}

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "CameraRange":
    families = tuple(CameraFamily(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in f.items()}) for f in values["families"])
    return cls(name=values["name"], families=families,
               max_blur_px=values.get("max_blur_px", DEFAULT_MAX_BLUR_PX),
               depth_range_m=tuple(values.get("depth_range_m", (0.5, 10.0))))

  def contains(self, vector, tolerance: float = 1e-4) -> bool:
    """Whether a camera vector lies in one of the families (pitch may be coarser)."""
    v = np.asarray(vector, np.float64)
    for family in self.families:
      inside = True
      for i, name in enumerate(VECTOR_FIELDS):
        low, high = getattr(family, name)
        if name == "pixel_pitch_um":
          high = math.inf  # The blur bound may coarsen the pitch.
        if not low * (1 - tolerance) <= v[i] <= high * (1 + tolerance):
          inside = False
      if inside:
        return True
    return False


_NYU_SOURCE = ("Carvalho et al. 2018, the synthetic NYUv2 camera (15 mm, f/2.8, 5.6 um); "
               "focus 1-8 m as in issue 14")
_NYU_LENS_SOURCE = ("the NYUv2 camera's lens and sensor (15 mm, 5.6 um) at f/2-f/5.6, focus 1-8 m: "
                    "the apertures of issue 14's camera-mismatch grid")
_DFD_SOURCE = ("Carvalho et al. 2018, DFD dataset: Nikon D200 (6.05 um pixels) + 35 mm lens, "
               "images downsampled x6 (36 um), f/2-f/8, focus about 1-3 m")
_PHONE_SOURCE = ("typical phone main cameras (maker spec sheets, 2020-2024): 24-26 mm-equivalent "
                 "lenses of 4-7 mm, f/1.5-f/2.2, 1.0-2.4 um (binned) pixels; photos used at full "
                 "size or downsampled up to x4 (pitch up to 10 um); focus 0.3-5 m")
_MIRRORLESS_SOURCE = ("typical APS-C / full-frame mirrorless kits and primes: 16-85 mm, "
                      "f/1.4-f/8, 3.8-6 um pixels downsampled x2-x8 (8-48 um); focus 0.5-5 m")

FAMILIES = {
    "nyu": CameraFamily("nyu", (15.0, 15.0), (2.8, 2.8), (5.6, 5.6), (1.0, 8.0),
                        source=_NYU_SOURCE),
    # The NYU lens at the mismatch grid's apertures (issue 14's f/2, f/2.8, f/5.6).
    "nyu_lens": CameraFamily("nyu_lens", (15.0, 15.0), (2.0, 5.6), (5.6, 5.6), (1.0, 8.0),
                             source=_NYU_LENS_SOURCE),
    "dfd_dslr": CameraFamily("dfd_dslr", (35.0, 35.0), (2.0, 8.0), (36.0, 36.0), (1.0, 3.0),
                             source=_DFD_SOURCE),
    "phone": CameraFamily("phone", (4.0, 7.0), (1.5, 2.2), (1.0, 10.0), (0.3, 5.0),
                          source=_PHONE_SOURCE),
    "mirrorless": CameraFamily("mirrorless", (16.0, 85.0), (1.4, 8.0), (8.0, 48.0), (0.5, 5.0),
                               source=_MIRRORLESS_SOURCE),
}



def _any_camera_range(name: str, nyu_family: str,
                      weights: tuple[float, float, float, float] = (0.3, 0.3, 0.2, 0.2)
                      ) -> CameraRange:
  """The four-family mix: ``nyu_family``, DSLR, phone, mirrorless, with ``weights``."""
  families = (nyu_family, "dfd_dslr", "phone", "mirrorless")
  return CameraRange(name, tuple(dataclasses.replace(FAMILIES[family], weight=weight)
                                 for family, weight in zip(families, weights)))


#: Camera range presets, by name (``camera.range`` / ``--camera_range``).
RANGES = {
    "anycamera": _any_camera_range("anycamera", "nyu"),
    # "anycamera" with the NYU family widened to the grid's apertures (docs/any_camera.md).
    "anycamera_wide": _any_camera_range("anycamera_wide", "nyu_lens"),
    # "anycamera" with the weight moved to the two cameras of the project's real data (the NYU
    # frames, the DFD photos): NYU 0.4, DSLR 0.4, phone 0.1, mirrorless 0.1. Same cameras.
    "anycamera_weighted": _any_camera_range("anycamera_weighted", "nyu", (0.4, 0.4, 0.1, 0.1)),
    "nyu": CameraRange("nyu", (FAMILIES["nyu"],)),
    "dfd_dslr": CameraRange("dfd_dslr", (FAMILIES["dfd_dslr"],)),
    "phone": CameraRange("phone", (FAMILIES["phone"],)),
    "mirrorless": CameraRange("mirrorless", (FAMILIES["mirrorless"],)),
}


def get_range(name: str) -> CameraRange:
  """The preset :class:`CameraRange` ``name``; ValueError naming the known ones."""
  if name not in RANGES:
    raise ValueError(f"unknown camera range {name!r}; known: {', '.join(RANGES)}")
  return RANGES[name]


# ------------------------------------------------------------ camera vectors
def camera_vector(camera: Camera) -> np.ndarray:
  """The float32 ``[4]`` vector of :data:`VECTOR_FIELDS` of ``camera``."""
  return np.array([camera.focal_length_m * 1e3, camera.f_number, camera.pixel_pitch_m * 1e6,
                   camera.focus_distance_m], np.float32)


def camera_from_vector(vector) -> Camera:
  """The :class:`Camera` of a ``[4]`` camera vector (validated)."""
  v = [float(x) for x in np.asarray(vector, np.float64).reshape(-1)]
  if len(v) != 4:
    raise ValueError(f"a camera vector has 4 values {VECTOR_FIELDS}, got {vector!r}")
  return Camera(focal_length_m=v[0] * 1e-3, f_number=v[1], pixel_pitch_m=v[2] * 1e-6,
                focus_distance_m=v[3])


def blur_scale_px(vector):
  """``K = f^2 d_f / (N (d_f - f) p)`` (pixels per 1/m) of camera vectors ``[..., 4]``.

  Works on NumPy arrays and tensors; the signed blur is ``K (1/d_f - 1/d)``.
  """
  f = vector[..., 0] * 1e-3
  n = vector[..., 1]
  p = vector[..., 2] * 1e-6
  s = vector[..., 3]
  return f * f * s / (n * (s - f) * p)


def max_blur_px(vector, depth_range_m=(0.5, 10.0)):
  """Largest blur diameter (pixels) of camera vectors over ``depth_range_m``."""
  near, far = depth_range_m
  inverse_focus = 1.0 / vector[..., 3]
  scale = blur_scale_px(vector)
  return scale * np.maximum(np.abs(inverse_focus - 1.0 / near), np.abs(inverse_focus - 1.0 / far))


# ----------------------------------------------------------------- sampling
def sample_camera_vector(camera_range: CameraRange, seed, index):
  """The camera of example ``index``: a float32 ``[4]`` tensor, stateless.

  Args:
    camera_range: The range to draw from.
    seed: A shape-[2] int tensor (or pair), e.g. a run's seed and a salt.
    index: The example's index in the stream (scalar int).

  Returns:
    float32 ``[4]``: focal length mm, f-number, pixel pitch um, focus m.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  key = tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64),
                                                 tf.cast(index, tf.int64))
  family_key, value_key = tf.unstack(tf.random.experimental.stateless_split(key, 2))
  logits = tf.math.log(tf.constant(camera_range.weights, tf.float32))[tf.newaxis]
  family = tf.random.stateless_categorical(logits, 1, family_key, dtype=tf.int32)[0, 0]
  bounds = np.array([[getattr(f, name) for name in VECTOR_FIELDS]
                     for f in camera_range.families], np.float64)  # [F, 4, 2]
  log_bounds = tf.constant(np.log(bounds), tf.float32)
  chosen = tf.gather(log_bounds, family)  # [4, 2]
  u = tf.random.stateless_uniform([4], value_key, dtype=tf.float32)
  vector = tf.exp(chosen[:, 0] + u * (chosen[:, 1] - chosen[:, 0]))
  # Coarser pixels where the blur would exceed the bound (the photo downsampled).
  scale = blur_scale_px(tf.cast(vector, tf.float64))
  inverse_focus = 1.0 / tf.cast(vector[3], tf.float64)
  near, far = camera_range.depth_range_m
  blur = scale * tf.maximum(tf.abs(inverse_focus - 1.0 / near), tf.abs(inverse_focus - 1.0 / far))
  factor = tf.cast(tf.maximum(blur / float(camera_range.max_blur_px), 1.0), tf.float32)
  return tf.tensor_scatter_nd_update(vector, [[2]], vector[2:3] * factor)


# ---------------------------------------------------------------- rendering
def reference_camera(max_blur: float) -> Camera:
  """A camera focused at 1 m whose ``K`` is ``2 * max_blur``: signed blurs in
  ``[-max_blur, max_blur]`` map to depths in ``[2/3, 2]`` m."""
  focal, f_number, focus = 0.05, 2.0, 1.0
  pitch = focal * focal * focus / (f_number * (focus - focal) * 2.0 * max_blur)
  return Camera(focal_length_m=focal, f_number=f_number, pixel_pitch_m=pitch,
                focus_distance_m=focus)


def render_defocus_vector(images, depths, vector, psf: str = "gaussian", seed=None,
                          max_blur: float = DEFAULT_MAX_BLUR_PX, **options: Any):
  """Renders the blur of the camera ``vector`` (a tensor) on one image.

  Same as :func:`d3tf.optics.render_defocus` with the camera of ``vector``
  (see the module docstring for how), for one ``[H, W, 3]`` image and its
  ``[H, W]`` depth; the vector may be a tensor drawn inside ``tf.data``.
  Signed blurs beyond ``max_blur`` are clipped to it.

  Raises:
    ValueError: depth-spaced slabs (the paper's mode), which cannot be
      mapped through a reference camera.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render  # pylint: disable=g-import-not-at-top
  settings = render.RenderOptions.for_mode(**options)
  if settings.layer_spacing != "blur":
    raise ValueError("per-example cameras need blur-spaced slabs (render mode 'improved'), "
                     f"got layer_spacing={settings.layer_spacing!r}")
  near, far = settings.depth_range_m
  depths = tf.convert_to_tensor(depths, tf.float32)
  vector = tf.cast(tf.convert_to_tensor(vector), tf.float32)
  valid = tf.math.is_finite(depths) & (depths > 0)
  clipped = tf.clip_by_value(tf.where(valid, depths, tf.ones_like(depths)), near, far)
  signed = blur_scale_px(vector) * (1.0 / vector[3] - 1.0 / clipped)
  signed = tf.clip_by_value(signed, -max_blur, max_blur)
  reference = reference_camera(max_blur)
  reference_scale = reference.blur_scale_px
  pseudo = 1.0 / (1.0 / reference.focus_distance_m - signed / reference_scale)
  pseudo = tf.where(valid, pseudo, tf.zeros_like(pseudo))
  reference_range = tuple(float(1.0 / (1.0 / reference.focus_distance_m - c / reference_scale))
                          for c in (-max_blur, max_blur))
  overrides = dict(options, depth_range_m=reference_range)
  return render.render_defocus(images, pseudo, reference, psf=psf, seed=seed, **overrides)
