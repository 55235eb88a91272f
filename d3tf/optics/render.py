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
    nearer slabs count as unknown, not as empty. Light that passes the
    blurred rim of an occluder is given the colour found behind that
    occluder nearby (the lens sees around it; the all-in-focus view hides
    that background), and whatever is still uncovered is renormalised away,
    so no dark seams appear at occlusion edges;
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

from absl import logging
import numpy as np
import tensorflow as tf

from d3tf.optics import blur as blur_lib
from d3tf.optics import color
from d3tf.optics import fused_render as fused_lib
from d3tf.optics import layers as layers_lib
from d3tf.optics import noise as noise_lib
from d3tf.optics import psf as psf_lib
from d3tf.optics import tiled_render as tiled_lib
from d3tf.optics.camera import Camera

MODES = ("improved", "paper")
BORDERS = ("reflect", "zero")
ENGINES = ("fused", "reference", "tiled")



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
    fill_hidden: With normalisation, fill the light that passes a blurred
      occluder's rim with the colour found behind it nearby (True), instead
      of renormalising it away.
    linear_light: Blur in linear light (decode sRGB first, encode after).
    border: "reflect" or "zero" padding at the image border.
    noise_shot_gain: Poisson (shot) noise variance per unit linear signal.
    noise_read_std: Gaussian read-noise standard deviation (linear units).
    skip_empty_layers: Skip slabs that no pixel of the batch falls in.
    output_bits: 0 (default): float output; 1-16: round the sRGB output to
      ``2**bits`` levels, as a camera's file stores it (8: a JPEG or PNG),
      so that a model trained on renders sees what it is served (uint8).
    engine: "reference" (default): slab by slab, with direct blurs and the
      skipping of empty slabs; "fused": all slabs in one XLA-compiled
      program, large Gaussian blurs on an image pyramid
      (:mod:`d3tf.optics.fused_render`; 1.3x faster by wall time and 1.9x
      less CPU on real NYU frames, ``benchmarks/results/render_nyu.md``, but
      9-30 s of compilation per camera, settings and image shape, so not yet
      the default); "tiled": the fused engine's blurs tile by tile, each
      tile blurring only the slabs within reach of it
      (:mod:`d3tf.optics.tiled_render`; the same renders as "fused", bit for
      bit, with about 2.6x less CPU than "fused" and 5.4x less than
      "reference" on real NYU frames). Settings the fused and tiled engines
      do not cover (the disk PSF, mask dilation, more than
      ``MAX_FUSED_SLABS`` slabs, e.g. the paper mode) fall back to
      "reference".
    pyramid_min_sigma: Fused engine: smallest residual Gaussian sigma, in
      pixels of a pyramid level, for which a slab is blurred on that level
      (0: every blur direct, at full resolution).
    jit_compile: Fused and tiled engines: compile with XLA (False runs the
      same ops op by op, much slower; for platforms without XLA).
    tile_size: Tiled engine (``engine="tiled"``,
      :mod:`d3tf.optics.tiled_render`): side of a tile, pixels.
    shards: Fused and tiled engines: split a batch into this many parts
      rendered concurrently (XLA's CPU loops run on one thread each; keep 1
      on a GPU). Ignored with sensor noise, whose draws are per batch.
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
  fill_hidden: bool = True
  linear_light: bool = True
  border: str = "reflect"
  noise_shot_gain: float = 0.0
  noise_read_std: float = 0.0
  skip_empty_layers: bool = True
  output_bits: int = 0
  engine: str = "reference"
  pyramid_min_sigma: float = 1.0
  jit_compile: bool = True
  tile_size: int = tiled_lib.DEFAULT_TILE_SIZE
  shards: int = 1

  @classmethod
  def for_mode(cls, mode: str = "improved", **overrides: Any) -> "RenderOptions":
    """A mode's defaults, with ``overrides`` (any field) applied on top."""
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    defaults: dict[str, Any] = {"mode": mode}
    if mode == "paper":
      defaults.update(layer_spacing="depth", dilation_px=4, normalize=False,
                      fill_hidden=False, linear_light=False, border="zero")
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
    if self.engine not in ENGINES:
      raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
    for name in ("tile_size", "shards"):
      value = getattr(self, name)
      if isinstance(value, bool) or value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not self.pyramid_min_sigma >= 0:
      raise ValueError(f"pyramid_min_sigma must be >= 0, got {self.pyramid_min_sigma!r}")
    if self.border not in BORDERS:
      raise ValueError(f"border must be one of {BORDERS}, got {self.border!r}")
    if not self.rho > 0:
      raise ValueError(f"rho must be positive, got {self.rho!r}")
    if self.dilation_px < 0 or int(self.dilation_px) != self.dilation_px:
      raise ValueError(f"dilation_px must be a non-negative integer, got {self.dilation_px!r}")
    if self.noise_shot_gain < 0 or self.noise_read_std < 0:
      raise ValueError("noise_shot_gain and noise_read_std must be >= 0, got "
                       f"{self.noise_shot_gain!r} and {self.noise_read_std!r}")
    if isinstance(self.output_bits, bool) or self.output_bits != int(self.output_bits) or \
        not 0 <= self.output_bits <= 16:
      raise ValueError(f"output_bits must be an integer in [0, 16] (0: float output), got "
                       f"{self.output_bits!r}")

  def layer_grid(self, camera: Camera, psf: str = psf_lib.DEFAULT_PSF) -> layers_lib.LayerGrid:
    """The depth slabs these options give for ``camera`` and ``psf``."""
    if self.layer_spacing == "blur":
      return layers_lib.blur_spaced_layers(camera, self.depth_range_m, self.min_layer_step_px,
                                           self.max_layer_step_ratio, psf, self.rho)
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


def _slab_kernel(psf: str, signed_blur_px: float, rho: float) -> blur_lib.Kernel:
  return blur_lib.Kernel(psf_lib.get(psf).kernel(abs(signed_blur_px), rho))


def _dilate(mask: tf.Tensor, radius: int) -> tf.Tensor:
  """Binary dilation of a [B,H,W] mask by a (2r+1)^2 square."""
  if radius <= 0:
    return mask
  return tf.nn.max_pool2d(mask[..., tf.newaxis], ksize=2 * radius + 1, strides=1,
                          padding="SAME")[..., 0]


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


def render_defocus(images, depths, camera: Camera, psf: str = psf_lib.DEFAULT_PSF, seed=None,
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
  noisy = settings.noise_shot_gain > 0 or settings.noise_read_std > 0
  seed_pair = _seed_pair(seed) if noisy else tf.zeros([2], tf.int32)

  fused = (_fused_renderer(camera, psf, settings) if settings.engine in ("fused", "tiled")
           else None)
  shards = min(settings.shards, images.shape[0] or 1) if not noisy else 1
  if fused is not None and shards > 1:
    out = fused.sharded(images, depths, shards)
  elif fused is not None:
    # The slab coordinate (float64 table look-up) is its own compiled program:
    # inside the main one, XLA would recompute it for every padded pixel.
    coordinate, valid = fused.coordinate(depths)
    out = fused.function(images, coordinate, valid, seed_pair)
  else:
    grid = settings.layer_grid(camera, psf)
    out = _render(images, depths, seed_pair, camera, psf, settings, grid, _reference_composite)
  if unbatched:
    out = out[0]
  return tf.cast(out, input_dtype) if input_dtype.is_floating else out


def _reference_composite(radiance, coordinate, valid, grid, camera, psf, settings):
  kernels = [_slab_kernel(psf, c, settings.rho) for c in grid.signed_blur_px]
  return _composite(radiance, coordinate, valid, grid, kernels, settings, psf_lib.get(psf).min_support)


def _padded_inputs(radiance, coordinate, valid, grid, settings, pad: int):
  """The slab coordinate (rounded for hard slabs, invalid pixels marked) and both inputs padded.

  Returns:
    ``(coordinate, padded_radiance, padded_coordinate)``: padded by ``pad`` pixels on each side,
    reflected or with zeros (then outside pixels get a coordinate that no slab claims).
  """
  if not grid.soft:
    coordinate = tf.round(coordinate)
  coordinate = tf.where(valid, coordinate, _INVALID_COORDINATE)
  if pad and settings.border == "reflect":
    return coordinate, _pad(radiance, pad, pad, "reflect"), _pad(coordinate, pad, pad, "reflect")
  if pad:
    paddings = [[0, 0], [pad, pad], [pad, pad], [0, 0]]
    return (coordinate, tf.pad(radiance, paddings),
            tf.pad(coordinate, paddings, constant_values=_OUTSIDE_COORDINATE))
  return coordinate, radiance, coordinate


def _fused_composite(radiance, coordinate, valid, grid, camera, psf, settings):
  """The fused engine's compositing (:mod:`d3tf.optics.fused_render`)."""
  del camera
  plans = [fused_lib.plan_gaussian(psf_lib.gaussian_sigma_px(c, settings.rho),
                                   settings.pyramid_min_sigma) for c in grid.signed_blur_px]
  pad = max(plan.margin for plan in plans)
  coordinate, padded_radiance, padded_coordinate = _padded_inputs(radiance, coordinate, valid,
                                                                  grid, settings, pad)
  return fused_lib.composite(radiance, coordinate, padded_radiance, padded_coordinate, pad,
                             grid, plans, settings, psf_lib.get(psf).min_support)


def _tiled_composite(radiance, coordinate, valid, grid, camera, psf, settings):
  """The tiled engine's compositing (:mod:`d3tf.optics.tiled_render`).

  Images whose batch, height or width is unknown when the graph is built
  (e.g. inside ``tf.data`` with variable sizes) take the fused engine's.
  """
  if not radiance.shape.is_fully_defined():
    return _fused_composite(radiance, coordinate, valid, grid, camera, psf, settings)
  plans = [fused_lib.plan_gaussian(psf_lib.gaussian_sigma_px(c, settings.rho),
                                   settings.pyramid_min_sigma) for c in grid.signed_blur_px]
  pad = max(plan.margin for plan in plans)
  _, padded_radiance, padded_coordinate = _padded_inputs(radiance, coordinate, valid, grid,
                                                         settings, pad)
  return tiled_lib.composite(radiance, padded_radiance, padded_coordinate, pad, grid, plans,
                             settings, psf_lib.get(psf).min_support, settings.tile_size)


def _slab_coordinate(depths, camera, grid):
  """Slab coordinate of every pixel, and whether its depth is valid."""
  valid = tf.math.is_finite(depths) & (depths > 0)
  safe_depths = tf.where(valid, depths, tf.ones_like(depths) * float(camera.focus_distance_m))
  return grid.layer_coordinate(safe_depths, camera), valid


def _render(images, depths, seed_pair, camera, psf, settings, grid, composite,
            coordinate_and_valid=None):
  """Batched NHWC render with the given compositing; see :func:`render_defocus`."""
  if coordinate_and_valid is None:
    coordinate_and_valid = _slab_coordinate(depths, camera, grid)
  coordinate, valid = coordinate_and_valid

  radiance = color.srgb_to_linear(images) if settings.linear_light else tf.clip_by_value(
      images, 0.0, 1.0)

  out = composite(radiance, coordinate, valid, grid, camera, psf, settings)

  if settings.noise_shot_gain > 0 or settings.noise_read_std > 0:
    linear = out if settings.linear_light else color.srgb_to_linear(out)
    linear = noise_lib.add_sensor_noise(linear, settings.noise_shot_gain,
                                        settings.noise_read_std, seed_pair)
    out = linear if settings.linear_light else color.linear_to_srgb(linear)
  if settings.linear_light:
    out = color.linear_to_srgb(out)
  out = tf.clip_by_value(out, 0.0, 1.0)
  if settings.output_bits:
    levels = float(2 ** int(settings.output_bits) - 1)
    out = tf.round(out * levels) / levels
  return out


@dataclasses.dataclass(frozen=True)
class _FusedRenderer:
  """The fused engine's compiled functions for one camera, PSF and settings."""
  grid: layers_lib.LayerGrid
  coordinate: Any  # depths [B,H,W,1] -> (slab coordinate, valid)
  function: Any  # (images, coordinate, valid, seed pair) -> render

  sharded: Any  # (images, depths, shards) -> render without noise, parts concurrently


def _sharded_render(coordinate, function):
  """A graph with one compiled render per part of the batch: TensorFlow runs them concurrently."""

  @tf.function(reduce_retracing=True)
  def sharded(images, depths, shards):
    size = images.shape[0]
    sizes = [size // shards + (1 if i < size % shards else 0) for i in range(shards)]
    outputs = []
    for part_images, part_depths in zip(tf.split(images, sizes), tf.split(depths, sizes)):
      part_coordinate, valid = coordinate(part_depths)
      outputs.append(function(part_images, part_coordinate, valid, tf.zeros([2], tf.int32)))
    return tf.concat(outputs, axis=0)

  return sharded


#: Compiled fused renderers, by camera, PSF and settings (a grid's share table
#: and an XLA program are built once per combination, not per call).
_FUSED_CACHE: dict[str, Any] = {}


def _fused_renderer(camera: Camera, psf: str, settings: RenderOptions):
  """The cached fused-engine :class:`_FusedRenderer` for these settings, or None.

  None where the fused engine does not cover the settings (see
  :func:`d3tf.optics.fused_render.supports`): the caller then renders with
  the reference engine.
  """
  key = repr((camera, psf, settings))
  if key in _FUSED_CACHE:
    return _FUSED_CACHE[key]
  grid = settings.layer_grid(camera, psf)
  function = None
  tiled = settings.engine == "tiled"
  composite = _tiled_composite if tiled else _fused_composite
  if (tiled_lib if tiled else fused_lib).supports(psf, grid, settings):
    def render(images, coordinate, valid, seed_pair):
      return _render(images, None, seed_pair, camera, psf, settings, grid, composite,
                     (coordinate, valid))
    coordinate = tf.function(lambda depths: _slab_coordinate(depths, camera, grid),
                             jit_compile=settings.jit_compile)
    compiled = tf.function(render, jit_compile=settings.jit_compile)
    function = _FusedRenderer(grid, coordinate, compiled, _sharded_render(coordinate, compiled))
  else:
    logging.log_first_n(logging.INFO, "render_defocus: the %s engine does not cover psf=%r "
                        "with these settings; using the reference engine", 4, settings.engine,
                        psf)
  _FUSED_CACHE[key] = function
  return function


def _occupied_slabs(coordinate: tf.Tensor, valid: tf.Tensor, grid) -> tf.Tensor:
  """Boolean [num_layers]: whether any valid pixel of the batch has weight in a slab."""
  num = grid.num_layers
  if grid.soft:
    lower = tf.cast(tf.floor(coordinate), tf.int32)
  else:
    lower = tf.cast(tf.round(coordinate), tf.int32)
  lower = tf.boolean_mask(lower, valid)
  counts = tf.math.bincount(lower, minlength=num + 1, maxlength=num + 1)
  if grid.soft:  # a pixel between slabs k and k+1 also falls in slab k+1.
    counts = counts + tf.concat([[0], counts[:-1]], axis=0)
  return counts[:num] > 0


#: Grids with more slabs than this are looped over in the graph (tf.while_loop)
#: instead of unrolled: the paper's 243 slabs would take a minute to trace.
MAX_UNROLLED_SLABS = 48


def _for_each_occupied_slab(coordinate, valid, grid, kernels, settings, state, update):
  """Folds ``update(state, index, blur)`` over the slabs near to far, skipping empty ones.

  ``update`` also gets the slab kernel's radius ``r`` and ``blur(planes)``, which
  blurs ``[C,B,H+2r,W+2r]`` planes with the slab's kernel into ``[C,B,W,H]``. Up to
  :data:`MAX_UNROLLED_SLABS` slabs, the loop is unrolled with each kernel a
  constant of its own size; beyond, it is a ``tf.while_loop`` whose kernels are
  gathered from a zero-padded table.
  """
  occupied = (_occupied_slabs(coordinate, valid, grid) if settings.skip_empty_layers else
              tf.ones([grid.num_layers], tf.bool))
  if grid.num_layers <= MAX_UNROLLED_SLABS:
    for index, kernel in enumerate(kernels):
      blur = lambda planes, kernel=kernel: blur_lib.blur_planes_transposed(planes, kernel)
      step = lambda s=state, i=index, r=kernel.radius, b=blur: update(s, float(i), r, b)
      state = step() if not settings.skip_empty_layers else tf.cond(
          occupied[index], step, lambda s=state: s)
    return state
  table = tf.constant(blur_lib.kernel_table(kernels))
  radius = table.shape[1] // 2

  def body(index, state):
    blur = lambda planes: blur_lib.blur_planes_transposed_by_weights(planes, table[index])
    state = tf.cond(occupied[index],
                    lambda: update(state, tf.cast(index, tf.float32), radius, blur),
                    lambda: state)
    return index + 1, state

  _, state = tf.while_loop(lambda index, _: index < grid.num_layers, body, (0, state))
  return state


def _slab_masks(coordinate, index, grid, settings, with_support):
  """Share of every pixel in slab ``index``, and (optionally) the slab's support.

  ``coordinate`` holds the pixels' slab coordinate, already rounded for hard
  grids, and a large negative value at invalid pixels so that they fall in no
  slab. The support is the set of pixels that can show the slab: the slab and
  all farther ones (pixels of nearer slabs hide what lies behind them, so they
  are unknown, not empty).
  """
  offset = coordinate - index
  if grid.soft:
    weight = tf.nn.relu(1.0 - tf.abs(offset))
    support = tf.clip_by_value(offset + 1.0, 0.0, 1.0) if with_support else None
  else:
    weight = tf.cast(tf.equal(offset, 0.0), tf.float32)
    support = tf.cast(offset >= 0.0, tf.float32) if with_support else None
  if settings.dilation_px:
    weight = _dilate(weight, settings.dilation_px)
    # Dilation never reaches into zero padding; with normalisation, nor into holes.
    floor = _INVALID_COORDINATE if with_support else _OUTSIDE_COORDINATE
    weight = weight * tf.cast(coordinate > floor, tf.float32)
    if with_support:
      support = tf.maximum(support, weight)
  return weight, support


# Slab coordinates that fall in no slab: holes, and zero padding beyond the border.
_INVALID_COORDINATE = -4.0
_OUTSIDE_COORDINATE = -8.0


def _composite(radiance, coordinate, valid, grid, kernels, settings, min_support):
  """Near-to-far compositing of the blurred slabs.

  Without ``settings.normalize`` (paper mode), the blurred slabs are summed,
  each over the blurred masks of the nearer ones. With it (improved mode),
  each slab's colour and coverage are divided by its blurred support; light
  that passes a slab's blurred rim but finds nothing farther (the lens looks
  around an occluder at background that the all-in-focus view hides) is
  filled, with ``settings.fill_hidden``, by the colour of what lies behind
  that slab nearby (a normalised blur of the farther pixels with the slab's
  PSF); what is still uncovered is renormalised away.

  Layout (see :mod:`d3tf.optics.blur`): the inputs are padded once by the
  largest kernel radius (reflecting the inputs and reflecting each slab are
  the same thing, since slabs are pointwise functions of them; zero borders
  pad with pixels that belong to no slab), then kept planar, ``[C,B,H,W]``.
  Each slab is formed on the image plus its own kernel's radius and blurred
  'VALID' back to the image; blurred slabs and the accumulators are in the
  transposed ``[C,B,W,H]`` layout until the end.

  Args:
    radiance: [B,H,W,3] float32 colour (linear or sRGB values).
    coordinate: [B,H,W,1] slab coordinate of every pixel.
    valid: [B,H,W,1] bool, False at holes.
    grid: The :class:`~d3tf.optics.layers.LayerGrid`.
    kernels: One :class:`~d3tf.optics.blur.Kernel` per slab.
    settings: The :class:`RenderOptions`.
    min_support: Blurred support below which a slab counts as absent.

  Returns:
    [B,H,W,3] composite, in the colour space of ``radiance``.
  """
  dilation = int(settings.dilation_px)
  pad = max(kernel.radius for kernel in kernels) + dilation
  coordinate, padded_radiance, padded_coordinate = _padded_inputs(radiance, coordinate, valid,
                                                                  grid, settings, pad)
  planes = tf.transpose(padded_radiance, [3, 0, 1, 2])  # [3,B,H,W]
  slab_coordinate = padded_coordinate[..., 0]  # [B,H,W]
  normalize = settings.normalize
  fill = normalize and settings.fill_hidden

  def margin(x, width):
    """Crops the padded frame to the image plus ``width`` pixels on each side."""
    cut = pad - width
    return x[..., cut:-cut, cut:-cut] if cut else x

  def present(value):
    return tf.where(value > min_support, value, 0.0)  # 0/0 and far tails -> absent.

  def update(state, index, radius, blur):
    accumulated, transmittance = state[:2]
    weight, support = _slab_masks(margin(slab_coordinate, radius + dilation), index, grid,
                                  settings, with_support=normalize)
    if dilation:  # dilated with a margin, so the crop is exact.
      weight = weight[..., dilation:-dilation, dilation:-dilation]
      support = support[..., dilation:-dilation, dilation:-dilation] if normalize else None
    planes_k = margin(planes, radius)
    stack = [planes_k * weight, weight[tf.newaxis]]
    if normalize:
      stack.append(support[tf.newaxis])
    if fill:
      stack.append(planes_k * support)
    blurred = blur(tf.concat(stack, axis=0))
    colour, alpha = blurred[:3], blurred[3]
    if normalize:
      known = present(blurred[4])
      colour = tf.math.divide_no_nan(colour, known)
      alpha = tf.math.divide_no_nan(alpha, known)
    new_state = (accumulated + transmittance * colour,
                 transmittance * tf.nn.relu(1.0 - alpha))
    if fill:
      filled, fill_weight = state[2:]
      behind_weight = present(blurred[4] - blurred[3])  # blurred farther pixels.
      behind = tf.math.divide_no_nan(blurred[5:8] - blurred[:3], behind_weight)
      blocked = transmittance * alpha * tf.cast(behind_weight > 0, tf.float32)
      new_state += (filled + blocked * behind, fill_weight + blocked)
    return new_state

  transposed_shape = tf.shape(tf.transpose(coordinate[..., 0], [0, 2, 1]))
  colour_shape = tf.concat([[3], transposed_shape], 0)
  state = (tf.zeros(colour_shape), tf.ones(transposed_shape))
  if fill:
    state += (tf.zeros(colour_shape), tf.zeros(transposed_shape))
  state = _for_each_occupied_slab(slab_coordinate, slab_coordinate > _INVALID_COORDINATE, grid,
                                  kernels, settings, state, update)

  def to_image(planes_t):  # [C,B,W,H] -> [B,H,W,C]
    return tf.transpose(planes_t, [1, 3, 2, 0])

  accumulated = to_image(state[0])
  if not normalize:
    return accumulated
  transmittance = to_image(state[1][tf.newaxis])
  coverage = 1.0 - transmittance
  renormalised = tf.where(coverage > min_support,
                          accumulated / tf.maximum(coverage, min_support), radiance)
  if not fill:
    return renormalised
  fill_weight = to_image(state[3][tf.newaxis])
  fill_colour = tf.math.divide_no_nan(to_image(state[2]), fill_weight)
  return tf.where(fill_weight > min_support, accumulated + transmittance * fill_colour,
                  renormalised)
