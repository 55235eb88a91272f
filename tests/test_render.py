"""Tests of the layered defocus renderer (d3tf.optics.render_defocus)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from d3tf.optics import Camera
from d3tf.optics import RenderOptions
from d3tf.optics import render_defocus
from d3tf.optics import color
from d3tf.optics.reference.scipy_render import render_defocus_scipy

CAMERA = Camera.nyu(focus_distance_m=2.0)
ONE_LEVEL = 1.0 / 255.0


def _texture(height=64, width=64, seed=0, smoothing=1.0):
  """A random colour texture in [0, 1], smoothed like a natural image."""
  rng = np.random.default_rng(seed)
  image = ndimage.gaussian_filter(rng.random((height, width, 3)), (smoothing, smoothing, 0))
  image = (image - image.min()) / (image.max() - image.min())
  return image.astype(np.float32)


def _gaussian_reference(image, sigma, linear_light):
  """Gaussian blur with reflected borders, as the renderer's reflect padding."""
  x = color.srgb_to_linear(image.astype(np.float64)) if linear_light else image.astype(np.float64)
  out = np.stack([ndimage.gaussian_filter(x[..., c], sigma, mode="mirror") for c in range(3)], -1)
  return color.linear_to_srgb(out) if linear_light else out


def _plane(depth_m, height=64, width=64):
  return np.full((height, width), depth_m, np.float32)


@pytest.mark.parametrize("psf", ["gaussian", "disk"])
@pytest.mark.parametrize("mode", ["improved", "paper"])
def test_plane_at_focus_distance_is_unchanged(psf, mode):
  image = _texture()
  out = render_defocus(image, _plane(CAMERA.focus_distance_m), CAMERA, psf=psf, mode=mode)
  assert out.shape == image.shape and out.dtype == tf.float32
  np.testing.assert_allclose(out.numpy(), image, atol=ONE_LEVEL)


@pytest.mark.parametrize("depth_m", [0.5, 0.8, 1.3, 1.8, 2.3, 3.0, 6.0, 10.0])
@pytest.mark.parametrize("linear_light", [True, False])
def test_fronto_parallel_plane_equals_gaussian_blur_of_matching_sigma(depth_m, linear_light):
  """Equal within 2 grey levels at worst and 0.5 in RMS, on a pixel-scale texture.

  A plane between two slabs gets a blend of their two blurs (the renderer's
  documented approximation); at a slab's own depth the match is exact. Colours
  are compared in the space the blur works in (linear light or sRGB values).
  """
  image = _texture(80, 80)
  sigma = 0.3 * CAMERA.blur_diameter_px(depth_m)
  out = render_defocus(image, _plane(depth_m, 80, 80), CAMERA, linear_light=linear_light).numpy()
  expected = _gaussian_reference(image, sigma, linear_light)
  if linear_light:
    out, expected = color.srgb_to_linear(out.astype(np.float64)), color.srgb_to_linear(expected)
  margin = int(np.ceil(4 * sigma))
  interior = (slice(margin, -margin or None), slice(margin, -margin or None))
  error = np.abs(out - expected)[interior]
  assert error.max() < 2 * ONE_LEVEL
  assert np.sqrt(np.mean(error**2)) < 0.5 * ONE_LEVEL
  # Reflect padding makes the border match as well as the interior.
  assert np.abs(out - expected).max() < 2 * ONE_LEVEL


def test_plane_at_a_slab_depth_is_exactly_its_gaussian_blur():
  grid = RenderOptions.for_mode("improved").layer_grid(CAMERA)
  image = _texture(64, 64)
  for signed_blur in grid.signed_blur_px[[1, 4, -3]]:
    depth_m = float(CAMERA.depth_for_signed_blur(signed_blur))
    out = render_defocus(image, _plane(depth_m), CAMERA, linear_light=False).numpy()
    expected = _gaussian_reference(image, 0.3 * abs(signed_blur), linear_light=False)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def _blur_spread_px(depth_m, psf, camera=CAMERA):
  """Standard deviation in pixels of the rendered image of a bright point."""
  image = np.zeros((65, 65, 3), np.float32)
  image[32, 32] = 1.0
  out = render_defocus(image, _plane(depth_m, 65, 65), camera, psf=psf,
                       linear_light=False).numpy()[..., 0]
  coords = np.arange(65) - 32.0
  weights = out / out.sum()
  return float(np.sqrt((weights.sum(0) * coords**2).sum()))


@pytest.mark.parametrize("psf", ["gaussian", "disk"])
def test_blur_grows_monotonically_with_inverse_depth_distance_from_focus(psf):
  in_front = [1.9, 1.6, 1.3, 1.0, 0.8, 0.6]  # |1/d - 1/d_f| grows along each list.
  behind = [2.1, 2.6, 3.5, 5.0, 8.0]
  for depths in (in_front, behind):
    spreads = [_blur_spread_px(d, psf) for d in depths]
    assert np.all(np.diff(spreads) > 0), (depths, spreads)
  # Equal |1/d - 1/d_f| on both sides of the focal plane gives equal blur.
  near, far = 1.0 / (1 / 2.0 + 0.25), 1.0 / (1 / 2.0 - 0.25)
  assert _blur_spread_px(near, psf) == pytest.approx(_blur_spread_px(far, psf), rel=0.02)


def test_point_spread_matches_the_psf_size():
  sigma = 0.3 * CAMERA.blur_diameter_px(1.0)
  assert _blur_spread_px(1.0, "gaussian") == pytest.approx(sigma, rel=0.02)
  radius = CAMERA.blur_diameter_px(1.0) / 2
  assert _blur_spread_px(1.0, "disk") == pytest.approx(radius / 2, rel=0.05)  # disk: r/2.


def _step_scene(height=48, width=64):
  depth = np.full((height, width), 4.0, np.float32)
  depth[:, : width // 2] = 0.7
  depth[10:20, 40:50] = 1.2
  return depth


@pytest.mark.parametrize("psf", ["gaussian", "disk"])
def test_improved_mode_keeps_a_constant_image_constant_at_edges_and_borders(psf):
  """Normalised accumulation leaves no dark seams and reflect padding no dark borders."""
  image = np.full((48, 64, 3), 0.6, np.float32)
  depth = _step_scene()
  improved = render_defocus(image, depth, CAMERA, psf=psf).numpy()
  np.testing.assert_allclose(improved, 0.6, atol=ONE_LEVEL)
  paper = render_defocus(image, depth, CAMERA, psf=psf, mode="paper").numpy()
  assert paper[0].mean() < 0.6 - 20 * ONE_LEVEL  # zero padding darkens the border.


@pytest.mark.parametrize("bad_value", [0.0, 1e-30, 1e-6, np.nan, np.inf, -np.inf, -1.0])
@pytest.mark.parametrize("mode", ["improved", "paper"])
def test_holes_in_depth_never_produce_nan(bad_value, mode):
  image = _texture(48, 64)
  depth = _step_scene()
  depth[5:9, 5:60] = bad_value
  depth[30, 30] = bad_value
  out = render_defocus(image, depth, CAMERA, mode=mode).numpy()
  assert np.all(np.isfinite(out)) and out.min() >= 0 and out.max() <= 1


def test_holes_are_filled_from_neighbours_or_keep_their_colour():
  image = np.full((40, 40, 3), 0.3, np.float32)
  image[:, 20:] = 0.8
  depth = np.full((40, 40), 1.0, np.float32)
  depth[18:22, 5:9] = 0.0  # small hole inside the dark half: filled with dark.
  out = render_defocus(image, depth, CAMERA).numpy()
  np.testing.assert_allclose(out[18:22, 5:9], 0.3, atol=ONE_LEVEL)
  everything_missing = np.full((40, 40), np.nan, np.float32)
  np.testing.assert_allclose(render_defocus(image, everything_missing, CAMERA).numpy(), image,
                             atol=1e-6)


def test_single_image_and_batch_agree():
  images = np.stack([_texture(48, 64, seed=s) for s in range(3)])
  depths = np.stack([_step_scene(), _plane(1.0, 48, 64), _plane(6.0, 48, 64)])
  batch = render_defocus(images, depths[..., None], CAMERA).numpy()
  for i in range(3):
    single = render_defocus(images[i], depths[i], CAMERA).numpy()
    np.testing.assert_allclose(single, batch[i], atol=1e-6)


@pytest.mark.parametrize("mode", ["improved", "paper"])
def test_graph_mode_and_dataset_map_agree_with_eager(mode):
  image, depth = _texture(48, 64), _step_scene()
  eager = render_defocus(image, depth, CAMERA, mode=mode).numpy()
  graph = tf.function(lambda i, d: render_defocus(i, d, CAMERA, mode=mode))
  np.testing.assert_allclose(graph(image, depth).numpy(), eager, atol=1e-6)
  dataset = tf.data.Dataset.from_tensors((image, depth)).map(
      lambda i, d: render_defocus(i, d, CAMERA, mode=mode))
  np.testing.assert_allclose(next(iter(dataset)).numpy(), eager, atol=1e-6)


def test_unknown_static_shapes_work_in_graph_mode():
  spec = (tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, None, None],
                                                                          tf.float32))
  graph = tf.function(lambda i, d: render_defocus(i, d, CAMERA, psf="disk"), input_signature=spec)
  image, depth = _texture(48, 64)[None], _step_scene()[None]
  np.testing.assert_allclose(graph(image, depth).numpy(),
                             render_defocus(image, depth, CAMERA, psf="disk").numpy(), atol=1e-5)


@pytest.mark.parametrize("psf", ["gaussian", "disk"])
@pytest.mark.parametrize("mode", ["improved", "paper"])
def test_tensorflow_renderer_matches_the_scipy_reference(psf, mode):
  rng = np.random.default_rng(3)
  images = np.stack([_texture(40, 56, seed=s) for s in range(2)])
  depths = ndimage.gaussian_filter(rng.random((2, 40, 56)), (0, 6, 6))
  depths = (0.5 + 9.5 * (depths - depths.min()) / np.ptp(depths)).astype(np.float32)
  depths[0, 3:7, 3:20] = 0.0
  tf_out = render_defocus(images, depths, CAMERA, psf=psf, mode=mode).numpy()
  scipy_out = render_defocus_scipy(images, depths, CAMERA, psf=psf, mode=mode)
  np.testing.assert_allclose(tf_out, scipy_out, atol=2e-4)


def test_linear_light_brightens_the_middle_of_a_blurred_edge():
  image = np.zeros((32, 64, 3), np.float32)
  image[:, 32:] = 1.0
  depth = _plane(0.8, 32, 64)
  linear = render_defocus(image, depth, CAMERA).numpy()[16, 31:33, 0].mean()
  srgb = render_defocus(image, depth, CAMERA, linear_light=False).numpy()[16, 31:33, 0].mean()
  assert srgb == pytest.approx(0.5, abs=0.02)
  assert linear == pytest.approx(color.linear_to_srgb(np.float64(0.5)), abs=0.02)  # ~0.735


def test_sensor_noise_is_reproducible_for_a_seed_and_has_the_asked_variance():
  """Noise is added in linear light (where photons add), so it is measured there."""
  image = np.full((2, 64, 64, 3), 0.5, np.float32)
  depth = np.full((2, 64, 64), 2.0, np.float32)
  signal = color.srgb_to_linear(np.float64(0.5))
  first = render_defocus(image, depth, CAMERA, seed=7, noise_read_std=0.02).numpy()
  again = render_defocus(image, depth, CAMERA, seed=7, noise_read_std=0.02).numpy()
  other = render_defocus(image, depth, CAMERA, seed=8, noise_read_std=0.02).numpy()
  np.testing.assert_array_equal(first, again)
  assert np.abs(first - other).max() > 0.01
  assert np.std(color.srgb_to_linear(first.astype(np.float64)) - signal) == pytest.approx(
      0.02, rel=0.05)
  shot = render_defocus(image, depth, CAMERA, seed=1, noise_shot_gain=1e-3).numpy()
  assert np.var(color.srgb_to_linear(shot.astype(np.float64)) - signal) == pytest.approx(
      1e-3 * signal, rel=0.1)  # variance = gain * signal.


def test_output_bits_round_the_render_to_a_cameras_levels():
  depth = np.linspace(0.8, 6.0, 48, dtype=np.float32)[None, :].repeat(32, 0)
  image = _texture(32, 48, seed=4)
  smooth = render_defocus(image, depth, CAMERA).numpy()
  stored = render_defocus(image, depth, CAMERA, output_bits=8).numpy()
  levels = stored * 255.0
  np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # On the 8-bit grid...
  assert np.abs(stored - smooth).max() <= 0.5 * ONE_LEVEL + 1e-6  # ...the nearest level.
  assert np.mean(np.abs(smooth * 255.0 - np.round(smooth * 255.0)) > 0.01) > 0.5  # Float before.
  coarse = render_defocus(image, depth, CAMERA, output_bits=2).numpy()
  assert set(np.unique(np.round(coarse * 3.0, 4))) <= {0.0, 1.0, 2.0, 3.0}


def test_blur_spaced_layers_need_fewer_slabs_than_the_papers():
  improved, paper = (RenderOptions.for_mode(m).layer_grid(CAMERA) for m in ("improved", "paper"))
  assert improved.num_layers < 30 < 200 < paper.num_layers
  blur = np.abs(improved.signed_blur_px)
  steps = np.abs(np.diff(improved.signed_blur_px))
  assert np.all(steps <= 0.5 + 0.25 * np.maximum(blur[1:], blur[:-1]) + 1e-9)  # bounded error.
  assert 0.0 in improved.signed_blur_px  # one slab lies exactly in focus.


@pytest.mark.parametrize("kwargs, message", [
    (dict(psf="box"), "psf"),
    (dict(mode="fancy"), "mode"),
    (dict(dilation=3), "Unknown render options"),
    (dict(border="wrap"), "border"),
    (dict(depth_range_m=(5.0, 1.0)), "depth_range_m"),
    (dict(noise_read_std=-0.1), "noise"),
    (dict(output_bits=17), r"output_bits must be an integer in \[0, 16\].*got 17"),
    (dict(output_bits=7.5), "output_bits.*got 7.5"),
])
def test_bad_options_are_rejected_with_the_value(kwargs, message):
  with pytest.raises(ValueError, match=message):
    render_defocus(_texture(16, 16), _plane(1.0, 16, 16), CAMERA, **kwargs)


def test_bad_shapes_are_rejected():
  with pytest.raises(ValueError, match="differ"):
    render_defocus(_texture(16, 16), _plane(1.0, 16, 20), CAMERA)
  with pytest.raises(ValueError, match="3 channels"):
    render_defocus(np.zeros((1, 16, 16, 4), np.float32), _plane(1.0, 16, 16)[None], CAMERA)
  with pytest.raises(ValueError, match="Camera"):
    render_defocus(_texture(16, 16), _plane(1.0, 16, 16), camera={"f_number": 2.8})
