"""Measuring a real lens's defocus blur from two photos of one view at two apertures.

A photo at a wide aperture (f/2.8) and one of the same view at a narrow one
(f/8) differ, wherever the scene has texture, by the extra defocus blur of the
wide aperture. With the Gaussian PSF (standard deviation ``rho`` times the
blur diameter, as d3tf renders) that extra blur is itself a Gaussian whose
variance is the difference of the two apertures' variances, so

    sigma_rel = rho * c_wide * sqrt(1 - (N_wide / N_narrow)^2)

where ``c_wide`` is the wide aperture's blur-circle diameter in pixels. Given
the scene's depth, :func:`relative_blur` measures ``sigma_rel`` patch by patch
(the narrow photo blurred by each candidate sigma, fitted to the wide one with
a gain and an offset) and :func:`fit_thin_lens` fits the thin-lens curve
``c = K |1/d_f - 1/d|`` to the measurements, with a floor for the blur a real
lens has even in focus (aberrations wide open, JPEG, residual misalignment):

    sigma_rel^2 = (rho' K |1/d_f - 1/d|)^2 + floor^2,  rho' = rho sqrt(1 - (N_w/N_n)^2)

so that a dataset's nominal camera (focus distance, blur per inverse metre)
can be checked against its photos. ``benchmarks/dfd_blur_calibration.py``
runs it on the DFD dataset's f/2.8 and f/8 photos.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy import ndimage

from d3tf.optics import psf as psf_lib

#: Candidate relative blurs (Gaussian sigma, pixels) that :func:`relative_blur` tries.
DEFAULT_SIGMAS_PX = tuple(np.round(np.arange(0.0, 4.0001, 0.1), 3))
#: The PSF whose candidates are Gaussian sigmas (filtered separably); every other registered
#: PSF (:func:`d3tf.optics.psf.names`) is fitted by blur diameter with its own kernel.
GAUSSIAN_KERNEL = "gaussian"


def register_translation(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
  """Sub-pixel translation that aligns ``moving`` onto ``reference`` (phase correlation).

  Args:
    reference: A 2-D grey image.
    moving: A 2-D grey image of the same shape.

  Returns:
    ``(dy, dx)`` in pixels: ``shift_image(moving, (dy, dx))`` lies on
    ``reference``. The peak of the phase correlation, refined by a parabola
    through its neighbours in each axis.

  Raises:
    ValueError: the images are not 2-D or differ in shape, naming the shapes.
  """
  reference, moving = np.asarray(reference, np.float64), np.asarray(moving, np.float64)
  if reference.ndim != 2 or reference.shape != moving.shape:
    raise ValueError("register_translation needs two 2-D images of one shape, got "
                     f"{reference.shape} and {moving.shape}")
  cross = (np.fft.fft2(reference - reference.mean())
           * np.conj(np.fft.fft2(moving - moving.mean())))
  corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-12)).real
  h, w = corr.shape
  i, j = np.unravel_index(int(np.argmax(corr)), corr.shape)

  def vertex(minus, centre, plus):
    curvature = minus - 2.0 * centre + plus
    return 0.0 if curvature >= 0 else 0.5 * (minus - plus) / curvature

  di = vertex(corr[(i - 1) % h, j], corr[i, j], corr[(i + 1) % h, j])
  dj = vertex(corr[i, (j - 1) % w], corr[i, j], corr[i, (j + 1) % w])
  return ((i if i <= h // 2 else i - h) + di, (j if j <= w // 2 else j - w) + dj)


def shift_image(image: np.ndarray, shift: Sequence[float]) -> np.ndarray:
  """``image`` translated by ``shift = (dy, dx)`` pixels (Fourier shift: exact, periodic)."""
  spectrum = ndimage.fourier_shift(np.fft.fft2(np.asarray(image, np.float64)), tuple(shift))
  return np.fft.ifft2(spectrum).real


@dataclasses.dataclass(frozen=True)
class PatchBlur:
  """Per-patch measurements of :func:`relative_blur` (arrays of one length, one per patch).

  Attributes:
    row, col: The patch's top-left pixel.
    depth_m: Median depth in the patch.
    depth_spread: (90th - 10th percentile of depth) / median: how far the
      patch is from one depth.
    texture: Mean gradient magnitude of the sharp photo in the patch (grey
      levels in [0, 1] per pixel): flat patches say nothing about blur.
    blur_px: The relative blur: the Gaussian's sigma (kernel "gaussian") or
      the blur diameter (any other kernel, e.g. "disk"), pixels.
    fit_r2: The fraction of the wide photo's patch variance the blurred
      narrow photo explains.
    at_limit: The best sigma is the largest candidate (the blur may be larger).
  """

  row: np.ndarray
  col: np.ndarray
  depth_m: np.ndarray
  depth_spread: np.ndarray
  texture: np.ndarray
  blur_px: np.ndarray
  fit_r2: np.ndarray
  at_limit: np.ndarray

  def select(self, mask: np.ndarray) -> "PatchBlur":
    """The patches where ``mask`` is true."""
    return PatchBlur(**{f.name: getattr(self, f.name)[mask] for f in dataclasses.fields(self)})

  @classmethod
  def concatenate(cls, parts: Sequence["PatchBlur"]) -> "PatchBlur":
    """One :class:`PatchBlur` holding the patches of all ``parts``."""
    return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                  for f in dataclasses.fields(cls)})


def _patches(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
  windows = np.lib.stride_tricks.sliding_window_view(image, (size, size))
  return windows[rows[:, None], cols[None, :]].reshape(len(rows) * len(cols), size * size)


def relative_blur(sharp: np.ndarray, blurred: np.ndarray, depth_m: np.ndarray, *,
                  patch_px: int = 24, stride_px: int = 12, margin_px: int = 24,
                  sigmas_px: Sequence[float] = DEFAULT_SIGMAS_PX,
                  kernel: str = "gaussian") -> PatchBlur:
  """Measures, patch by patch, the blur (Gaussian by default) that turns ``sharp`` into ``blurred``.

  For each candidate blur, ``sharp`` is blurred and, in each patch, fitted to
  ``blurred`` by a gain (and the patch means); the candidate with the smallest
  residual, refined by a parabola through its neighbours, is the patch's
  relative blur. Register the photos first (:func:`register_translation`):
  a residual shift reads as blur.

  Args:
    sharp: 2-D grey image from the narrow aperture.
    blurred: 2-D grey image of the same view from the wide aperture.
    depth_m: 2-D depth in metres, registered to both.
    patch_px: Patch side.
    stride_px: Step between patches.
    margin_px: Border left out (where the Fourier shift wraps around).
    sigmas_px: Increasing candidate blurs, starting at 0: Gaussian sigmas for
      ``kernel="gaussian"``, blur diameters for any other PSF.
    kernel: A PSF name of :func:`d3tf.optics.psf.names`: the shape fitted
      ("gaussian": ``scipy.ndimage.gaussian_filter``; others, e.g. "disk":
      :func:`d3tf.optics.psf.psf_kernel_2d`).

  Returns:
    A :class:`PatchBlur` with every patch (filter it by texture, depth
    spread and fit before use).

  Raises:
    ValueError: shapes differ or are too small for one patch, or the
      candidates are not increasing from 0, naming the values.
  """
  sharp = np.asarray(sharp, np.float64)
  blurred = np.asarray(blurred, np.float64)
  depth_m = np.asarray(depth_m, np.float64)
  if sharp.ndim != 2 or sharp.shape != blurred.shape or sharp.shape != depth_m.shape:
    raise ValueError("relative_blur needs 2-D sharp, blurred and depth of one shape, got "
                     f"{sharp.shape}, {blurred.shape} and {depth_m.shape}")
  if kernel not in psf_lib.names():
    raise ValueError(f"kernel must be one of {psf_lib.names()}, got {kernel!r}")
  sigmas = np.asarray(sigmas_px, np.float64)
  if sigmas.ndim != 1 or len(sigmas) < 3 or sigmas[0] != 0 or np.any(np.diff(sigmas) <= 0):
    raise ValueError(f"sigmas_px must increase from 0 with at least 3 values, got {sigmas_px!r}")
  height, width = sharp.shape
  rows = np.arange(margin_px, height - margin_px - patch_px + 1, stride_px)
  cols = np.arange(margin_px, width - margin_px - patch_px + 1, stride_px)
  if not len(rows) or not len(cols):
    raise ValueError(f"an image of {height}x{width} holds no {patch_px}-pixel patch inside a "
                     f"{margin_px}-pixel margin")
  target = _patches(blurred, rows, cols, patch_px)
  target = target - target.mean(axis=1, keepdims=True)
  target_energy = np.maximum((target ** 2).sum(axis=1), 1e-12)
  residuals = np.empty((len(sigmas), len(target)))
  for n, sigma in enumerate(sigmas):
    if sigma <= 0:
      source = sharp
    elif kernel == GAUSSIAN_KERNEL:
      source = ndimage.gaussian_filter(sharp, sigma, truncate=psf_lib.GAUSSIAN_TRUNCATE,
                                       mode="reflect")
    else:
      source = ndimage.convolve(sharp, psf_lib.psf_kernel_2d(kernel, sigma), mode="reflect")
    source = _patches(source, rows, cols, patch_px)
    source = source - source.mean(axis=1, keepdims=True)
    gain = (source * target).sum(axis=1) / np.maximum((source ** 2).sum(axis=1), 1e-12)
    residuals[n] = ((target - gain[:, None] * source) ** 2).sum(axis=1)
  best = residuals.argmin(axis=0)
  sigma = sigmas[best].copy()
  inner = (best > 0) & (best < len(sigmas) - 1)
  index = np.flatnonzero(inner)
  minus, centre, plus = (residuals[best[index] + k, index] for k in (-1, 0, 1))
  curvature = minus - 2.0 * centre + plus
  step = 0.5 * (sigmas[best[index] + 1] - sigmas[best[index] - 1])
  offset = np.where(curvature > 0, 0.5 * (minus - plus) / np.maximum(curvature, 1e-15), 0.0)
  sigma[index] += np.clip(offset, -0.5, 0.5) * step
  grad_y, grad_x = np.gradient(sharp)
  depth = _patches(depth_m, rows, cols, patch_px)
  median = np.median(depth, axis=1)
  spread = (np.percentile(depth, 90, axis=1) - np.percentile(depth, 10, axis=1)) / np.maximum(
      median, 1e-9)
  grid_rows, grid_cols = np.meshgrid(rows, cols, indexing="ij")
  return PatchBlur(
      row=grid_rows.ravel(), col=grid_cols.ravel(), depth_m=median, depth_spread=spread,
      texture=_patches(np.hypot(grad_x, grad_y), rows, cols, patch_px).mean(axis=1),
      blur_px=sigma, fit_r2=1.0 - residuals.min(axis=0) / target_energy,
      at_limit=best == len(sigmas) - 1)


def relative_sigma_factor(wide_f_number: float, narrow_f_number: float,
                          rho: float = psf_lib.DEFAULT_RHO) -> float:
  """``sigma_rel / c_wide``: relative Gaussian sigma per pixel of the wide aperture's blur.

  Raises:
    ValueError: the narrow f-number is not above the wide one, naming both.
  """
  if not narrow_f_number > wide_f_number > 0:
    raise ValueError(f"the narrow aperture's f-number ({narrow_f_number}) must exceed the wide "
                     f"one's ({wide_f_number}), both positive")
  return rho * math.sqrt(1.0 - (wide_f_number / narrow_f_number) ** 2)


@dataclasses.dataclass(frozen=True)
class ThinLensFit:
  """The thin-lens blur curve fitted to relative-blur measurements.

  Attributes:
    focus_distance_m: ``d_f``.
    blur_scale_px: ``K``: the wide aperture's blur diameter, pixels per 1/m
      of ``|1/d_f - 1/d|`` (``Camera.blur_scale_px``).
    floor_sigma_px: Relative blur left at the focal plane (sigma, pixels).
    rms_sigma_px: Root-mean-square residual of the fit, in sigma pixels.
    patches: Number of measurements fitted.
  """

  focus_distance_m: float
  blur_scale_px: float
  floor_sigma_px: float
  rms_sigma_px: float
  patches: int

  def blur_diameter_px(self, depth_m) -> np.ndarray:
    """The fitted wide-aperture blur diameter at ``depth_m`` (without the floor)."""
    depth = np.asarray(depth_m, np.float64)
    return self.blur_scale_px * np.abs(1.0 / self.focus_distance_m - 1.0 / depth)


def fit_thin_lens(depth_m: np.ndarray, sigma_px: np.ndarray, sigma_per_blur_px: float, *,
                  focus_grid_m: Sequence[float] | None = None) -> ThinLensFit:
  """Least-squares fit of ``sigma^2 = (s K |1/d_f - 1/d|)^2 + floor^2`` to measurements.

  For each focus distance of the grid the model is linear in ``K^2`` and
  ``floor^2`` (solved with both non-negative); the focus distance with the
  smallest residual wins.

  Args:
    depth_m: Depth of each measurement, metres.
    sigma_px: Relative blur sigma of each measurement, pixels.
    sigma_per_blur_px: ``s``, from :func:`relative_sigma_factor`.
    focus_grid_m: Candidate focus distances (default 0.5-10 m in 1 % steps).

  Returns:
    The best :class:`ThinLensFit`.

  Raises:
    ValueError: fewer than 3 measurements, lengths that differ or a
      non-positive depth, naming the values.
  """
  depth = np.asarray(depth_m, np.float64).ravel()
  sigma = np.asarray(sigma_px, np.float64).ravel()
  if depth.shape != sigma.shape or len(depth) < 3:
    raise ValueError(f"fit_thin_lens needs at least 3 (depth, sigma) pairs of one length, got "
                     f"{depth.shape} and {sigma.shape}")
  if np.any(depth <= 0) or not np.all(np.isfinite(depth)):
    raise ValueError(f"depth_m must be positive and finite, got min {depth.min()}")
  grid = (np.exp(np.arange(math.log(0.5), math.log(10.0), 0.01)) if focus_grid_m is None
          else np.asarray(focus_grid_m, np.float64))
  y = sigma ** 2

  def squared_blur(focus):
    return (sigma_per_blur_px * (1.0 / focus - 1.0 / depth)) ** 2

  best = None
  for focus in grid:
    x = squared_blur(focus)
    coefficients = _nonnegative_least_squares(np.stack([x, np.ones_like(x)], axis=1), y)
    score = float(np.mean((y - coefficients[0] * x - coefficients[1]) ** 2))
    if best is None or score < best[0]:
      best = (score, float(focus), coefficients)
  _, focus, (scale_squared, floor_squared) = best
  sigma_fit = np.sqrt(np.maximum(scale_squared * squared_blur(focus) + floor_squared, 0.0))
  return ThinLensFit(focus_distance_m=focus, blur_scale_px=float(math.sqrt(scale_squared)),
                     floor_sigma_px=float(math.sqrt(floor_squared)),
                     rms_sigma_px=float(np.sqrt(np.mean((sigma - sigma_fit) ** 2))),
                     patches=int(len(depth)))


def _nonnegative_least_squares(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Two-column least squares with both coefficients >= 0 (checks the active sets)."""
  solution, *_ = np.linalg.lstsq(a, b, rcond=None)
  if np.all(solution >= 0):
    return solution
  candidates = [np.zeros(2)]
  for column in range(2):
    value = float(a[:, column] @ b) / max(float(a[:, column] @ a[:, column]), 1e-300)
    candidate = np.zeros(2)
    candidate[column] = max(value, 0.0)
    candidates.append(candidate)
  return min(candidates, key=lambda c: float(np.sum((a @ c - b) ** 2)))
