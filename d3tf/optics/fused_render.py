"""The fused layered renderer: every slab in one XLA program, large blurs on a pyramid.

The same physics as the reference compositing of :mod:`d3tf.optics.render`
(same slabs, shares, normalisation and hidden-background fill), organised for
speed:

* **One compiled program.** The render after the slab look-up (sRGB
  decoding, padding, masks, blurs, compositing, encoding, noise) is a single
  ``tf.function(jit_compile=True)``: XLA fuses each slab's per-pixel work
  into a few loops, so the full-frame temporaries, concatenations and
  transposes of an op-by-op graph disappear. All shapes are static; empty
  slabs are skipped by one XLA conditional per slab (on an occupancy
  computed for all slabs in one reduction), not by a data-dependent
  ``bincount``. The conditionals also keep XLA from fusing all slabs'
  compositing into one loop with dozens of inputs, which it does not
  vectorise (measured 3-5x slower).
* **Blurs as sums of shifted slices.** A separable pass is ``sum_t w_t *
  x[t : t + n]`` along one axis, which XLA fuses into one vectorised loop;
  no convolution op (XLA's CPU depthwise convolution is slow) and no
  transpose. Slabs are planar, ``[C, B, H, W]`` with W the fastest axis.
* **A pyramid for large Gaussians.** A slab whose blur is large is
  downsampled ``l`` times by 2 (5-tap binomial, variance 1 in the input's
  pixels), blurred there with the residual Gaussian and upsampled back
  (the matching binomial interpolator), so its cost stops growing with its
  blur. Gaussians compose by adding variances: the down- and up-sampling add
  ``2 (4**l - 1) / 3`` px^2, so the residual sigma at level ``l`` is
  ``sqrt((sigma**2 - 2 (4**l - 1) / 3) / 4**l)`` pixels of that level. A
  level is used only where that residual is at least ``pyramid_min_sigma``
  (level pixels), which keeps the aliasing of the decimation and the
  spectral images of the interpolation far below a grey level
  (``tests/test_render_fused.py`` measures it). All the filters are
  non-negative, so normalised colours stay in the range of their inputs.

Only separable (Gaussian) PSFs, blur-spaced (soft) or depth-spaced slabs, no
mask dilation, and at most ``MAX_FUSED_SLABS`` slabs take this path;
:func:`supports` says which settings do, and the renderer falls back to the
reference for the rest.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf

from d3tf.optics import psf as psf_lib

#: More slabs than this are rendered by the reference engine (an unrolled
#: program of hundreds of slabs would take long to compile).
MAX_FUSED_SLABS = 48
#: Binomial filter of the pyramid (variance 1 in the pixels it filters).
_BINOMIAL = (1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16)


def supports(psf: str, grid, settings) -> bool:
  """Whether the fused engine renders these settings (else use the reference)."""
  return (psf == "gaussian" and settings.dilation_px == 0 and
          grid.num_layers <= MAX_FUSED_SLABS)


@dataclasses.dataclass(frozen=True)
class BlurPlan:
  """How one slab's Gaussian is applied: ``level`` halvings, then ``taps``.

  Attributes:
    level: Number of 2x downsamplings before the residual blur (0: direct).
    taps: The residual separable kernel, in pixels of that level.
  """

  level: int
  taps: np.ndarray

  @property
  def margin(self) -> int:
    """Full-resolution pixels the plan reads beyond each side of the output."""
    radius = self.taps.shape[0] // 2
    return 4 * (2**self.level - 1) + radius * 2**self.level


def pyramid_variance(level: int) -> float:
  """Variance (full-resolution px^2) that ``level`` down- and up-samplings add."""
  return 2.0 * (4**level - 1) / 3.0


def plan_gaussian(sigma_px: float, min_sigma: float, max_level: int = 4) -> BlurPlan:
  """The deepest pyramid level whose residual sigma is at least ``min_sigma``.

  Args:
    sigma_px: The slab's Gaussian sigma, full-resolution pixels.
    min_sigma: Smallest residual sigma (in pixels of the level) allowed; 0 or
      less disables the pyramid.
    max_level: Deepest level considered.

  Returns:
    The :class:`BlurPlan`; level 0 is the direct blur of the reference.
  """
  level = 0
  if min_sigma > 0:
    for candidate in range(1, max_level + 1):
      residual = (sigma_px**2 - pyramid_variance(candidate)) / 4**candidate
      if residual >= min_sigma**2:
        level = candidate
  if level == 0:
    return BlurPlan(0, psf_lib.gaussian_kernel_1d(sigma_px))
  residual = math.sqrt((sigma_px**2 - pyramid_variance(level)) / 4**level)
  return BlurPlan(level, psf_lib.gaussian_kernel_1d(residual))


def _slice(x: tf.Tensor, axis: int, start: int, stop, step: int = 1) -> tf.Tensor:
  index = [slice(None)] * x.shape.rank
  index[axis] = slice(start, stop, step)
  return x[tuple(index)]


def _correlate(x: tf.Tensor, taps: np.ndarray, axis: int) -> tf.Tensor:
  """'VALID' correlation of ``x`` with symmetric ``taps`` along ``axis``."""
  size = taps.shape[0]
  if size == 1:
    return x
  radius = size // 2
  end = lambda t: t - (size - 1) or None
  out = float(taps[radius]) * _slice(x, axis, radius, end(radius))
  for t in range(radius):  # symmetric: pair the taps.
    out += float(taps[t]) * (_slice(x, axis, t, end(t)) +
                             _slice(x, axis, size - 1 - t, end(size - 1 - t)))
  return out


def _downsample(x: tf.Tensor, axis: int) -> tf.Tensor:
  """Binomial filter and keep every other sample: ``y[j]`` is centred on ``x[2 j + 2]``."""
  taps = _BINOMIAL
  out = taps[2] * _slice(x, axis, 2, -2 or None, 2)
  for t in (0, 1):
    out += taps[t] * (_slice(x, axis, t, t - 4, 2) + _slice(x, axis, 4 - t, (-t) or None, 2))
  return out


def _upsample(x: tf.Tensor, axis: int) -> tf.Tensor:
  """Binomial interpolation by 2: output ``2 m`` lies on ``x[m + 1]``, ``2 m + 1`` halfway on."""
  middle = _slice(x, axis, 1, -1)
  after = _slice(x, axis, 2, None)
  even = 0.75 * middle + 0.125 * (_slice(x, axis, 0, -2) + after)
  odd = 0.5 * (middle + after)
  both = tf.stack([even, odd], axis=axis + 1)
  shape = tf.unstack(tf.shape(both))
  static = both.shape.as_list()
  merged = [static[i] if static[i] is not None else shape[i] for i in range(len(static))]
  length = (static[axis] * 2 if static[axis] is not None else shape[axis] * 2)
  new_shape = merged[:axis] + [length] + merged[axis + 2:]
  return tf.reshape(both, new_shape)


def blur(x: tf.Tensor, plan: BlurPlan, axes=(1, 2)) -> tf.Tensor:
  """Blurs ``x``, padded by ``plan.margin`` along ``axes`` (rows, columns), along both.

  ``axes`` is (1, 2) for NHWC and (2, 3) for the renderer's planar ``[C,B,H,W]``.

  Returns:
    The blurred tensor; its first H and W entries are the unpadded image (it
    may have a few more rows and columns, to be cropped by the caller).
  """
  rows, columns = axes
  for _ in range(plan.level):
    x = _downsample(_downsample(x, rows), columns)
  x = _correlate(_correlate(x, plan.taps, rows), plan.taps, columns)
  for _ in range(plan.level):
    x = _upsample(_upsample(x, rows), columns)
  return x


def slab_planes(radiance, coordinate, index, soft: bool, normalize: bool, fill: bool):
  """The planes one slab blurs, stacked on axis 0 (planar ``[C, ..., H, W]`` layout).

  Radiance times the slab's weight, the weight, then the support (pixels in
  or behind the slab) with ``normalize`` and the radiance times the support
  with ``fill``.

  Args:
    radiance: ``[3, ..., H, W]`` linear radiance.
    coordinate: ``[..., H, W]`` continuous slab coordinate of each pixel.
    index: The slab.
    soft: Linear weights between neighbouring slabs (else a pixel is in one).
    normalize, fill: As in :class:`d3tf.optics.RenderOptions`.
  """
  offset = coordinate - float(index)
  if soft:
    weight = tf.nn.relu(1.0 - tf.abs(offset))
    support = tf.clip_by_value(offset + 1.0, 0.0, 1.0)
  else:
    weight = tf.cast(tf.equal(offset, 0.0), tf.float32)
    support = tf.cast(offset >= 0.0, tf.float32)
  planes = [radiance * weight, weight[tf.newaxis]]
  if normalize:
    planes.append(support[tf.newaxis])
  if fill:
    planes.append(radiance * support)
  return tf.concat(planes, axis=0)


def composite_slab(blurred, state, normalize: bool, fill: bool, min_support: float):
  """Composites one slab's blurred planes (see :func:`slab_planes`) front to back.

  Args:
    blurred: The blurred planes, cropped to the output.
    state: ``(accumulated, transmittance, filled, fill_weight)`` so far.
    normalize, fill: As in :func:`slab_planes`.
    min_support: Blurred supports below it count as absent.

  Returns:
    The updated state.
  """
  accumulated, transmittance, filled, fill_weight = state
  present = lambda value: tf.where(value > min_support, value, 0.0)
  colour, alpha = blurred[:3], blurred[3]
  if normalize:
    known = present(blurred[4])
    colour = tf.math.divide_no_nan(colour, known)
    alpha = tf.math.divide_no_nan(alpha, known)
  if fill:
    behind_weight = present(blurred[4] - blurred[3])
    behind = tf.math.divide_no_nan(blurred[5:8] - blurred[:3], behind_weight)
    blocked = transmittance * alpha * tf.cast(behind_weight > 0, tf.float32)
    filled += blocked * behind
    fill_weight += blocked
  accumulated += transmittance * colour
  transmittance *= tf.nn.relu(1.0 - alpha)
  return accumulated, transmittance, filled, fill_weight


def composite(radiance, coordinate, padded_radiance, padded_coordinate, pad, grid, plans,
              settings, min_support):
  """Near-to-far normalised (or plain) compositing of all slabs.

  The same formulas as the reference engine's compositing, in the planar
  ``[C, B, H, W]`` layout, one conditional per slab.

  Args:
    radiance: [B,H,W,3] colour (linear or sRGB values).
    coordinate: [B,H,W,1] slab coordinate (rounded for hard grids), in no
      slab at holes.
    padded_radiance, padded_coordinate: The same, padded by ``pad`` pixels
      (reflected, or zeros and a coordinate in no slab).
    pad: The padding, at least every plan's margin.
    grid: The :class:`~d3tf.optics.layers.LayerGrid`.
    plans: One :class:`BlurPlan` per slab.
    settings: The :class:`~d3tf.optics.render.RenderOptions`.
    min_support: Blurred support below which a slab counts as absent.

  Returns:
    [B,H,W,3] composite, in the colour space of ``radiance``.
  """
  normalize = settings.normalize
  fill = normalize and settings.fill_hidden
  height, width = radiance.shape[1], radiance.shape[2]
  if height is None or width is None:
    dynamic = tf.shape(radiance)
    height = dynamic[1] if height is None else height
    width = dynamic[2] if width is None else width

  def crop(x, cut):
    return x[..., cut:-cut, cut:-cut] if cut else x

  # Planar layout: [C, B, H, W], W the fastest axis.
  padded_radiance = tf.transpose(padded_radiance, [3, 0, 1, 2])
  padded_coordinate = padded_coordinate[..., 0]
  planar_shape = tf.shape(padded_coordinate[:, :height, :width])
  accumulated = tf.zeros(tf.concat([[3], planar_shape], 0))
  transmittance = tf.ones(planar_shape)
  filled, fill_weight = accumulated, tf.zeros(planar_shape)
  # Which slabs any pixel of the batch falls in: one reduction for all slabs.
  # Each slab's work is a conditional on it, which skips empty slabs and keeps
  # XLA from fusing all slabs' updates into one loop too large to vectorise.
  slab_index = tf.range(len(plans), dtype=tf.float32)
  unpadded = padded_coordinate[:, pad:pad + height, pad:pad + width] if pad else (
      padded_coordinate)
  distance = tf.abs(unpadded[..., tf.newaxis] - slab_index)
  occupied = tf.reduce_any(distance < (1.0 if grid.soft else 0.5), axis=[0, 1, 2])

  def slab_update(index, plan, state):
    cut = pad - plan.margin
    slab_coordinate = crop(padded_coordinate, cut)
    slab_radiance = crop(padded_radiance, cut)
    planes = slab_planes(slab_radiance, slab_coordinate, index, grid.soft, normalize, fill)
    blurred = blur(planes, plan, axes=(2, 3))[..., :height, :width]
    return composite_slab(blurred, state, normalize, fill, min_support)

  state = (accumulated, transmittance, filled, fill_weight)
  for index, plan in enumerate(plans):
    state = tf.cond(occupied[index],
                    lambda i=index, p=plan, s=state: slab_update(i, p, s),
                    lambda s=state: s)
  accumulated, transmittance, filled, fill_weight = state

  to_image = lambda planes: tf.transpose(planes, [1, 2, 3, 0])
  accumulated = to_image(accumulated)
  if not normalize:
    return accumulated
  return finish(accumulated, transmittance[..., tf.newaxis],
                to_image(filled) if fill else None,
                fill_weight[..., tf.newaxis] if fill else None, radiance, min_support)


def finish(accumulated, transmittance, filled, fill_weight, radiance, min_support: float):
  """The composite's last step (normalised modes): renormalise, then fill hidden background.

  Where the slabs cover a pixel (coverage ``1 - transmittance`` above
  ``min_support``) the accumulated colour is divided by the coverage, else the
  sharp ``radiance`` is kept; with the fill, the uncovered rest takes the
  colour of what is behind the blocking slabs. All arguments broadcast
  together, elementwise.

  Args:
    accumulated: The composited colour.
    transmittance: What the slabs leave uncovered.
    filled, fill_weight: The hidden-background colour sum and weight, or
      None (no fill).
    radiance: The sharp colour of the same pixels.
    min_support: The smallest coverage or weight divided by.
  """
  coverage = 1.0 - transmittance
  renormalised = tf.where(coverage > min_support,
                          accumulated / tf.maximum(coverage, min_support), radiance)
  if filled is None:
    return renormalised
  fill_colour = tf.math.divide_no_nan(filled, fill_weight)
  return tf.where(fill_weight > min_support, accumulated + transmittance * fill_colour,
                  renormalised)

