"""Depth layers for layered defocus rendering.

A layered renderer cuts the scene into slabs, each blurred with one PSF. Two
ways to place the slabs are offered:

* :func:`blur_spaced_layers` (d3tf's default): slabs evenly spaced in a warped
  *blur* coordinate, so that the blur error inside one slab is bounded: at most
  ``min_step_px`` of blur diameter near the focal plane, and at most a fraction
  ``max_step_ratio`` of the blur itself far from it, where a change of blur is
  barely visible. Pixels are shared between the two nearest slabs by linear
  ("tent") weights, so a surface between two slabs gets a blend of both blurs.
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

from d3tf.optics.camera import Camera


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
  """

  signed_blur_px: np.ndarray
  soft: bool
  warp_scale_px: float = 0.0
  thickness_m: float = 0.0
  first_depth_m: float = 0.0

  @property
  def num_layers(self) -> int:
    return int(self.signed_blur_px.shape[0])

  def layer_coordinate(self, depths: tf.Tensor, camera: Camera) -> tf.Tensor:
    """Fractional slab index of every pixel (float32, clipped to the grid).

    Args:
      depths: Valid depths in metres (positive, finite), any shape.
      camera: The camera the grid was built for.

    Returns:
      A tensor of depths' shape: 0 for the nearest slab's centre,
      ``num_layers - 1`` for the farthest; pixels outside the grid's depth
      range are clipped to the end slabs.
    """
    last = float(self.num_layers - 1)
    if self.num_layers == 1:
      return tf.zeros_like(depths)
    if self.thickness_m > 0:
      index = depths / self.thickness_m - self.first_depth_m / self.thickness_m
    else:
      warped = _warp(camera.signed_blur_px(tf.cast(depths, tf.float64)), self.warp_scale_px)
      start = float(_warp(self.signed_blur_px[0], self.warp_scale_px))
      step = float(_warp(self.signed_blur_px[1], self.warp_scale_px)) - start
      index = tf.cast((warped - start) / step, tf.float32)
    return tf.clip_by_value(tf.cast(index, tf.float32), 0.0, last)


def _warp(signed_blur, scale):
  """The blur coordinate ``sign(c) * log1p(|c| / c0)`` (NumPy or TF)."""
  if isinstance(signed_blur, tf.Tensor):
    return tf.sign(signed_blur) * tf.math.log1p(tf.abs(signed_blur) / scale)
  return np.sign(signed_blur) * np.log1p(np.abs(signed_blur) / scale)


def _unwarp(warped, scale):
  return np.sign(warped) * np.expm1(np.abs(warped)) * scale


def blur_spaced_layers(camera: Camera, depth_range_m=(0.5, 10.0), min_step_px: float = 0.5,
                       max_step_ratio: float = 0.25) -> LayerGrid:
  """Slabs evenly spaced in blur, covering ``depth_range_m``.

  Adjacent slabs differ in blur diameter by at most ``min_step_px`` near the
  focal plane and by at most ``max_step_ratio`` of their blur far from it.

  Args:
    camera: The camera whose blur the slabs follow.
    depth_range_m: (near, far) depths in metres that the slabs span; depths
      outside are rendered with the end slab's blur.
    min_step_px: Blur-diameter step between slabs at the focal plane, pixels.
    max_step_ratio: Relative blur step between slabs far from focus.

  Returns:
    A soft :class:`LayerGrid`.
  """
  near, far = _check_depth_range(depth_range_m)
  if not min_step_px > 0 or not max_step_ratio > 0:
    raise ValueError("min_step_px and max_step_ratio must be positive, got "
                     f"{min_step_px!r} and {max_step_ratio!r}")
  scale = min_step_px / max_step_ratio
  start, stop = (_warp(camera.signed_blur_px(d), scale) for d in (near, far))
  # Nodes on integer multiples of the step: one slab lies exactly in focus.
  first = int(math.floor(start / max_step_ratio + 1e-9))
  last = max(first, int(math.ceil(stop / max_step_ratio - 1e-9)))
  warped = np.arange(first, last + 1, dtype=np.float64) * max_step_ratio
  return LayerGrid(signed_blur_px=_unwarp(warped, scale), soft=True, warp_scale_px=scale)


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
