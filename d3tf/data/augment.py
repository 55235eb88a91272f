"""Geometric and photometric augmentation of RGB-D examples, as stateless TF ops.

Every function takes an image (float32 [H, W, 3] in [0, 1]) and its depth
(float32 [H, W], metres, 0 = invalid) and applies the same geometry to both:

* :func:`random_scale_crop`: zoom by a random scale ``s`` (the camera moving
  closer by about ``s``: depth is divided by ``s``) and crop a random window of
  the requested size. Depth is resampled with nearest neighbour, so it is never
  interpolated across occlusion edges or invalid pixels, and 0 stays 0.
* :func:`random_flip`: horizontal flip.
* :func:`random_colour_gains`: per-channel and global gains (image only).
* :func:`center_crop` / :func:`center_crop_to_multiple`: the no-augmentation
  path used for evaluation.

Randomness comes from stateless ops seeded with shape-[2] integer seeds, so a
pipeline with a fixed seed is reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from d3tf.sizes import SIZE_MULTIPLE


def _check_range(name: str, value, low_bound: float) -> tuple[float, float]:
  try:
    low, high = (float(v) for v in value)
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
  if not low_bound < low <= high:
    raise ValueError(f"{name} must satisfy {low_bound} < low <= high, got {value!r}")
  return low, high


@dataclasses.dataclass(frozen=True)
class AugmentOptions:
  """Settings of the training augmentation.

  Attributes:
    scale_range: Range of the random zoom factor ``s`` (depth is divided by
      ``s``). Values below 1 zoom out (without anti-aliasing; keep them near 1).
      The zoom is raised where needed so the crop fits in the image.
    scale_depth: Whether depth is divided by the zoom factor (True for the
      usual scale augmentation; False keeps metric depth, e.g. to study it).
    flip: Random horizontal flips.
    channel_gain_range: Range of the independent per-channel colour gains.
    brightness_range: Range of the global brightness gain.
  """

  scale_range: tuple[float, float] = (1.0, 1.5)
  scale_depth: bool = True
  flip: bool = True
  channel_gain_range: tuple[float, float] = (0.9, 1.1)
  brightness_range: tuple[float, float] = (0.8, 1.2)

  def __post_init__(self):
    object.__setattr__(self, "scale_range", _check_range("scale_range", self.scale_range, 0.0))
    object.__setattr__(self, "channel_gain_range",
                       _check_range("channel_gain_range", self.channel_gain_range, 0.0))
    object.__setattr__(self, "brightness_range",
                       _check_range("brightness_range", self.brightness_range, 0.0))


def check_crop_size(crop_size: Sequence[int], multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
  """Returns ``crop_size`` as ``(height, width)``; each must be a positive multiple of 32.

  Raises:
    ValueError: naming the bad value.
  """
  try:
    height, width = crop_size
  except (TypeError, ValueError):
    raise ValueError(f"crop_size must be a (height, width) pair, got {crop_size!r}") from None
  for value in (height, width):
    if isinstance(value, bool) or int(value) != value or value <= 0 or value % multiple:
      raise ValueError(f"crop_size must be positive multiples of {multiple}, got {crop_size!r}")
  return int(height), int(width)


def sanitize_depth(depth: tf.Tensor) -> tf.Tensor:
  """Sets every depth that is not a positive finite number (NaN, inf, <= 0) to 0."""
  depth = tf.cast(depth, tf.float32)
  return tf.where(tf.math.is_finite(depth) & (depth > 0), depth, tf.zeros_like(depth))


def random_scale_crop(image: tf.Tensor, depth: tf.Tensor, crop_size: Sequence[int],
                      scale_range: Sequence[float], seed: tf.Tensor,
                      scale_depth: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
  """Zooms by a random factor and crops a random window, consistently for both.

  The window is sampled with ``tf.image.crop_and_resize`` (bilinear for the
  image, nearest neighbour for depth) so only the crop is computed. The zoom
  ``s`` is the ratio of output to input pixel spacing; depth is divided by it.

  Args:
    image: float32 [H, W, 3].
    depth: float32 [H, W], metres, 0 = invalid.
    crop_size: Output (height, width).
    scale_range: (low, high) of the zoom factor, drawn uniformly, then raised to
      the smallest zoom for which the crop fits.
    seed: Shape-[2] integer seed.
    scale_depth: Divide depth by the zoom factor.

  Returns:
    The cropped image [h, w, 3] and depth [h, w].
  """
  crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
  seeds = tf.random.experimental.stateless_split(seed, 3)
  shape = tf.shape(image)
  h = tf.cast(shape[0], tf.float32)
  w = tf.cast(shape[1], tf.float32)
  # crop_and_resize maps output samples i = 0..n-1 onto input coordinates
  # y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (n - 1): the zoom is (n - 1) over
  # the window's extent in input pixels.
  fit = tf.maximum((crop_h - 1.0) / tf.maximum(h - 1.0, 1.0), (crop_w - 1.0) / tf.maximum(w - 1.0, 1.0))
  scale = tf.random.stateless_uniform([], seeds[0], minval=float(scale_range[0]),
                                      maxval=float(scale_range[1]))
  scale = tf.maximum(scale, fit)
  extent_y = (crop_h - 1.0) / scale  # Window extent in input pixels.
  extent_x = (crop_w - 1.0) / scale
  y0 = tf.random.stateless_uniform([], seeds[1]) * tf.maximum(h - 1.0 - extent_y, 0.0)
  x0 = tf.random.stateless_uniform([], seeds[2]) * tf.maximum(w - 1.0 - extent_x, 0.0)
  box = tf.stack([y0 / tf.maximum(h - 1.0, 1.0), x0 / tf.maximum(w - 1.0, 1.0),
                  (y0 + extent_y) / tf.maximum(h - 1.0, 1.0),
                  (x0 + extent_x) / tf.maximum(w - 1.0, 1.0)])[tf.newaxis]
  box_indices = tf.zeros([1], tf.int32)
  out_image = tf.image.crop_and_resize(image[tf.newaxis], box, box_indices, [crop_h, crop_w],
                                       method="bilinear")[0]
  out_depth = tf.image.crop_and_resize(depth[tf.newaxis, :, :, tf.newaxis], box, box_indices,
                                       [crop_h, crop_w], method="nearest")[0, :, :, 0]
  if scale_depth:
    out_depth = out_depth / scale  # 0 stays 0.
  return out_image, out_depth


def random_flip(image: tf.Tensor, depth: tf.Tensor, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Flips image and depth left-right together, with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed) < 0.5
  return tf.cond(flip, lambda: (tf.reverse(image, [1]), tf.reverse(depth, [1])),
                 lambda: (image, depth))


def random_colour_gains(image: tf.Tensor, channel_gain_range: Sequence[float],
                        brightness_range: Sequence[float], seed: tf.Tensor) -> tf.Tensor:
  """Multiplies the image by random per-channel and global gains, clipped to [0, 1]."""
  seeds = tf.random.experimental.stateless_split(seed, 2)
  gains = tf.random.stateless_uniform([3], seeds[0], minval=float(channel_gain_range[0]),
                                      maxval=float(channel_gain_range[1]))
  brightness = tf.random.stateless_uniform([], seeds[1], minval=float(brightness_range[0]),
                                           maxval=float(brightness_range[1]))
  return tf.clip_by_value(image * (gains * brightness), 0.0, 1.0)


def augment_example(image: tf.Tensor, depth: tf.Tensor, crop_size: Sequence[int],
                    seed: tf.Tensor, options: AugmentOptions | None = None
                    ) -> tuple[tf.Tensor, tf.Tensor]:
  """The training augmentation: scale + crop, flip, colour gains.

  Args:
    image: float32 [H, W, 3] in [0, 1].
    depth: float32 [H, W] metres, 0 = invalid.
    crop_size: Output (height, width); multiples of 32.
    seed: Shape-[2] integer seed; the same seed gives the same augmentation.
    options: The settings; defaults to ``AugmentOptions()``.

  Returns:
    The augmented image [h, w, 3] in [0, 1] and depth [h, w].
  """
  options = options or AugmentOptions()
  crop_size = check_crop_size(crop_size)
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
  image, depth = random_scale_crop(image, depth, crop_size, options.scale_range, seeds[0],
                                   options.scale_depth)
  if options.flip:
    image, depth = random_flip(image, depth, seeds[1])
  image = random_colour_gains(image, options.channel_gain_range, options.brightness_range,
                              seeds[2])
  return image, depth


def center_crop(image: tf.Tensor, depth: tf.Tensor, crop_size: Sequence[int]
                ) -> tuple[tf.Tensor, tf.Tensor]:
  """Crops the central ``crop_size`` window of image and depth (no resampling).

  Raises (when run) InvalidArgumentError if the image is smaller than the crop.
  """
  crop_h, crop_w = int(crop_size[0]), int(crop_size[1])
  shape = tf.shape(image)
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(
          shape[:2], tf.constant([crop_h, crop_w]),
          message=f"center_crop: the image is smaller than crop_size {(crop_h, crop_w)}")]):
    top = (shape[0] - crop_h) // 2
    left = (shape[1] - crop_w) // 2
  image = image[top:top + crop_h, left:left + crop_w]
  depth = depth[top:top + crop_h, left:left + crop_w]
  image.set_shape([crop_h, crop_w, image.shape[-1]])
  depth.set_shape([crop_h, crop_w])
  return image, depth


def center_crop_to_multiple(image: tf.Tensor, depth: tf.Tensor, multiple: int = SIZE_MULTIPLE
                            ) -> tuple[tf.Tensor, tf.Tensor]:
  """Crops the centre of image and depth to the largest multiple of ``multiple`` per side.

  The evaluation path: no resampling, so depth keeps its metric values.
  Raises (when run) InvalidArgumentError for an image smaller than ``multiple``.
  """
  shape = tf.shape(image)
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(
          shape[:2], multiple,
          message=f"center_crop_to_multiple: the image is smaller than {multiple} pixels")]):
    crop_h = shape[0] // multiple * multiple
    crop_w = shape[1] // multiple * multiple
  top = (shape[0] - crop_h) // 2
  left = (shape[1] - crop_w) // 2
  static_h, static_w = image.shape[0], image.shape[1]
  image = image[top:top + crop_h, left:left + crop_w]
  depth = depth[top:top + crop_h, left:left + crop_w]
  out_h = static_h // multiple * multiple if static_h is not None else None
  out_w = static_w // multiple * multiple if static_w is not None else None
  image.set_shape([out_h, out_w, image.shape[-1]])
  depth.set_shape([out_h, out_w])
  return image, depth
