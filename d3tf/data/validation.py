"""Checks every real RGB-D sample passes before it reaches training.

All dataset readers (:mod:`d3tf.data.readers`) funnel their decoded arrays
through :func:`validate_sample`, so that a bad file gives the same clear error
whichever dataset it comes from. The contract of a valid sample is:

* image: ``uint8`` array ``[H, W, 3]``;
* depth: ``float32`` array ``[H, W]`` in **metres**, ``0`` marking an invalid
  (unknown) pixel; every other value finite and positive.

Policy for bad values, chosen so that a NaN can never reach a loss:

* NaN, +-inf and negative depth values become ``0`` (invalid) by default
  (``non_finite="zero"``); this is how Middlebury marks unknown disparity, for
  instance. Pass ``non_finite="raise"`` to treat them as an error instead.
* A depth map with no valid pixel left, a depth map whose size differs from
  its image, an image that is not 3-channel ``uint8`` (or float in [0, 1]) and
  a depth map with values above ``max_depth_m`` (by default 100 m: depth in
  millimetres read as metres) or with 95 % of its valid values below 5 cm
  (metres stored as integers and read as millimetres: a real scene is not
  that close) raise :class:`DataError`, whose message names the file(s),
  echoes the bad value and names the likely cause.

Readers offer ``on_error="skip"``: an :class:`ErrorPolicy` then logs each bad
sample with absl.logging and counts it instead of raising.
"""

from __future__ import annotations

import threading
from typing import Sequence

from absl import logging
import numpy as np

#: Largest plausible depth, metres. A larger value almost always means depth
#: in millimetres passed as metres.
DEFAULT_MAX_DEPTH_M = 100.0
#: Depth below which almost all valid pixels of a real depth map never lie: a depth map whose
#: valid values are nearly all smaller almost always means metres stored as integers and read
#: as millimetres (e.g. a 16-bit PNG of metres read with the scale 0.001).
DEFAULT_MIN_PLAUSIBLE_DEPTH_M = 0.05
#: Fraction of the valid pixels that must lie below DEFAULT_MIN_PLAUSIBLE_DEPTH_M to raise.
IMPLAUSIBLY_NEAR_FRACTION = 0.95

_ON_ERROR = ("raise", "skip")
_NON_FINITE = ("zero", "raise")


class DataError(ValueError):
  """A sample (or one of its files) is unusable.

  Attributes:
    paths: The file(s) the problem was found in.
    problem: What is wrong, with the bad value.
  """

  def __init__(self, paths: str | Sequence[str], problem: str):
    self.paths = _as_paths(paths)
    self.problem = problem
    super().__init__(f"{' + '.join(self.paths) or '<unknown file>'}: {problem}")


def _as_paths(paths: str | Sequence[str] | None) -> tuple[str, ...]:
  """Normalises one path or several into a tuple of strings."""
  if paths is None:
    return ()
  if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
    paths = (paths,)
  return tuple(p.decode() if isinstance(p, bytes) else str(p) for p in paths if p is not None)


def _shape_str(shape: Sequence[int]) -> str:
  return "x".join(str(int(s)) for s in shape)


def check_on_error(on_error: str) -> str:
  """Returns ``on_error`` if it is ``"raise"`` or ``"skip"``, else raises ValueError."""
  if on_error not in _ON_ERROR:
    raise ValueError(f"on_error must be one of {_ON_ERROR}, got {on_error!r}")
  return on_error


def validate_image(image: np.ndarray, path: str | Sequence[str]) -> np.ndarray:
  """Checks an RGB image and returns it as ``uint8 [H, W, 3]``.

  Args:
    image: ``uint8 [H, W, 3]``, or floating point in [0, 1] (converted to
      ``uint8`` by rounding ``255 * x``).
    path: The file the image came from, for error messages.

  Returns:
    The image, ``uint8``, C-contiguous.

  Raises:
    DataError: wrong rank, channel count or dtype; empty; non-finite or
      out-of-range float values.
  """
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise DataError(path, f"image must be [H, W, 3], got shape {image.shape}")
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise DataError(path, f"image is empty (shape {image.shape})")
  if image.dtype == np.uint8:
    return np.ascontiguousarray(image)
  if np.issubdtype(image.dtype, np.floating):
    finite = np.isfinite(image)
    if not finite.all():
      raise DataError(path, f"image has {int((~finite).sum())} NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
      raise DataError(
          path, f"float image values must lie in [0, 1], got range [{lo:g}, {hi:g}]")
    return np.round(image * 255.0).astype(np.uint8)
  raise DataError(path, f"image dtype must be uint8 or float in [0, 1], got {image.dtype}")


def validate_depth(depth: np.ndarray,
                   path: str | Sequence[str],
                   *,
                   max_depth_m: float | None = DEFAULT_MAX_DEPTH_M,
                   non_finite: str = "zero",
                   min_plausible_m: float | None = DEFAULT_MIN_PLAUSIBLE_DEPTH_M) -> np.ndarray:
  """Checks a depth map in metres and returns it as ``float32 [H, W]``.

  Args:
    depth: Depth in metres, ``[H, W]`` or ``[H, W, 1]``; ``0`` = invalid.
    path: The file the depth came from, for error messages.
    max_depth_m: Largest plausible depth; a larger value raises (depth in
      millimetres passed as metres). ``None`` disables the check.
    non_finite: ``"zero"`` turns NaN, +-inf and negative values into ``0``
      (invalid); ``"raise"`` raises DataError on them.
    min_plausible_m: If at least 95 % of the valid values lie below it, raise
      (metres read as millimetres). ``None`` disables the check.

  Returns:
    The depth, ``float32``, C-contiguous, with only finite values >= 0.

  Raises:
    DataError: wrong rank or dtype, empty, non-finite or negative values
      (with ``non_finite="raise"``), no valid pixel, values above
      ``max_depth_m``, valid values nearly all below ``min_plausible_m``.
  """
  if non_finite not in _NON_FINITE:
    raise ValueError(f"non_finite must be one of {_NON_FINITE}, got {non_finite!r}")
  depth = np.asarray(depth)
  if depth.ndim == 3 and depth.shape[-1] == 1:
    depth = depth[..., 0]
  if depth.ndim != 2:
    raise DataError(path, f"depth map must be [H, W], got shape {depth.shape}")
  if depth.size == 0:
    raise DataError(path, f"depth map is empty (shape {depth.shape})")
  if not (np.issubdtype(depth.dtype, np.floating) or np.issubdtype(depth.dtype, np.integer)):
    raise DataError(path, f"depth map dtype must be numeric, got {depth.dtype}")
  depth = np.array(depth, dtype=np.float32)  # A copy: the caller's array stays as it was.
  with np.errstate(invalid="ignore"):
    bad = ~np.isfinite(depth) | (depth < 0)
  n_bad = int(bad.sum())
  if n_bad:
    if non_finite == "raise":
      n_nan = int(np.isnan(depth).sum())
      n_inf = int(np.isinf(depth).sum())
      raise DataError(
          path, f"depth map has {n_nan} NaN, {n_inf} infinite and "
          f"{n_bad - n_nan - n_inf} negative values")
    depth[bad] = 0.0
    logging.log_first_n(
        logging.INFO, "%s: %d NaN, infinite or negative depth values set to 0 (invalid)",
        5, " + ".join(_as_paths(path)), n_bad)
  valid = depth > 0
  if not valid.any():
    raise DataError(
        path, f"depth map ({_shape_str(depth.shape)}) has no valid pixel: all values are 0, "
        "NaN, infinite or negative")
  if max_depth_m is not None:
    largest = float(depth.max())
    if largest > max_depth_m:
      median = float(np.median(depth[valid]))
      n_over = int((depth > max_depth_m).sum())
      raise DataError(
          path, f"depth values up to {largest:g} (median {median:g}, {n_over} pixels) exceed "
          f"{max_depth_m:g} m: depth looks like millimetres read as metres. Depth must be in "
          "metres: pass --depth_scale=0.001 for millimetre PNGs, or convert .npy depth to metres")
  if min_plausible_m is not None:
    values = depth[valid]
    near = float(np.mean(values < min_plausible_m))
    if near >= IMPLAUSIBLY_NEAR_FRACTION:
      raise DataError(
          path, f"{100 * near:.0f}% of the valid depth values are below {min_plausible_m:g} m "
          f"(median {float(np.median(values)):.3g} m, max {float(values.max()):.3g} m): depth "
          "looks like metres read as millimetres. If the depth PNGs hold metres, pass "
          "--depth_scale=1 (metres per PNG unit); depth must be in metres")
  return np.ascontiguousarray(depth)


def validate_sample(image: np.ndarray,
                    depth: np.ndarray,
                    *,
                    image_path: str,
                    depth_path: str | None = None,
                    max_depth_m: float | None = DEFAULT_MAX_DEPTH_M,
                    non_finite: str = "zero") -> tuple[np.ndarray, np.ndarray]:
  """Checks one RGB-D sample; returns ``(image uint8 [H,W,3], depth float32 [H,W])``.

  Args:
    image: The decoded image (see :func:`validate_image`).
    depth: Depth in metres (see :func:`validate_depth`).
    image_path: The image's file, named in error messages.
    depth_path: The depth's file, if different from ``image_path``.
    max_depth_m: See :func:`validate_depth`.
    non_finite: See :func:`validate_depth`.

  Returns:
    The validated ``(image, depth)``.

  Raises:
    DataError: any problem in :func:`validate_image` or
      :func:`validate_depth`, or image and depth sizes differ.
  """
  depth_path = depth_path or image_path
  image = validate_image(image, image_path)
  depth = validate_depth(depth, depth_path, max_depth_m=max_depth_m, non_finite=non_finite)
  if image.shape[:2] != depth.shape:
    paths = (image_path,) if depth_path == image_path else (image_path, depth_path)
    raise DataError(
        paths, f"depth map size {_shape_str(depth.shape)} (HxW) differs from image size "
        f"{_shape_str(image.shape[:2])}")
  return image, depth


class ErrorPolicy:
  """What a reader does with a bad sample: raise, or log, count and skip it.

  Thread-safe: tf.data may load samples from several threads.

  Attributes:
    on_error: ``"raise"`` or ``"skip"``.
    source: A name for the data source, used in log lines.
    skipped: How many samples were skipped so far.
  """

  def __init__(self, on_error: str = "raise", source: str = "data"):
    self.on_error = check_on_error(on_error)
    self.source = source
    self.skipped = 0
    self._errors: dict[str, str] = {}  # First message per bad sample, in order of discovery.
    self._lock = threading.Lock()

  def handle(self, error: DataError) -> None:
    """Raises ``error`` (``on_error="raise"``) or logs and counts it (``"skip"``).

    A sample met again (a repeated stream meets it once per epoch) is counted
    in :attr:`skipped` each time but logged and listed once.
    """
    if self.on_error == "raise":
      raise error
    key = " + ".join(error.paths) if isinstance(error, DataError) else str(error)
    with self._lock:
      self.skipped += 1
      count = self.skipped
      new = key not in self._errors
      if new:
        self._errors[key] = str(error)
    if new:
      logging.warning("%s: skipping sample (%d skipped so far): %s", self.source, count, error)

  @property
  def skipped_samples(self) -> list[str]:
    """The distinct bad samples skipped so far (their files), in order of discovery."""
    with self._lock:
      return list(self._errors)

  def report(self, max_listed: int = 20) -> dict:
    """JSON-ready summary: ``{"source", "skipped", "distinct", "examples": [messages]}``."""
    with self._lock:
      messages = list(self._errors.values())
      return {"source": self.source, "skipped": self.skipped, "distinct": len(messages),
              "examples": messages[:max_listed]}
