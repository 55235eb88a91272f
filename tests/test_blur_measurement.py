"""Tests of d3tf.optics.blur_measurement: a lens's blur measured from two apertures."""

import math

import numpy as np
import pytest
from scipy import ndimage

from d3tf.optics import blur_measurement
from d3tf.optics.camera import Camera


def _texture(shape=(160, 200), seed=0):
  """Band-limited noise in [0, 1]: texture at every scale the tests blur."""
  rng = np.random.default_rng(seed)
  noise = ndimage.gaussian_filter(rng.random(shape), 0.7)
  return (noise - noise.min()) / (noise.max() - noise.min())


def test_register_translation_recovers_a_sub_pixel_shift():
  reference = _texture()
  moving = blur_measurement.shift_image(reference, (-1.3, 2.6))
  dy, dx = blur_measurement.register_translation(reference, moving)
  assert dy == pytest.approx(1.3, abs=0.15)
  assert dx == pytest.approx(-2.6, abs=0.15)
  aligned = blur_measurement.shift_image(moving, (dy, dx))
  inner = (slice(8, -8), slice(8, -8))
  assert np.abs(aligned - reference)[inner].mean() < 0.2 * np.abs(moving - reference)[inner].mean()


def test_register_translation_refuses_mismatched_shapes():
  with pytest.raises(ValueError, match=r"\(10, 12\) and \(10, 13\)"):
    blur_measurement.register_translation(np.zeros((10, 12)), np.zeros((10, 13)))


@pytest.mark.parametrize("sigma", [0.0, 0.7, 1.6])
def test_relative_blur_measures_a_uniform_gaussian_blur(sigma):
  sharp = _texture()
  blurred = ndimage.gaussian_filter(sharp, sigma) if sigma else sharp.copy()
  # A gain and an offset (another exposure) must not change the measured blur.
  blurred = 0.8 * blurred + 0.05
  patches = blur_measurement.relative_blur(sharp, blurred, np.full(sharp.shape, 2.0))
  assert len(patches.blur_px) == len(patches.depth_m) > 50
  assert np.median(patches.blur_px) == pytest.approx(sigma, abs=0.06)
  assert np.all(patches.fit_r2 > 0.95)
  assert not patches.at_limit.any()
  np.testing.assert_allclose(patches.depth_m, 2.0)
  np.testing.assert_allclose(patches.depth_spread, 0.0)


def test_relative_blur_flags_blur_beyond_the_candidates():
  sharp = _texture()
  patches = blur_measurement.relative_blur(sharp, ndimage.gaussian_filter(sharp, 3.0),
                                           np.ones(sharp.shape), sigmas_px=(0.0, 0.5, 1.0))
  assert patches.at_limit.all()


def test_relative_blur_refuses_bad_arguments():
  image = np.zeros((64, 64))
  with pytest.raises(ValueError, match=r"\(64, 64\), \(64, 64\) and \(64, 60\)"):
    blur_measurement.relative_blur(image, image, np.zeros((64, 60)))
  with pytest.raises(ValueError, match="sigmas_px must increase from 0"):
    blur_measurement.relative_blur(image, image, image, sigmas_px=(0.5, 1.0, 2.0))
  with pytest.raises(ValueError, match="holds no 24-pixel patch"):
    blur_measurement.relative_blur(np.zeros((40, 40)), np.zeros((40, 40)), np.zeros((40, 40)))


def test_relative_sigma_factor():
  assert blur_measurement.relative_sigma_factor(2.8, 8.0, 0.3) == pytest.approx(
      0.3 * math.sqrt(1 - (2.8 / 8) ** 2))
  with pytest.raises(ValueError, match=r"narrow aperture's f-number \(2.8\) must exceed"):
    blur_measurement.relative_sigma_factor(8.0, 2.8)


def test_a_view_with_known_depth_gives_back_its_camera():
  """Stripes at several depths, each blurred as a camera would: the fit recovers the camera."""
  camera = Camera.dslr_d200_35mm(f_number=2.8, focus_distance_m=1.6)
  factor = blur_measurement.relative_sigma_factor(2.8, 8.0)
  depths = [0.8, 1.1, 2.2, 3.0, 4.5, 7.0]
  sharp = _texture((96, 48 * len(depths)), seed=1)
  blurred = np.empty_like(sharp)
  depth = np.empty_like(sharp)
  for i, d in enumerate(depths):
    columns = slice(48 * i, 48 * (i + 1))
    sigma = factor * float(camera.blur_diameter_px(d))
    blurred[:, columns] = ndimage.gaussian_filter(sharp, sigma)[:, columns]
    depth[:, columns] = d
  patches = blur_measurement.relative_blur(sharp, blurred, depth, stride_px=8, margin_px=4)
  pure = (patches.depth_spread == 0) & ~patches.at_limit
  assert pure.sum() > 20
  fit = blur_measurement.fit_thin_lens(patches.depth_m[pure], patches.blur_px[pure], factor)
  assert fit.focus_distance_m == pytest.approx(1.6, rel=0.05)
  assert fit.blur_scale_px == pytest.approx(camera.blur_scale_px, rel=0.05)
  assert fit.floor_sigma_px < 0.15
  assert fit.blur_diameter_px(3.0) == pytest.approx(float(camera.blur_diameter_px(3.0)), rel=0.08)


def test_fit_thin_lens_recovers_focus_scale_and_floor():
  rng = np.random.default_rng(0)
  depth = rng.uniform(0.7, 6.0, 2000)
  factor = blur_measurement.relative_sigma_factor(2.8, 8.0)
  sigma = np.sqrt((factor * 12.0 * np.abs(1 / 1.6 - 1 / depth)) ** 2 + 0.4 ** 2)
  fit = blur_measurement.fit_thin_lens(depth, sigma + rng.normal(0, 0.05, depth.shape), factor)
  assert fit.focus_distance_m == pytest.approx(1.6, rel=0.03)
  assert fit.blur_scale_px == pytest.approx(12.0, rel=0.03)
  assert fit.floor_sigma_px == pytest.approx(0.4, abs=0.05)
  assert fit.rms_sigma_px == pytest.approx(0.05, abs=0.02)
  assert fit.patches == 2000


def test_fit_thin_lens_refuses_bad_measurements():
  with pytest.raises(ValueError, match="at least 3"):
    blur_measurement.fit_thin_lens([1.0, 2.0], [0.1, 0.2], 0.28)
  with pytest.raises(ValueError, match="positive and finite, got min -1.0"):
    blur_measurement.fit_thin_lens([1.0, 2.0, -1.0], [0.1, 0.2, 0.3], 0.28)


def test_a_disk_blur_is_measured_by_the_disk_kernel_and_fits_it_better():
  from d3tf.optics import psf as psf_lib  # pylint: disable=g-import-not-at-top
  sharp = _texture()
  blurred = ndimage.convolve(sharp, psf_lib.disk_kernel_2d(5.0), mode="reflect")
  depth = np.ones(sharp.shape)
  disk = blur_measurement.relative_blur(sharp, blurred, depth, kernel="disk",
                                        sigmas_px=np.arange(0.0, 10.01, 0.5))
  gaussian = blur_measurement.relative_blur(sharp, blurred, depth)
  assert np.median(disk.blur_px) == pytest.approx(5.0, abs=0.25)
  assert np.median(1 - disk.fit_r2) < 0.5 * np.median(1 - gaussian.fit_r2)
  with pytest.raises(ValueError, match="kernel must be one of"):
    blur_measurement.relative_blur(sharp, blurred, depth, kernel="box")
