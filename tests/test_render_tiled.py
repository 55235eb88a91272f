"""Tests of the tiled render engine (d3tf.optics.tiled_render) against the reference engine.

Scenes span a narrow depth range (few slabs), so each XLA program compiles in seconds.
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from d3tf.optics import Camera
from d3tf.optics import RenderOptions
from d3tf.optics import color
from d3tf.optics import psf as psf_lib
from d3tf.optics import render_defocus
from d3tf.optics import tiled_render

CAMERA = Camera.nyu(focus_distance_m=2.0)
#: A narrow range: 5 slabs, blur diameters -1.3 to 2.2 px, and tiles of 16 px.
NARROW = dict(depth_range_m=(1.5, 3.0), tile_size=16)
#: One image size for all (each size is an XLA compilation); not a whole number of tiles.
HEIGHT, WIDTH = 42, 58
#: Tiled vs reference: the same formulas; blurs as shifted slices vs convolutions.
MAX_DIFFERENCE = 2e-5


def _texture(height, width, seed=0):
  rng = np.random.default_rng(seed)
  image = ndimage.gaussian_filter(rng.random((height, width, 3)), (0.7, 0.7, 0))
  return ((image - image.min()) / np.ptp(image)).astype(np.float32)


def _step(near_m, far_m, height=HEIGHT, width=WIDTH, holes=False):
  """A card at ``near_m`` (left part) in front of ``far_m``, optionally with holes."""
  depth = np.full((height, width), far_m, np.float32)
  depth[:, : width // 3] = near_m
  if holes:
    depth[5:9, 10:30] = 0.0
    depth[30:33, 40:44] = np.nan
  return depth


def _render(image, depth, engine, **options):
  return render_defocus(image, depth, CAMERA, engine=engine, **{**NARROW, **options}).numpy()


@pytest.mark.parametrize("near_m, far_m", [(1.55, 2.9), (2.0, 1.6)],
                         ids=["near_card_both_blurred", "focused_card_over_near"])
def test_tiled_engine_matches_the_reference_at_a_step_edge(near_m, far_m):
  image, depth = _texture(HEIGHT, WIDTH), _step(near_m, far_m, holes=True)
  tiled = _render(image, depth, "tiled")
  reference = _render(image, depth, "reference")
  assert tiled.shape == image.shape and tiled.dtype == np.float32
  np.testing.assert_allclose(tiled, reference, atol=MAX_DIFFERENCE)
  assert np.abs(tiled - image).max() > 0.02  # something was blurred.


def test_a_constant_plane_at_a_slab_is_a_plain_blur_with_that_slab_psf():
  grid = RenderOptions.for_mode(depth_range_m=NARROW["depth_range_m"]).layer_grid(CAMERA)
  blur_px = float(grid.signed_blur_px[-1])  # the farthest slab: 2.2 px.
  depth = np.full((HEIGHT, WIDTH), CAMERA.depth_for_signed_blur(blur_px), np.float32)
  image = _texture(HEIGHT, WIDTH, seed=1)
  tiled = _render(image, depth, "tiled")
  kernel = psf_lib.gaussian_kernel_1d(psf_lib.gaussian_sigma_px(blur_px))
  linear = color.srgb_to_linear(tf.constant(image)).numpy()
  blurred = ndimage.correlate1d(ndimage.correlate1d(linear, kernel, axis=0, mode="mirror"),
                                kernel, axis=1, mode="mirror")
  expected = color.linear_to_srgb(tf.constant(blurred)).numpy()
  np.testing.assert_allclose(tiled, expected, atol=2e-5)


def test_the_in_focus_plane_is_unchanged():
  image = _texture(HEIGHT, WIDTH, seed=2)
  depth = np.full((HEIGHT, WIDTH), CAMERA.focus_distance_m, np.float32)
  np.testing.assert_allclose(_render(image, depth, "tiled"), image, atol=2e-6)


def test_unbatched_float64():
  image, depth = _texture(HEIGHT, WIDTH, seed=3).astype(np.float64), _step(1.6, 2.8)
  tiled = render_defocus(image, depth, CAMERA, engine="tiled", **NARROW)
  assert tiled.shape == (HEIGHT, WIDTH, 3) and tiled.dtype == tf.float64
  reference = _render(image, depth, "reference")
  np.testing.assert_allclose(tiled.numpy(), reference, atol=MAX_DIFFERENCE)


def test_shards_render_parts_of_the_batch_concurrently_with_the_same_result():
  images = np.stack([_texture(HEIGHT, WIDTH, seed=s) for s in range(2)])
  depths = np.stack([_step(1.6, 2.9), _step(2.9, 1.55)])
  one = _render(images, depths, "tiled", shards=1)
  two = _render(images, depths, "tiled", shards=2)
  np.testing.assert_array_equal(one, two)


def test_tiled_engine_compiles_inside_a_jit_function():
  image, depth = _texture(HEIGHT, WIDTH, seed=4), _step(1.55, 2.9)
  eager = _render(image, depth, "tiled")
  compiled = tf.function(lambda i, d: render_defocus(i, d, CAMERA, engine="tiled", **NARROW),
                         jit_compile=True)
  np.testing.assert_allclose(compiled(image, depth).numpy(), eager, atol=1e-6)


def test_active_slabs_sees_only_the_slabs_within_reach_of_each_tile():
  # One frame, two 4x4 tiles side by side, padded by 2: slab 0 on the left, slab 3 on the right.
  coordinate = np.full((1, 8, 12), -8.0, np.float32)
  coordinate[:, 2:6, 2:6] = 0.0
  coordinate[:, 2:6, 6:10] = 3.0
  coordinate[:, 2:6, 5] = 1.5  # a pixel column between slabs 1 and 2, next to the right tile.
  active = tiled_render.active_slabs(tf.constant(coordinate), 4, 4, 2, 1, 2, [1, 0, 1, 0],
                                     reach=1.0, block=1).numpy()
  # Slab 1 (no blur) only where its pixels are; slab 2 reaches one pixel across the tile border.
  np.testing.assert_array_equal(active, [[True, True, True, False], [False, False, True, True]])


@pytest.mark.parametrize("tile", [16, 12])
def test_active_slabs_on_blocks_never_misses_a_slab(tile):
  rng = np.random.default_rng(tile)
  pad, rows, columns, margins = 10, 2, 3, [10, 3, 0, 7, 1]
  shape = (2, rows * tile + 2 * pad, columns * tile + 2 * pad)
  coordinate = np.clip(np.cumsum(rng.normal(0, 0.2, shape), axis=2), -0.5, 4.0)
  coordinate[rng.random(shape) < 0.05] = -4.0  # holes.
  coordinate = coordinate.astype(np.float32)
  active = tiled_render.active_slabs(tf.constant(coordinate), tile, tile, pad, rows, columns,
                                     margins, reach=1.0).numpy()
  exact = np.zeros_like(active)
  for i in range(active.shape[0]):
    frame, r, c = i // (rows * columns), (i // columns) % rows, i % columns
    for k, m in enumerate(margins):
      window = coordinate[frame, pad + r * tile - m:pad + (r + 1) * tile + m,
                          pad + c * tile - m:pad + (c + 1) * tile + m]
      exact[i, k] = np.any(np.abs(window - k) < 1.0)
  assert np.all(active[exact]), "a slab within reach of a tile was skipped"
  assert active.sum() < active.size  # and some were skipped.


def test_settings_the_tiled_engine_does_not_cover_fall_back_to_the_reference():
  image, depth = _texture(HEIGHT, WIDTH, seed=5), _step(1.55, 2.9)
  for options in (dict(psf="disk"), dict(mode="paper")):
    np.testing.assert_array_equal(_render(image, depth, "tiled", **options),
                                  _render(image, depth, "reference", **options))


@pytest.mark.parametrize("kwargs, message", [(dict(tile_size=0), "tile_size"),
                                             (dict(shards=1.5), "shards"),
                                             (dict(engine="tiles"), "engine")])
def test_bad_tiled_options_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    RenderOptions.for_mode(**kwargs)


def test_the_experiment_config_selects_the_engine():
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  assert "engine" not in config_lib.RenderConfig().render_options()
  options = config_lib.RenderConfig(engine="tiled").render_options()
  assert options == {"mode": "improved", "engine": "tiled"}
  assert RenderOptions.for_mode(**options).engine == "tiled"
  config = config_lib.ExperimentConfig()
  config.render.engine = "tiles"
  with pytest.raises(config_lib.ConfigError, match="render.engine"):
    config.validate()
