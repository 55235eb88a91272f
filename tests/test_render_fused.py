"""Tests of the fused render engine (d3tf.optics.fused_render) against the reference engine."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from d3tf.optics import Camera
from d3tf.optics import RenderOptions
from d3tf.optics import fused_render
from d3tf.optics import psf as psf_lib
from d3tf.optics import render_defocus

CAMERA = Camera.nyu(focus_distance_m=2.0)
#: Fused vs reference: the pyramid's error on sharp-edged scenes (measured
#: 6e-4 at most on a 1-px checkerboard); directly blurred slabs agree to 1e-6.
MAX_DIFFERENCE = 2e-3
MEAN_DIFFERENCE = 1e-4


def _texture(height, width, seed=0):
  rng = np.random.default_rng(seed)
  image = ndimage.gaussian_filter(rng.random((height, width, 3)), (0.7, 0.7, 0))
  return ((image - image.min()) / np.ptp(image)).astype(np.float32)


def _scene(near_m, far_m, height=48, width=64, holes=False):
  """A card at ``near_m`` (left half) over a background at ``far_m``, optionally with holes."""
  depth = np.full((height, width), far_m, np.float32)
  depth[:, : width // 2] = near_m
  if holes:
    depth[5:9, 10:30] = 0.0
    depth[30:33, 40:44] = np.nan
  return depth


def _both(image, depth, **options):
  fused = render_defocus(image, depth, CAMERA, engine="fused", **options).numpy()
  reference = render_defocus(image, depth, CAMERA, engine="reference", **options).numpy()
  return fused, reference


@pytest.mark.parametrize("near_m, far_m", [(0.6, 1.9), (1.2, 8.0), (2.0, 0.55)],
                         ids=["near_blurred_card", "far_blurred_background", "behind_focus"])
@pytest.mark.parametrize("holes", [False, True], ids=["dense", "holes"])
def test_fused_engine_matches_the_reference_engine(near_m, far_m, holes):
  fused, reference = _both(_texture(48, 64), _scene(near_m, far_m, holes=holes))
  difference = np.abs(fused - reference)
  assert np.isfinite(fused).all()
  assert difference.max() <= MAX_DIFFERENCE, difference.max()
  assert difference.mean() <= MEAN_DIFFERENCE, difference.mean()


@pytest.mark.parametrize("options", [dict(fill_hidden=False), dict(border="zero"),
                                     dict(linear_light=False), dict(output_bits=8)])
def test_fused_engine_matches_the_reference_with_other_options(options):
  fused, reference = _both(_texture(40, 48, seed=1), _scene(0.7, 6.0, 40, 48), **options)
  atol = 1.0 / 255.0 + 1e-6 if options.get("output_bits") else MAX_DIFFERENCE
  np.testing.assert_allclose(fused, reference, atol=atol)


def test_without_the_pyramid_the_engines_agree_to_rounding():
  fused, reference = _both(_texture(40, 48, seed=2), _scene(0.6, 5.0, 40, 48, holes=True),
                           pyramid_min_sigma=0.0)
  np.testing.assert_allclose(fused, reference, atol=2e-5)


def test_settings_the_fused_engine_does_not_cover_fall_back_to_the_reference():
  image, depth = _texture(32, 40, seed=3), _scene(0.8, 4.0, 32, 40)
  for options in (dict(psf="disk"), dict(mode="paper"), dict(dilation_px=2)):
    fused, reference = _both(image, depth, **options)
    np.testing.assert_array_equal(fused, reference)


@pytest.mark.parametrize("sigma", [2.6, 3.8, 5.2, 6.7])
def test_pyramid_blur_is_close_to_the_direct_gaussian(sigma):
  plan = fused_render.plan_gaussian(sigma, 1.0)
  assert plan.level >= 1
  # The pyramid's variance plus the residual's is the target's.
  taps = plan.taps
  x = np.arange(-(taps.size // 2), taps.size // 2 + 1)
  residual_variance = float((taps * x**2).sum())
  total = fused_render.pyramid_variance(plan.level) + 4**plan.level * residual_variance
  assert total == pytest.approx(sigma**2, rel=2e-3)
  # A sharp step and noise, blurred both ways (reflected borders, as the renderer).
  rng = np.random.default_rng(0)
  image = (rng.random((64, 80)) > 0.5).astype(np.float32)
  image[:, 40:] = 1.0
  margin = plan.margin
  padded = np.pad(image, margin, mode="reflect")[None, :, :, None]
  blurred = fused_render.blur(tf.constant(padded), plan).numpy()[0, :64, :80, 0]
  kernel = psf_lib.gaussian_kernel_1d(sigma)
  direct = ndimage.correlate1d(ndimage.correlate1d(image, kernel, axis=0, mode="mirror"),
                               kernel, axis=1, mode="mirror")
  assert np.abs(blurred - direct).max() < 3e-3
  assert np.abs(blurred - direct).mean() < 3e-4


def test_small_blurs_are_not_put_on_the_pyramid():
  assert fused_render.plan_gaussian(2.0, 1.0).level == 0
  assert fused_render.plan_gaussian(6.7, 1.0).level == 2
  assert fused_render.plan_gaussian(6.7, 0.0).level == 0


def test_fused_engine_compiles_with_xla_inside_a_jit_function_and_matches_eager():
  image, depth = _texture(48, 64, seed=4), _scene(0.6, 3.0, holes=True)
  eager = render_defocus(image, depth, CAMERA, engine="fused").numpy()
  compiled = tf.function(lambda i, d: render_defocus(i, d, CAMERA, engine="fused"), jit_compile=True)
  np.testing.assert_allclose(compiled(image, depth).numpy(), eager, atol=1e-6)
  op_by_op = render_defocus(image, depth, CAMERA, engine="fused", jit_compile=False).numpy()
  np.testing.assert_allclose(op_by_op, eager, atol=1e-5)


def test_fused_engine_in_a_dataset_map_with_unknown_batch_size():
  images = np.stack([_texture(48, 64, seed=s) for s in range(3)])
  depths = np.stack([_scene(0.6, 3.0), _scene(1.0, 9.0), _scene(2.5, 0.7, holes=True)])
  dataset = tf.data.Dataset.from_tensor_slices((images, depths)).batch(2)
  assert dataset.element_spec[0].shape[0] is None
  rendered = np.concatenate([batch.numpy() for batch in dataset.map(
      lambda i, d: render_defocus(i, d, CAMERA, engine="fused"))])
  np.testing.assert_allclose(rendered, render_defocus(images, depths, CAMERA, engine="fused").numpy(),
                             atol=1e-6)


def test_noise_is_reproducible_with_the_fused_engine():
  image, depth = _texture(32, 40, seed=5), _scene(0.8, 4.0, 32, 40)
  first = render_defocus(image, depth, CAMERA, engine="fused", seed=3, noise_read_std=0.02).numpy()
  again = render_defocus(image, depth, CAMERA, engine="fused", seed=3, noise_read_std=0.02).numpy()
  other = render_defocus(image, depth, CAMERA, engine="fused", seed=4, noise_read_std=0.02).numpy()
  np.testing.assert_array_equal(first, again)
  assert np.abs(first - other).mean() > 1e-3


@pytest.mark.parametrize("kwargs, message", [
    (dict(engine="fast"), "engine must be one of"),
    (dict(pyramid_min_sigma=-1.0), "pyramid_min_sigma must be >= 0"),
])
def test_bad_engine_options_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match=message):
    RenderOptions.for_mode(**kwargs)
