"""Depth-dependent defocus blur of RGB-D images, as pure TensorFlow ops.

:func:`render_defocus` turns all-in-focus images and their depth maps (metres)
into the images a thin-lens :class:`~d3tf.optics.Camera` would have taken. It
runs eagerly, inside ``tf.function`` and inside ``tf.data.Dataset.map``, on a
single image or a batch, and on the GPU when TensorFlow has one.

Method (Hasinoff & Kutulakos 2007, as in Carvalho et al. 2018): the scene is
cut into depth slabs (:mod:`d3tf.optics.layers`), each slab's masked image and
mask are blurred with that slab's PSF, and the slabs are composited near to
far, each farther slab attenuated by the blurred masks of the nearer ones.

Two modes:

``mode="improved"`` (default)
  * slabs spaced by blur, not by depth, with soft (tent) assignment, so the
    blur error per slab is bounded and few slabs are needed where blur changes
    little;
  * normalised accumulation instead of mask dilation: each slab's colour and
    coverage are divided by the blurred support of the pixels that can carry
    that slab (the slab itself and everything behind it); pixels hidden by
    nearer slabs count as unknown, not as empty. The composite is finally
    divided by its total weight, so no dark seams appear at occlusion edges;
  * borders reflect-padded (no darkened borders);
  * blur computed in linear light (sRGB decoded, then re-encoded);
  * optional Poisson-Gaussian sensor noise (``noise_shot_gain``,
    ``noise_read_std``), drawn from ``seed`` so renders are reproducible.
``mode="paper"``
  The paper's choices, for comparison: 10/255 m slabs, masks dilated by 4 px,
  no normalisation, blur applied to sRGB values, zero-padded borders.

Every option can also be set on its own (``render_defocus(..., mode="paper",
linear_light=True)``), which is how the ablation benchmark measures each one.

Invalid depth: pixels whose depth is not a positive finite number (0,
negative, NaN, +-inf: holes in sensor data) belong to no slab. In the improved
mode they are filled from the valid pixels around them, each with its own blur
(the normalisation treats them as unknown); a pixel with no valid pixel within
reach of any blur keeps its input colour. In the paper mode they contribute
nothing, and come out dark where no neighbour's blur reaches them, as
unnormalised compositing does. They never produce NaN. Valid depths outside
``depth_range_m`` are rendered with the blur of the nearest end of the range.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import tensorflow as tf

from d3tf.optics import color
from d3tf.optics import layers as layers_lib
from d3tf.optics import noise as noise_lib
from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera

MODES = ("improved", "paper")
BORDERS = ("reflect", "zero")

# Below this blurred support a slab is treated as absent (avoids 0/0).
_MIN_SUPPORT = 1e-6


@dataclasses.dataclass(frozen=True)
class RenderOptions:
  """Every setting of the layered renderer.

  Build one with :meth:`for_mode`, which fills in a mode's defaults and takes
  overrides. The fields:

  Attributes:
    mode: "improved" or "paper"; names the defaults below.
    rho: Gaussian sigma as a fraction of the blur diameter (paper: 0.3).
    depth_range_m: (near, far) metres spanned by the slabs.
    layer_spacing: "blur" (blur-spaced, soft) or "depth" (fixed thickness, hard).
    min_layer_step_px: For blur spacing: blur-diameter step at the focal plane.
    max_layer_step_ratio: For blur spacing: relative blur step far from focus.
    layer_thickness_m: For depth spacing: slab thickness in metres.
    dilation_px: Dilate each slab's mask by this many pixels (paper: 4).
    normalize: Normalised accumulation (True) or the paper's plain sum.
    linear_light: Blur in linear light (decode sRGB first, encode after).
    border: "reflect" or "zero" padding at the image border.
    noise_shot_gain: Poisson (shot) noise variance per unit linear signal.
    noise_read_std: Gaussian read-noise standard deviation (linear units).
    skip_empty_layers: Skip slabs that no pixel of the batch falls in.
  """

  mode: str = "improved"
  rho: float = psf_lib.DEFAULT_RHO
  depth_range_m: tuple[float, float] = (0.5, 10.0)
  layer_spacing: str = "blur"
  min_layer_step_px: float = 0.5
  max_layer_step_ratio: float = 0.25
  layer_thickness_m: float = 10.0 / 255.0
  dilation_px: int = 0
  normalize: bool = True
  linear_light: bool = True
  border: str = "reflect"
  noise_shot_gain: float = 0.0
  noise_read_std: float = 0.0
  skip_empty_layers: bool = True

  @classmethod
  def for_mode(cls, mode: str = "improved", **overrides: Any) -> "RenderOptions":
    """A mode's defaults, with ``overrides`` (any field) applied on top."""
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    defaults: dict[str, Any] = {"mode": mode}
    if mode == "paper":
      defaults.update(layer_spacing="depth", dilation_px=4, normalize=False,
                      linear_light=False, border="zero")
    names = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
      raise ValueError(f"Unknown render options {unknown}; known: {sorted(names)}")
    defaults.update(overrides)
    options = cls(**defaults)
    options.validate()
    return options

  def validate(self) -> None:
    """Raises ValueError naming the first bad field and its value."""
    if self.layer_spacing not in ("blur", "depth"):
      raise ValueError(f"layer_spacing must be 'blur' or 'depth', got {self.layer_spacing!r}")
    if self.border not in BORDERS:
      raise ValueError(f"border must be one of {BORDERS}, got {self.border!r}")
    if not self.rho > 0:
      raise ValueError(f"rho must be positive, got {self.rho!r}")
    if self.dilation_px < 0 or int(self.dilation_px) != self.dilation_px:
      raise ValueError(f"dilation_px must be a non-negative integer, got {self.dilation_px!r}")
    if self.noise_shot_gain < 0 or self.noise_read_std < 0:
      raise ValueError("noise_shot_gain and noise_read_std must be >= 0, got "
                       f"{self.noise_shot_gain!r} and {self.noise_read_std!r}")

  def layer_grid(self, camera: Camera) -> layers_lib.LayerGrid:
    """The depth slabs these options give for ``camera``."""
    if self.layer_spacing == "blur":
      return layers_lib.blur_spaced_layers(camera, self.depth_range_m, self.min_layer_step_px,
                                           self.max_layer_step_ratio)
    return layers_lib.depth_spaced_layers(camera, self.depth_range_m, self.layer_thickness_m)

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready settings, to save beside a run or an export."""
    return dataclasses.asdict(self)


# ---------------------------------------------------------------- blurring
def _pad(x: tf.Tensor, radius_y: int, radius_x: int, border: str) -> tf.Tensor:
  """Pads H and W of an NHWC tensor; reflection repeats for radii beyond the size."""
  if border == "zero":
    return tf.pad(x, [[0, 0], [radius_y, radius_y], [radius_x, radius_x], [0, 0]])
  for axis, radius in ((1, radius_y), (2, radius_x)):
    size = x.shape[axis]
    while radius > 0:
      step = radius if size is None else min(radius, size - 1)
      if step <= 0:  # A 1-pixel-wide image: reflection is repetition.
        step = radius
        paddings = [[0, 0]] * 4
        paddings[axis] = [step, step]
        x = tf.pad(x, paddings, mode="SYMMETRIC")
      else:
        paddings = [[0, 0]] * 4
        paddings[axis] = [step, step]
        x = tf.pad(x, paddings, mode="REFLECT")
      radius -= step
      size = None if size is None else size + 2 * step
  return x


@dataclasses.dataclass(frozen=True)
class _Kernel:
  """One slab's PSF, as NumPy weights: separable (1-D) or full 2-D."""

  weights: np.ndarray

  @property
  def separable(self) -> bool:
    return self.weights.ndim == 1

  @property
  def radius(self) -> int:
    return self.weights.shape[0] // 2

  @property
  def is_identity(self) -> bool:
    return self.weights.size == 1


def _slab_kernel(psf: str, signed_blur_px: float, rho: float) -> _Kernel:
  if psf == "gaussian":
    return _Kernel(psf_lib.gaussian_kernel_1d(psf_lib.gaussian_sigma_px(signed_blur_px, rho)))
  return _Kernel(psf_lib.disk_kernel_2d(abs(signed_blur_px)))


def _blur(x: tf.Tensor, kernel: _Kernel, border: str) -> tf.Tensor:
  """Convolves every channel of an NHWC float32 tensor with the kernel."""
  if kernel.is_identity:
    return x
  channels = x.shape[-1]
  radius = kernel.radius
  x = _pad(x, radius, radius, border)
  strides = [1, 1, 1, 1]
  if kernel.separable:
    k = tf.constant(kernel.weights, tf.float32)
    horizontal = tf.tile(tf.reshape(k, [1, -1, 1, 1]), [1, 1, channels, 1])
    vertical = tf.tile(tf.reshape(k, [-1, 1, 1, 1]), [1, 1, channels, 1])
    x = tf.nn.depthwise_conv2d(x, horizontal, strides, "VALID")
    return tf.nn.depthwise_conv2d(x, vertical, strides, "VALID")
  k = tf.constant(kernel.weights, tf.float32)
  side = kernel.weights.shape[0]
  full = tf.tile(tf.reshape(k, [side, side, 1, 1]), [1, 1, channels, 1])
  return tf.nn.depthwise_conv2d(x, full, strides, "VALID")


def _dilate(mask: tf.Tensor, radius: int) -> tf.Tensor:
  """Binary dilation of an NHW1 mask by a (2r+1)^2 square."""
  if radius <= 0:
    return mask
  return tf.nn.max_pool2d(mask, ksize=2 * radius + 1, strides=1, padding="SAME")


# -------------------------------------------------------------- rendering
def _as_batch(images, depths):
  """Returns float32 NHWC images, NHW1 depths, and whether the input was unbatched."""
  images = tf.convert_to_tensor(images)
  depths = tf.convert_to_tensor(depths)
  if images.shape.rank not in (3, 4):
    raise ValueError(f"images must be [H,W,3] or [B,H,W,3], got shape {images.shape}")
  unbatched = images.shape.rank == 3
  if unbatched:
    images = images[tf.newaxis]
    if depths.shape.rank in (2, 3):
      depths = depths[tf.newaxis]
  if images.shape[-1] is not None and images.shape[-1] != 3:
    raise ValueError(f"images must have 3 channels (RGB), got shape {images.shape}")
  if depths.shape.rank == 3:
    depths = depths[..., tf.newaxis]
  if depths.shape.rank != 4 or (depths.shape[-1] is not None and depths.shape[-1] != 1):
    raise ValueError("depths must be [B,H,W] or [B,H,W,1] (or [H,W] for one image), got shape "
                     f"{depths.shape} for images of shape {images.shape}")
  if not images.shape[:3].is_compatible_with(depths.shape[:3]):
    raise ValueError(f"images of shape {images.shape} and depths of shape {depths.shape} "
                     "differ in batch, height or width")
  return tf.cast(images, tf.float32), tf.cast(depths, tf.float32), unbatched


def _seed_pair(seed) -> tf.Tensor:
  if seed is None:
    return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
  seed = tf.convert_to_tensor(seed)
  if seed.shape.rank == 0:
    return tf.stack([tf.cast(seed, tf.int32), tf.constant(0x5EED, tf.int32)])
  return tf.cast(seed, tf.int32)


def render_defocus(images, depths, camera: Camera, psf: str = "gaussian", seed=None,
                   **options: Any) -> tf.Tensor:
  """Renders the defocus blur that ``camera`` puts on all-in-focus RGB-D images.

  Args:
    images: Float images in [0, 1] (sRGB), [B,H,W,3] or a single [H,W,3].
    depths: Depth in metres, [B,H,W] or [B,H,W,1] ([H,W] or [H,W,1] with a
      single image). Zero, negative, NaN and infinite values mark holes; see
      the module docstring for what they get.
    camera: The thin-lens camera whose blur to render.
    psf: "gaussian" (sigma = rho * blur diameter) or "disk" (anti-aliased
      pillbox of the blur diameter).
    seed: Int or shape-[2] int tensor seeding the sensor noise; the same seed
      gives the same render. Unused without noise.
    **options: Fields of :class:`RenderOptions`: ``mode`` ("improved" or
      "paper") and any override of that mode's defaults.

  Returns:
    The defocused images, float32 in [0, 1], with the shape of ``images``.

  Raises:
    ValueError: for a bad PSF name, option, or shapes that do not match.
  """
  psf_lib.check_psf(psf)
  if not isinstance(camera, Camera):
    raise ValueError(f"camera must be a d3tf.optics.Camera, got {camera!r}")
  settings = RenderOptions.for_mode(**options)
  input_dtype = tf.convert_to_tensor(images).dtype
  images, depths, unbatched = _as_batch(images, depths)

  grid = settings.layer_grid(camera)
  kernels = [_slab_kernel(psf, c, settings.rho) for c in grid.signed_blur_px]

  valid = tf.math.is_finite(depths) & (depths > 0)
  safe_depths = tf.where(valid, depths, tf.ones_like(depths) * float(camera.focus_distance_m))
  coordinate = grid.layer_coordinate(safe_depths, camera)
  valid_f = tf.cast(valid, tf.float32)

  radiance = color.srgb_to_linear(images) if settings.linear_light else tf.clip_by_value(
      images, 0.0, 1.0)

  if settings.normalize:
    out = _composite_normalised(radiance, coordinate, valid_f, grid, kernels, settings)
  else:
    out = _composite_plain(radiance, coordinate, valid_f, grid, kernels, settings)

  if settings.noise_shot_gain > 0 or settings.noise_read_std > 0:
    linear = out if settings.linear_light else color.srgb_to_linear(out)
    linear = noise_lib.add_sensor_noise(linear, settings.noise_shot_gain,
                                        settings.noise_read_std, _seed_pair(seed))
    out = linear if settings.linear_light else color.linear_to_srgb(linear)
  if settings.linear_light:
    out = color.linear_to_srgb(out)
  out = tf.clip_by_value(out, 0.0, 1.0)
  if unbatched:
    out = out[0]
  return tf.cast(out, input_dtype) if input_dtype.is_floating else out


def _slab_weight(coordinate: tf.Tensor, index: int, soft: bool) -> tf.Tensor:
  """Share of every pixel that belongs to slab ``index`` (NHW1)."""
  if soft:
    return tf.nn.relu(1.0 - tf.abs(coordinate - float(index)))
  return tf.cast(tf.equal(tf.round(coordinate), float(index)), tf.float32)


def _maybe_skip(mask: tf.Tensor, settings: RenderOptions, compute, shape_like: tf.Tensor):
  """Runs ``compute()`` unless no pixel of the batch falls in the slab."""
  if not settings.skip_empty_layers:
    return compute()
  return tf.cond(tf.reduce_any(mask > 0), compute,
                 lambda: tf.nest.map_structure(tf.zeros_like, shape_like))


def _composite_normalised(radiance, coordinate, valid, grid, kernels, settings):
  """Near-to-far compositing with normalised accumulation (improved mode)."""
  accumulated = tf.zeros_like(radiance)
  transmittance = tf.ones_like(valid)
  zeros4 = tf.zeros_like(tf.concat([radiance, valid], axis=-1))
  for index, kernel in enumerate(kernels):
    weight = _slab_weight(coordinate, index, grid.soft) * valid
    if settings.dilation_px:
      weight = _dilate(weight, settings.dilation_px) * valid
    # Pixels that can show this slab: the slab and all farther ones. Nearer
    # pixels hide what lies behind them, so they are unknown, not empty.
    if grid.soft:
      support = tf.clip_by_value(coordinate - float(index) + 1.0, 0.0, 1.0) * valid
    else:
      support = tf.cast(coordinate >= float(index), tf.float32) * valid
    support = tf.maximum(support, weight)

    def blur_slab(weight=weight, support=support, kernel=kernel):
      stack = tf.concat([radiance * weight, weight, support], axis=-1)
      blurred = _blur(stack, kernel, settings.border)
      colour, alpha, known = blurred[..., :3], blurred[..., 3:4], blurred[..., 4:5]
      inverse = tf.where(known > _MIN_SUPPORT, 1.0 / tf.maximum(known, _MIN_SUPPORT), 0.0)
      alpha = tf.clip_by_value(alpha * inverse, 0.0, 1.0)
      return tf.concat([colour * inverse, alpha], axis=-1)

    layer = _maybe_skip(weight, settings, blur_slab, zeros4)
    accumulated += transmittance * layer[..., :3]
    transmittance *= 1.0 - layer[..., 3:4]
  coverage = 1.0 - transmittance
  return tf.where(coverage > _MIN_SUPPORT, accumulated / tf.maximum(coverage, _MIN_SUPPORT),
                  radiance)


def _composite_plain(radiance, coordinate, valid, grid, kernels, settings):
  """The paper's compositing: sum of blurred slabs over blurred nearer masks."""
  accumulated = tf.zeros_like(radiance)
  transmittance = tf.ones_like(valid)
  zeros4 = tf.zeros_like(tf.concat([radiance, valid], axis=-1))
  for index, kernel in enumerate(kernels):
    weight = _slab_weight(coordinate, index, grid.soft) * valid
    if settings.dilation_px:
      weight = _dilate(weight, settings.dilation_px)

    def blur_slab(weight=weight, kernel=kernel):
      return _blur(tf.concat([radiance * weight, weight], axis=-1), kernel, settings.border)

    layer = _maybe_skip(weight, settings, blur_slab, zeros4)
    accumulated += transmittance * layer[..., :3]
    transmittance *= 1.0 - tf.clip_by_value(layer[..., 3:4], 0.0, 1.0)
  return accumulated
