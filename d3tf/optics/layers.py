"""Depth layers for layered defocus rendering.

A layered renderer cuts the scene into slabs, each blurred with one PSF. Two
ways to place the slabs are offered:

* :func:`blur_spaced_layers` (d3tf's default): slabs evenly spaced in a warped
  *blur* coordinate, so that the blur error inside one slab is bounded: at most
  ``min_step_px`` of blur diameter near the focal plane, and at most a fraction
  ``max_step_ratio`` of the blur itself far from it, where a change of blur is
  barely visible. A pixel between two slabs is shared between them, so a
  surface between two slabs gets a blend of both blurs. The shares are the
  least-squares best: the blend of the two slabs' sampled kernels that comes
  closest to the pixel's own kernel, with errors weighted by a natural
  image's 1/f^2 power spectrum. They are tabulated once per grid, and looked
  up per pixel. (Near focus kernels change shape fast with the blur: there a
  share linear in depth or blur is off by several grey levels; for 3-tap
  kernels the least-squares blend is exact.)
* :func:`depth_spaced_layers` (the paper's): slabs of fixed thickness in metres
  (10/255 m), each pixel in exactly one slab.

Both return a :class:`LayerGrid`: the signed blur diameter of every slab, near
to far, and how to assign pixels to slabs inside a TF graph.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera

#: Entries per segment between two slabs in the table of pixel shares.
_TABLE_STEPS_PER_SEGMENT = 64


def _check_depth_range(depth_range_m) -> tuple[float, float]:
  try:
    near, far = (float(v) for v in depth_range_m)
  except (TypeError, ValueError):
    raise ValueError(f"depth_range_m must be a pair (near, far) in metres, got {depth_range_m!r}") from None
  if not (math.isfinite(near) and math.isfinite(far) and 0 < near < far):
    raise ValueError(f"depth_range_m must satisfy 0 < near < far < inf, got {depth_range_m!r}")
  return near, far


@dataclasses.dataclass(frozen=True)
class LayerGrid:
  """Where the depth slabs of a layered render lie, near to far.

  Attributes:
    signed_blur_px: Signed blur diameter of each slab (negative in front of
      the focal plane), increasing: slab 0 is the nearest.
    soft: True when pixels are split between the two nearest slabs (tent
      weights), False for hard assignment to the nearest slab.
    warp_scale_px: ``c0`` of the warp ``u = sign(c) * log1p(|c| / c0)`` in
      which blur-spaced slabs are evenly spaced (0 for depth-spaced slabs).
    thickness_m: Slab thickness for depth-spaced slabs (0 otherwise).
    first_depth_m: Centre depth of slab 0 for depth-spaced slabs.
    share_table: For soft grids, the fractional slab index of a pixel at
      warped blur ``u = u(signed_blur_px[0]) + j * share_table_step`` for
      ``j = 0, 1, ...``: the integer part is the nearer slab, the fraction the
      share of the farther one.
    share_table_step: Step in the warped coordinate between table entries.
  """

  signed_blur_px: np.ndarray
  soft: bool
  warp_scale_px: float = 0.0
  thickness_m: float = 0.0
  first_depth_m: float = 0.0
  share_table: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros([0]))
  share_table_step: float = 0.0

  @property
  def num_layers(self) -> int:
    return int(self.signed_blur_px.shape[0])

  def layer_coordinate(self, depths, camera: Camera):
    """Fractional slab index of every pixel, clipped to the grid.

    Works on NumPy arrays (for reference implementations) and on tensors.

    Args:
      depths: Valid depths in metres (positive, finite), any shape.
      camera: The camera the grid was built for.

    Returns:
      float32 of depths' shape and kind: 0 at the nearest slab's centre,
      ``num_layers - 1`` at the farthest; pixels outside the grid's depth
      range are clipped to the end slabs.
    """
    is_numpy = isinstance(depths, np.ndarray)
    depths64 = depths.astype(np.float64) if is_numpy else tf.cast(depths, tf.float64)
    last = float(self.num_layers - 1)
    if self.num_layers == 1:
      index = depths64 * 0.0
    elif self.thickness_m > 0:
      index = (depths64 - self.first_depth_m) / self.thickness_m
    else:
      start = float(_warp(self.signed_blur_px[0], self.warp_scale_px))
      position = (_warp(camera.signed_blur_px(depths64), self.warp_scale_px) - start)
      index = _interpolate(self.share_table, position / self.share_table_step, is_numpy)
    if is_numpy:
      return np.clip(index, 0.0, last).astype(np.float32)
    return tf.clip_by_value(tf.cast(index, tf.float32), 0.0, last)


def _interpolate(table: np.ndarray, position, is_numpy: bool):
  """Linear interpolation in ``table`` at fractional ``position`` (clipped to it)."""
  size = float(table.size - 1)
  if is_numpy:
    position = np.clip(position, 0.0, size)
    below = np.minimum(np.floor(position), size - 1.0)
    i = below.astype(np.int64)
    return table[i] + (position - below) * (table[i + 1] - table[i])
  position = tf.clip_by_value(position, 0.0, size)
  below = tf.minimum(tf.floor(position), size - 1.0)
  i = tf.cast(below, tf.int64)
  values = tf.constant(table, tf.float64)
  low, high = tf.gather(values, i), tf.gather(values, i + 1)
  return low + (position - below) * (high - low)


def _kernel_spectrum(psf: str, blur_diameter_px: float, rho: float, size: int) -> np.ndarray:
  """Real 2-D DFT (size x size) of the sampled kernel, centred at the origin."""
  kernel = psf_lib.psf_kernel_2d(psf, blur_diameter_px, rho)
  radius = kernel.shape[0] // 2
  padded = np.zeros((size, size))
  padded[:kernel.shape[0], :kernel.shape[1]] = kernel
  padded = np.roll(padded, (-radius, -radius), axis=(0, 1))
  return np.fft.rfft2(padded).real  # symmetric kernels: real spectra.


def _share_table(nodes: np.ndarray, scale: float, step: float, psf: str, rho: float):
  """Least-squares pixel shares between adjacent slabs; see the module docstring."""
  radius = max(psf_lib.psf_kernel_2d(psf, abs(c), rho).shape[0] // 2 for c in nodes[[0, -1]])
  size = int(2 ** math.ceil(math.log2(max(32, 4 * radius + 2))))
  fy = np.fft.fftfreq(size)[:, None]
  fx = np.fft.rfftfreq(size)[None, :]
  weight = 1.0 / (fx**2 + fy**2 + (1.0 / size) ** 2)  # natural images: 1/f^2 power.
  weight[:, 1:-1] *= 2.0  # rfft keeps half of the spectrum: count the rest.
  sub_step = step / _TABLE_STEPS_PER_SEGMENT
  spectra = [_kernel_spectrum(psf, abs(c), rho, size) for c in nodes]
  table = [0.0]
  for k in range(len(nodes) - 1):
    near, far = spectra[k], spectra[k + 1]
    difference = far - near
    denominator = float((weight * difference**2).sum())
    u0 = _warp(nodes[k], scale)
    for j in range(1, _TABLE_STEPS_PER_SEGMENT + 1):
      c = float(_unwarp(u0 + j * sub_step, scale))
      tent = j / _TABLE_STEPS_PER_SEGMENT
      if denominator <= 1e-18:  # identical kernels (e.g. sub-pixel disks).
        share = tent
      else:
        own = _kernel_spectrum(psf, abs(c), rho, size)
        share = float((weight * (own - near) * difference).sum()) / denominator
      table.append(k + min(max(share, 0.0), 1.0))
  return np.maximum.accumulate(np.array(table)), sub_step


def _warp(signed_blur, scale):
  """The blur coordinate ``sign(c) * log1p(|c| / c0)`` (NumPy or TF)."""
  if isinstance(signed_blur, tf.Tensor):
    return tf.sign(signed_blur) * tf.math.log1p(tf.abs(signed_blur) / scale)
  return np.sign(signed_blur) * np.log1p(np.abs(signed_blur) / scale)


def _unwarp(warped, scale):
  return np.sign(warped) * np.expm1(np.abs(warped)) * scale


def blur_spaced_layers(camera: Camera, depth_range_m=(0.5, 10.0), min_step_px: float = 0.5,
                       max_step_ratio: float = 0.25, psf: str = psf_lib.DEFAULT_PSF,
                       rho: float = psf_lib.DEFAULT_RHO) -> LayerGrid:
  """Slabs evenly spaced in blur, covering ``depth_range_m``.

  Adjacent slabs differ in blur diameter by at most ``min_step_px`` near the
  focal plane and by at most ``max_step_ratio`` of their blur far from it.

  Args:
    camera: The camera whose blur the slabs follow.
    depth_range_m: (near, far) depths in metres that the slabs span; depths
      outside are rendered with the end slab's blur.
    min_step_px: Blur-diameter step between slabs at the focal plane, pixels.
    max_step_ratio: Relative blur step between slabs far from focus.
    psf: The PSF shape ("gaussian" or "disk"), whose kernels set the shares.
    rho: Gaussian sigma per unit of blur diameter.

  Returns:
    A soft :class:`LayerGrid`.
  """
  near, far = _check_depth_range(depth_range_m)
  if not min_step_px > 0 or not max_step_ratio > 0:
    raise ValueError("min_step_px and max_step_ratio must be positive, got "
                     f"{min_step_px!r} and {max_step_ratio!r}")
  psf_lib.check_psf(psf)
  scale = min_step_px / max_step_ratio
  start, stop = (_warp(camera.signed_blur_px(d), scale) for d in (near, far))
  # Nodes on integer multiples of the step: one slab lies exactly in focus.
  first = int(math.floor(start / max_step_ratio + 1e-9))
  last = max(first, int(math.ceil(stop / max_step_ratio - 1e-9)))
  nodes = _unwarp(np.arange(first, last + 1, dtype=np.float64) * max_step_ratio, scale)
  if nodes.size == 1:
    return LayerGrid(signed_blur_px=nodes, soft=True, warp_scale_px=scale)
  table, table_step = _share_table(nodes, scale, max_step_ratio, psf, rho)
  return LayerGrid(signed_blur_px=nodes, soft=True, warp_scale_px=scale, share_table=table,
                   share_table_step=table_step)


def depth_spaced_layers(camera: Camera, depth_range_m=(0.5, 10.0),
                        thickness_m: float = 10.0 / 255.0) -> LayerGrid:
  """The paper's slabs: every ``thickness_m`` metres across ``depth_range_m``.

  Slab ``k`` is centred on depth ``k * thickness_m`` (8-bit depth over 10 m for
  the default), each pixel in the slab nearest to its depth.

  Returns:
    A hard :class:`LayerGrid`.
  """
  near, far = _check_depth_range(depth_range_m)
  if not thickness_m > 0:
    raise ValueError(f"thickness_m must be positive, got {thickness_m!r}")
  first = max(1, int(round(near / thickness_m)))
  last = max(first, int(round(far / thickness_m)))
  depths = np.arange(first, last + 1, dtype=np.float64) * thickness_m
  return LayerGrid(signed_blur_px=camera.signed_blur_px(depths), soft=False,
                   thickness_m=thickness_m, first_depth_m=first * thickness_m)
