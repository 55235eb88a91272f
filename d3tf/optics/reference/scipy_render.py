"""NumPy/SciPy implementation of the layered defocus renderer.

The same algorithm as :func:`d3tf.optics.render_defocus` (same slabs, same
kernels, same compositing), written independently with ``scipy.ndimage`` and
``scipy.signal``. It exists to check the TensorFlow renderer and to measure
its speed against a conventional implementation (``benchmarks/``); training
pipelines should use the TensorFlow renderer. Sensor noise is not reproduced
here (it draws from TF's random streams).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage
from scipy import signal

from d3tf.optics import color
from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera
from d3tf.optics.render import RenderOptions


def _blur_np(stack: np.ndarray, psf: str, signed_blur_px: float, settings: RenderOptions
             ) -> np.ndarray:
  """Blurs every channel of an [B,H,W,C] float32 array with one slab's PSF."""
  scipy_mode = "mirror" if settings.border == "reflect" else "constant"
  kernel = psf_lib.get(psf).kernel(abs(signed_blur_px), settings.rho)
  if kernel.size == 1:
    return stack
  if kernel.ndim == 1:  # Separable.
    out = ndimage.correlate1d(stack, kernel, axis=2, mode=scipy_mode)
    return ndimage.correlate1d(out, kernel, axis=1, mode=scipy_mode)
  r = kernel.shape[0] // 2
  pad_mode = "reflect" if settings.border == "reflect" else "constant"
  padded = np.pad(stack, [(0, 0), (r, r), (r, r), (0, 0)], mode=pad_mode)
  return signal.fftconvolve(padded, kernel[None, :, :, None], mode="valid", axes=(1, 2))


def render_defocus_scipy(images: np.ndarray, depths: np.ndarray, camera: Camera,
                         psf: str = psf_lib.DEFAULT_PSF, **options: Any) -> np.ndarray:
  """Reference render with NumPy and SciPy; see :func:`d3tf.optics.render_defocus`.

  Args:
    images: float32 sRGB images in [0, 1], [B,H,W,3] or [H,W,3].
    depths: Depth in metres, [B,H,W], [B,H,W,1], [H,W] or [H,W,1].
    camera: The thin-lens camera.
    psf: "gaussian" or "disk".
    **options: Fields of :class:`~d3tf.optics.render.RenderOptions`; noise
      options are not supported here.

  Returns:
    Defocused float32 images in [0, 1], shaped like ``images``.
  """
  psf_lib.check_psf(psf)
  settings = RenderOptions.for_mode(**options)
  if settings.noise_shot_gain or settings.noise_read_std:
    raise ValueError("render_defocus_scipy does not add sensor noise; use render_defocus")
  images = np.asarray(images, np.float32)
  unbatched = images.ndim == 3
  if unbatched:
    images, depths = images[None], np.asarray(depths)[None]
  depths = np.asarray(depths, np.float32).reshape(images.shape[:3] + (1,))

  grid = settings.layer_grid(camera, psf)
  valid = np.isfinite(depths) & (depths > 0)
  coordinate = grid.layer_coordinate(np.where(valid, depths, camera.focus_distance_m), camera)
  valid = valid.astype(np.float32)
  radiance = color.srgb_to_linear(images) if settings.linear_light else np.clip(images, 0, 1)

  min_support = psf_lib.get(psf).min_support
  fill = settings.normalize and settings.fill_hidden
  present = lambda value: np.where(value > min_support, value, 0.0)
  divide = lambda a, b: np.divide(a, b, out=np.zeros_like(a * b), where=b != 0)
  accumulated = np.zeros_like(radiance)
  transmittance = np.ones_like(valid)
  filled, fill_weight = np.zeros_like(radiance), np.zeros_like(valid)
  for index, signed_blur in enumerate(grid.signed_blur_px):
    if grid.soft:
      weight = np.maximum(1.0 - np.abs(coordinate - index), 0.0) * valid
    else:
      weight = (np.round(coordinate) == index).astype(np.float32) * valid
    if settings.dilation_px:
      weight = ndimage.maximum_filter(weight, size=(1, 2 * settings.dilation_px + 1,
                                                    2 * settings.dilation_px + 1, 1),
                                      mode="constant")
      if settings.normalize:
        weight = weight * valid
    if settings.skip_empty_layers and not weight.any():
      continue
    if not settings.normalize:
      blurred = _blur_np(np.concatenate([radiance * weight, weight], -1), psf, signed_blur,
                         settings)
      accumulated += transmittance * blurred[..., :3]
      transmittance *= np.maximum(1.0 - blurred[..., 3:4], 0.0)
      continue
    if grid.soft:
      support = np.clip(coordinate - index + 1.0, 0.0, 1.0) * valid
    else:
      support = (np.round(coordinate) >= index).astype(np.float32) * valid
    support = np.maximum(support, weight)
    blurred = _blur_np(np.concatenate([radiance * weight, weight, support, radiance * support],
                                      -1), psf, signed_blur, settings)
    known = present(blurred[..., 4:5])
    colour, alpha = divide(blurred[..., :3], known), divide(blurred[..., 3:4], known)
    behind_weight = present(blurred[..., 4:5] - blurred[..., 3:4])
    behind = divide(blurred[..., 5:8] - blurred[..., :3], behind_weight)
    blocked = transmittance * alpha * (behind_weight > 0)
    filled += blocked * behind
    fill_weight += blocked
    accumulated += transmittance * colour
    transmittance *= np.maximum(1.0 - alpha, 0.0)

  out = accumulated
  if settings.normalize:
    coverage = 1.0 - transmittance
    out = np.where(coverage > min_support, accumulated / np.maximum(coverage, min_support),
                   radiance)
    if fill:
      out = np.where(fill_weight > min_support,
                     accumulated + transmittance * divide(filled, fill_weight), out)
  if settings.linear_light:
    out = color.linear_to_srgb(out)
  out = np.clip(out, 0.0, 1.0).astype(np.float32)
  return out[0] if unbatched else out
