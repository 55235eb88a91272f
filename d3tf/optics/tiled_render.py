"""The tiled layered renderer: each tile blurs only the slabs that reach it.

The same physics as the reference compositing of :mod:`d3tf.optics.render`
(same slabs, shares, normalisation and hidden-background fill) and the same
blurs as the fused engine (:mod:`d3tf.optics.fused_render`: sums of shifted
slices, large Gaussians on an image pyramid), organised around one fact of
real depth maps: a pixel lies in at most two adjacent slabs, and a tile of
the image spans a few slabs, not all of them.

* **Tiles.** The frame is cut into ``tile_size`` squares. For every tile the
  nearest and farthest slab coordinate within reach of the largest blur is
  found (two windowed reductions for all tiles at once); a slab is blurred
  on a tile only if that range meets it. Elsewhere its update is exactly
  nothing: its blurred share and coverage are zero wherever no pixel within
  its kernel's reach belongs to it (the kernels are truncated), so the
  colour, transmittance and fill stay as they were. On real NYU frames a
  tile sees 3-5 of the 14 occupied slabs, so the work falls by about 3x.
* **One compiled program.** Tiles are visited by one XLA while loop; each
  slab is one conditional on its tile; all shapes are static. Per tile the
  slab planes and accumulators (a few hundred kB) stay in the CPU's caches,
  where the whole-frame engines stream every slab through memory.
* **Threads.** XLA's CPU loops run on one thread; a batch is split into
  ``shards`` parts rendered concurrently (:func:`d3tf.optics.render_defocus`).

Only separable (Gaussian) PSFs without mask dilation, at most
``fused_render.MAX_FUSED_SLABS`` slabs and images of static height and width
take this path; :func:`supports` says which settings do.
"""

from __future__ import annotations

import math

import tensorflow as tf

from d3tf.optics import fused_render as fused_lib

#: Default side of a tile, pixels (measured fastest on 480x640 NYU frames).
DEFAULT_TILE_SIZE = 128


def supports(psf: str, grid, settings) -> bool:
  """Whether the tiled engine renders these settings (else the caller falls back)."""
  return fused_lib.supports(psf, grid, settings)


def _planar_tiles(tiles: tf.Tensor, batch: int, rows: int, columns: int) -> tf.Tensor:
  """``[B*rows*columns, C, th, tw]`` tiles -> ``[B, rows*th, columns*tw, C]`` images."""
  _, channels, tile_h, tile_w = tiles.shape
  tiles = tf.reshape(tiles, [batch, rows, columns, channels, tile_h, tile_w])
  tiles = tf.transpose(tiles, [0, 1, 4, 2, 5, 3])
  return tf.reshape(tiles, [batch, rows * tile_h, columns * tile_w, channels])


def active_slabs(padded_coordinate: tf.Tensor, tile_h: int, tile_w: int, pad: int, rows: int,
                 columns: int, margins, reach: float) -> tf.Tensor:
  """Which slabs can reach which tile.

  Args:
    padded_coordinate: [B, rows*tile_h + 2 pad, columns*tile_w + 2 pad] slab
      coordinates; negative values (holes, outside) belong to no slab.
    tile_h, tile_w: The tile size.
    pad: The padding of the frame (at least every margin).
    rows, columns: Tiles per column and row of the frame.
    margins: Per slab, the reach of its blur, pixels.
    reach: A pixel has a share in slab ``k`` if ``|coordinate - k| < reach``.

  Returns:
    bool [B * rows * columns, slabs]: whether any pixel within the slab's
    reach of the tile has a share in the slab.
  """
  columns_of_slabs = []
  for index, margin in enumerate(margins):
    cut = pad - margin
    window = padded_coordinate[:, cut:-cut or None, cut:-cut or None] if cut else padded_coordinate
    inside = tf.cast(tf.abs(window - float(index)) < reach, tf.float32)[..., tf.newaxis]
    hit = tf.nn.max_pool2d(inside, [tile_h + 2 * margin, tile_w + 2 * margin],
                           [tile_h, tile_w], "VALID")
    columns_of_slabs.append(tf.reshape(hit[:, :rows, :columns], [-1]))
  return tf.stack(columns_of_slabs, axis=1) > 0.5


def composite(radiance, padded_radiance, padded_coordinate, pad, grid, plans, settings,
              min_support, tile_size: int = DEFAULT_TILE_SIZE):
  """Near-to-far normalised (or plain) compositing of all slabs, tile by tile.

  The formulas of the fused engine's :func:`~d3tf.optics.fused_render.composite`,
  applied per tile, skipping the slabs that cannot reach the tile.

  Args:
    radiance: [B,H,W,3] colour (linear or sRGB values); B, H and W static.
    padded_radiance, padded_coordinate: The colour and slab coordinate
      ([B,H+2p,W+2p,1], rounded for hard grids, in no slab at holes), padded
      by ``pad`` pixels (reflected, or zeros and a coordinate in no slab).
    pad: The padding, at least every plan's margin.
    grid: The :class:`~d3tf.optics.layers.LayerGrid`.
    plans: One :class:`~d3tf.optics.fused_render.BlurPlan` per slab.
    settings: The :class:`~d3tf.optics.render.RenderOptions`.
    min_support: Blurred support below which a slab counts as absent.
    tile_size: Side of a tile, pixels (clipped to the image).

  Returns:
    [B,H,W,3] composite, in the colour space of ``radiance``.
  """
  batch, height, width = (int(v) for v in radiance.shape[:3])
  normalize = settings.normalize
  fill = normalize and settings.fill_hidden
  tile_h, tile_w = min(tile_size, height), min(tile_size, width)
  rows, columns = math.ceil(height / tile_h), math.ceil(width / tile_w)
  extra_h, extra_w = rows * tile_h - height, columns * tile_w - width
  # Planar [B, C, H, W]; frames grown to whole tiles with pixels of no slab.
  planes = tf.transpose(padded_radiance, [0, 3, 1, 2])
  planes = tf.pad(planes, [[0, 0], [0, 0], [0, extra_h], [0, extra_w]])
  slab_coordinate = tf.pad(padded_coordinate[..., 0], [[0, 0], [0, extra_h], [0, extra_w]],
                           constant_values=-8.0)
  active = active_slabs(slab_coordinate, tile_h, tile_w, pad, rows, columns,
                        [plan.margin for plan in plans], 1.0 if grid.soft else 0.5)
  region_h, region_w = tile_h + 2 * pad, tile_w + 2 * pad
  num_tiles = batch * rows * columns

  def present(value):
    return tf.where(value > min_support, value, 0.0)

  def crop(x, cut):
    return x[..., cut:-cut, cut:-cut] if cut else x

  def slab_update(index, plan, tile_radiance, tile_coordinate, state):
    accumulated, transmittance, filled, fill_weight = state
    cut = pad - plan.margin
    coordinate = crop(tile_coordinate, cut)
    colours = crop(tile_radiance, cut)
    offset = coordinate - float(index)
    if grid.soft:
      weight = tf.nn.relu(1.0 - tf.abs(offset))
      support = tf.clip_by_value(offset + 1.0, 0.0, 1.0)
    else:
      weight = tf.cast(tf.equal(offset, 0.0), tf.float32)
      support = tf.cast(offset >= 0.0, tf.float32)
    stack = [colours * weight, weight[tf.newaxis]]
    if normalize:
      stack.append(support[tf.newaxis])
    if fill:
      stack.append(colours * support)
    blurred = fused_lib.blur(tf.concat(stack, axis=0), plan, axes=(1, 2))[:, :tile_h, :tile_w]
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

  def render_tile(tile):
    frame = tile // (rows * columns)
    within = tile % (rows * columns)
    top, left = (within // columns) * tile_h, (within % columns) * tile_w
    tile_radiance = tf.slice(planes, tf.stack([frame, 0, top, left]),
                             [1, 3, region_h, region_w])[0]
    tile_coordinate = tf.slice(slab_coordinate, tf.stack([frame, top, left]),
                               [1, region_h, region_w])[0]
    state = (tf.zeros([3, tile_h, tile_w]), tf.ones([tile_h, tile_w]),
             tf.zeros([3, tile_h, tile_w]), tf.zeros([tile_h, tile_w]))
    for index, plan in enumerate(plans):
      state = tf.cond(
          active[tile, index],
          lambda i=index, p=plan, s=state: slab_update(i, p, tile_radiance, tile_coordinate, s),
          lambda s=state: s)
    accumulated, transmittance, filled, fill_weight = state
    if not normalize:
      return accumulated
    own = tile_radiance[:, pad:pad + tile_h, pad:pad + tile_w]
    coverage = 1.0 - transmittance
    renormalised = tf.where(coverage > min_support,
                            accumulated / tf.maximum(coverage, min_support), own)
    if not fill:
      return renormalised
    fill_colour = tf.math.divide_no_nan(filled, fill_weight)
    return tf.where(fill_weight > min_support, accumulated + transmittance * fill_colour,
                    renormalised)

  def body(tile, outputs):
    return tile + 1, outputs.write(tile, render_tile(tile))

  outputs = tf.TensorArray(tf.float32, size=num_tiles, element_shape=[3, tile_h, tile_w])
  _, outputs = tf.while_loop(lambda tile, _: tile < num_tiles, body, (0, outputs))
  image = _planar_tiles(outputs.stack(), batch, rows, columns)
  return image[:, :height, :width]
