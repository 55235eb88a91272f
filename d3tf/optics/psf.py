"""Point-spread functions of a defocused lens: small NumPy kernels and their registry.

Kernels are built once per depth layer, outside the TensorFlow graph, and then
used as constants by :mod:`d3tf.optics.render`. Every shape is normalised to
sum to one and grows smoothly from a single pixel (a sharp image) as the blur
diameter grows from zero.

**The registry.** Each PSF is one :class:`PSF` entry: its name, its kernel
builder and the facts that the renderers need (its smallest trusted blurred
support, how the ray tracer samples the lens for it). The renderer, the
SciPy and ray-traced references, the metadata and every ``--psf`` flag take
their choices from :func:`names`; a new PSF is one :func:`register` call here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np

#: The paper's ratio between Gaussian standard deviation and blur diameter.
DEFAULT_RHO = 0.3
#: Gaussian kernels reach this many standard deviations (as scipy.ndimage).
GAUSSIAN_TRUNCATE = 4.0
#: Sub-columns per pixel used to integrate the disk's area over a pixel.
DISK_SUPERSAMPLING = 64



def gaussian_sigma_px(blur_diameter_px: float, rho: float = DEFAULT_RHO) -> float:
  """Standard deviation in pixels of the Gaussian PSF: ``rho * eps``."""
  return rho * abs(float(blur_diameter_px))


def gaussian_radius_px(sigma_px: float, truncate: float = GAUSSIAN_TRUNCATE) -> int:
  """Half-width of a Gaussian kernel, sized from sigma (never a fixed window)."""
  return int(math.ceil(truncate * sigma_px)) if sigma_px > 0 else 0


def gaussian_kernel_1d(sigma_px: float, truncate: float = GAUSSIAN_TRUNCATE) -> np.ndarray:
  """Sampled, normalised 1-D Gaussian of the given sigma (float64).

  The same kernel as ``scipy.ndimage.gaussian_filter1d`` builds, so that the
  TensorFlow renderer and a SciPy implementation agree to rounding. Sigma 0
  gives the identity kernel ``[1.]``.

  Args:
    sigma_px: Standard deviation in pixels, >= 0.
    truncate: The kernel reaches ``ceil(truncate * sigma)`` pixels each side.

  Returns:
    A 1-D array of odd length ``2 * radius + 1``.
  """
  if not math.isfinite(sigma_px) or sigma_px < 0:
    raise ValueError(f"sigma_px must be finite and >= 0, got {sigma_px!r}")
  radius = gaussian_radius_px(sigma_px, truncate)
  if radius == 0:
    return np.ones([1], np.float64)
  x = np.arange(-radius, radius + 1, dtype=np.float64)
  kernel = np.exp(-0.5 * (x / sigma_px) ** 2)
  return kernel / kernel.sum()


def disk_radius_px(blur_diameter_px: float) -> int:
  """Half-width in whole pixels of an anti-aliased disk of the given diameter.

  A disk of diameter one pixel or less, centred on a pixel, lies inside that
  pixel: its radius is 0 and it does not blur.
  """
  return max(0, int(math.ceil(abs(float(blur_diameter_px)) / 2.0 - 0.5)))


def disk_kernel_2d(blur_diameter_px: float,
                   supersampling: int = DISK_SUPERSAMPLING) -> np.ndarray:
  """Anti-aliased (area-weighted) disk of the given diameter, normalised (float64).

  Each kernel pixel holds the area of its square covered by the disk: exact
  along y (the chord of the circle, clipped to the pixel) and integrated on
  ``supersampling`` sub-columns along x, so the kernel changes continuously
  with the diameter. Up to one pixel the disk lies inside the centre pixel and
  the kernel is the identity.

  Args:
    blur_diameter_px: Diameter ``eps`` in pixels, >= 0.
    supersampling: Sub-columns per pixel for the integral along x.

  Returns:
    A square 2-D array of odd side ``2 * radius + 1``.
  """
  diameter = float(blur_diameter_px)
  if not math.isfinite(diameter) or diameter < 0:
    raise ValueError(f"blur_diameter_px must be finite and >= 0, got {blur_diameter_px!r}")
  radius = disk_radius_px(diameter)
  if radius == 0:
    return np.ones([1, 1], np.float64)
  disk_radius = diameter / 2.0
  centres = np.arange(-radius, radius + 1, dtype=np.float64)
  offsets = (np.arange(supersampling, dtype=np.float64) + 0.5) / supersampling - 0.5
  xs = centres[:, None] + offsets[None, :]  # [columns, sub-columns]
  half_chord = np.sqrt(np.maximum(disk_radius**2 - xs**2, 0.0))
  top = np.minimum(centres[:, None, None] + 0.5, half_chord[None])
  bottom = np.maximum(centres[:, None, None] - 0.5, -half_chord[None])
  coverage = np.clip(top - bottom, 0.0, None).mean(axis=-1)  # [rows, columns]
  coverage = 0.5 * (coverage + coverage.T)  # the x integral is sampled, y exact.
  return coverage / coverage.sum()


# ---------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class PSF:
  """One point-spread function and what the renderers need to know of it.

  Attributes:
    name: The name that flags, options and the metadata use.
    description: One line, for help texts.
    kernel: ``(blur_diameter_px, rho) -> weights``: a normalised 1-D kernel
      (separable: applied along both axes) or a square 2-D one, odd-sized.
    min_support: Below this blurred support a depth slab counts as absent at
      a pixel (avoids 0/0): about the kernel's numerical noise (direct
      convolution ~1e-7, float32 FFT more).
    aperture: ``(spiral_radii, aperture_diameter_m, rho) -> (radii,
      weights)``: how the thin-lens ray tracer places and weights its lens
      samples, given the radii of a unit Vogel spiral in [0, 1], so that the
      traced blur has this PSF.
  """

  name: str
  description: str
  kernel: Callable[[float, float], np.ndarray]
  min_support: float
  aperture: Callable[[np.ndarray, float, float], tuple[np.ndarray, np.ndarray]]

  def kernel_2d(self, blur_diameter_px: float, rho: float = DEFAULT_RHO) -> np.ndarray:
    """The full 2-D kernel (the outer product of a separable one)."""
    weights = self.kernel(blur_diameter_px, rho)
    return np.outer(weights, weights) if weights.ndim == 1 else weights


_REGISTRY: dict[str, PSF] = {}
#: The PSF of the paper, and every default.
DEFAULT_PSF = "gaussian"


def register(psf: PSF) -> PSF:
  """Adds a PSF to the registry (its name must be new); returns it."""
  if psf.name in _REGISTRY:
    raise ValueError(f"PSF {psf.name!r} is registered already")
  _REGISTRY[psf.name] = psf
  return psf


def names() -> tuple[str, ...]:
  """The registered PSF names, in registration order (the default first)."""
  return tuple(_REGISTRY)


def get(name: str) -> PSF:
  """The registered PSF ``name``; a ValueError lists the known names."""
  try:
    return _REGISTRY[name]
  except (KeyError, TypeError):
    raise ValueError(f"psf must be one of {names()}, got {name!r}") from None


def check_psf(psf: str) -> str:
  """Returns ``psf`` if it names a registered PSF, else raises ValueError."""
  get(psf)
  return psf


def _gaussian_aperture(spiral, aperture_diameter_m, rho):
  sigma = rho * aperture_diameter_m
  radius = GAUSSIAN_TRUNCATE * sigma * spiral
  return radius, np.exp(-0.5 * (radius / sigma) ** 2)


def _disk_aperture(spiral, aperture_diameter_m, rho):
  del rho  # The pillbox has no spread parameter.
  return 0.5 * aperture_diameter_m * spiral, np.ones_like(spiral)


register(PSF(
    name="gaussian", description="Gaussian of sigma = rho * blur diameter (the paper's)",
    kernel=lambda diameter, rho: gaussian_kernel_1d(gaussian_sigma_px(diameter, rho)),
    min_support=1e-6, aperture=_gaussian_aperture))
register(PSF(
    name="disk", description="anti-aliased pillbox of the blur diameter",
    kernel=lambda diameter, rho: disk_kernel_2d(abs(float(diameter))),
    min_support=1e-4, aperture=_disk_aperture))


def psf_kernel_2d(psf: str, blur_diameter_px: float, rho: float = DEFAULT_RHO) -> np.ndarray:
  """The full 2-D kernel of a registered PSF, for plotting and for references."""
  return get(psf).kernel_2d(blur_diameter_px, rho)
