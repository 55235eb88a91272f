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


#: Side of the blocks whose coordinate ranges decide which slabs reach a tile.
_BLOCK = 8


def active_slabs(padded_coordinate: tf.Tensor, tile_h: int, tile_w: int, pad: int, rows: int,
                 columns: int, margins, reach: float, block: int = _BLOCK) -> tf.Tensor:
  """Which slabs can reach which tile (conservatively, at the resolution of blocks).

  The nearest and farthest valid coordinate of every ``block`` x ``block``
  block is found once (two reductions over the frame); a slab reaches a tile
  if a block that overlaps the tile grown by the slab's margin holds a
  coordinate range that meets the slab.

  Args:
    padded_coordinate: [B, rows*tile_h + 2 pad, columns*tile_w + 2 pad] slab
      coordinates; negative values (holes, outside) belong to no slab.
    tile_h, tile_w: The tile size.
    pad: The padding of the frame (at least every margin).
    rows, columns: Tiles per column and row of the frame.
    margins: Per slab, the reach of its blur, pixels.
    reach: A pixel has a share in slab ``k`` if ``|coordinate - k| < reach``.
    block: Side of the blocks, pixels.

  Returns:
    bool [B * rows * columns, slabs]: True where a pixel within the slab's
    reach of the tile may have a share in the slab (never False where one has).
  """
  height, width = padded_coordinate.shape[1], padded_coordinate.shape[2]
  # Blocks on a grid anchored at the first tile's corner (padded position ``pad``).
  before = -(-pad // block) * block - pad  # pixels of no slab before the padded frame.
  blocks_h = -(-(before + height) // block)
  blocks_w = -(-(before + width) // block)
  x = tf.pad(padded_coordinate, [[0, 0], [before, blocks_h * block - before - height],
                                 [before, blocks_w * block - before - width]],
             constant_values=-8.0)[..., tf.newaxis]
  valid = x > -1.0
  high = tf.nn.max_pool2d(tf.where(valid, x, -1e9), block, block, "VALID")
  low = -tf.nn.max_pool2d(tf.where(valid, -x, -1e9), block, block, "VALID")
  offset = (before + pad) // block  # the block of the first tile's first pixel.
  tile_blocks_h, tile_blocks_w = -(-tile_h // block), -(-tile_w // block)
  hits = []
  for index, margin in enumerate(margins):
    inside = tf.cast((high > index - reach) & (low < index + reach), tf.float32)
    grow = -(-margin // block)  # blocks that the margin reaches into.
    start = offset - grow
    window = inside[:, start:, start:]
    if tile_h % block == 0 and tile_w % block == 0:
      hit = tf.nn.max_pool2d(window, [tile_blocks_h + 2 * grow, tile_blocks_w + 2 * grow],
                             [tile_h // block, tile_w // block], "VALID")[:, :rows, :columns]
    else:  # tiles not on the block grid: one window per tile.
      hit = tf.stack([tf.stack([
          tf.reduce_max(window[:, (r * tile_h) // block:(r * tile_h + tile_h - 1) // block +
                               2 * grow + 1,
                               (c * tile_w) // block:(c * tile_w + tile_w - 1) // block +
                               2 * grow + 1], axis=[1, 2, 3])
          for c in range(columns)], axis=1) for r in range(rows)], axis=1)[..., tf.newaxis]
    hits.append(tf.reshape(hit, [-1]))
  return tf.stack(hits, axis=1) > 0.5


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

  def crop(x, cut):
    return x[..., cut:-cut, cut:-cut] if cut else x

  def slab_update(index, plan, tile_radiance, tile_coordinate, state):
    cut = pad - plan.margin
    stack = fused_lib.slab_planes(crop(tile_radiance, cut), crop(tile_coordinate, cut), index,
                                  grid.soft, normalize, fill)
    blurred = fused_lib.blur(stack, plan, axes=(1, 2))[:, :tile_h, :tile_w]
    return fused_lib.composite_slab(blurred, state, normalize, fill, min_support)

  # Every tile's region (the tile and the largest margin), cut out once with
  # static slices: [tiles, 4, region_h, region_w], colour then coordinate. In the
  # loop a tile is one dynamic index on the leading axis.
  inputs = tf.concat([planes, slab_coordinate[:, tf.newaxis]], axis=1)
  regions = tf.reshape(tf.stack([
      inputs[:, :, r * tile_h:r * tile_h + region_h, c * tile_w:c * tile_w + region_w]
      for r in range(rows) for c in range(columns)], axis=1), [num_tiles, 4, region_h, region_w])

  def render_tile(tile):
    region = tf.gather(regions, tile)
    tile_radiance, tile_coordinate = region[:3], region[3]
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
    return fused_lib.finish(accumulated, transmittance, filled if fill else None,
                            fill_weight if fill else None, own, min_support)

  def body(tile, outputs):
    return tile + 1, outputs.write(tile, render_tile(tile))

  outputs = tf.TensorArray(tf.float32, size=num_tiles, element_shape=[3, tile_h, tile_w])
  _, outputs = tf.while_loop(lambda tile, _: tile < num_tiles, body, (0, outputs))
  image = _planar_tiles(outputs.stack(), batch, rows, columns)
  return image[:, :height, :width]
