"""Tests of the thin-lens camera model and the PSF kernels."""

import math

import numpy as np
import pytest
import tensorflow as tf

from d3tf.optics import Camera
from d3tf.optics import psf


@pytest.mark.parametrize("depth_m, expected_px", [(0.5, 21.7), (1.0, 7.2), (2.0, 0.0),
                                                  (3.0, 2.4), (10.0, 5.8)])
def test_nyu_focus_2m_blur_matches_design_check_values(depth_m, expected_px):
  assert Camera.nyu(2.0).blur_diameter_px(depth_m) == pytest.approx(expected_px, abs=0.05)


def test_blur_diameter_formula_on_numbers_arrays_and_tensors():
  camera = Camera(focal_length_m=0.035, f_number=2.8, pixel_pitch_m=36e-6, focus_distance_m=1.7)
  s = 1.0 / (1.0 / 0.035 - 1.0 / 1.7)
  depths = np.array([0.7, 1.7, 3.0, 7.6])
  expected = (0.035 / 2.8) * s * np.abs(1 / 1.7 - 1 / depths) / 36e-6
  assert camera == Camera.dslr_d200_35mm()
  np.testing.assert_allclose(camera.blur_diameter_px(depths), expected, rtol=1e-12)
  assert isinstance(camera.blur_diameter_px(3.0), float)
  tensor = camera.blur_diameter_px(tf.constant(depths, tf.float32))
  assert isinstance(tensor, tf.Tensor)
  np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-5, atol=1e-4)


def test_signed_blur_is_negative_in_front_and_inverts():
  camera = Camera.nyu(4.0)
  assert camera.signed_blur_px(1.0) < 0 < camera.signed_blur_px(8.0)
  depths = np.array([0.6, 1.0, 4.0, 9.0])
  np.testing.assert_allclose(camera.depth_for_signed_blur(camera.signed_blur_px(depths)), depths)


@pytest.mark.parametrize("field, value", [("focal_length_m", 0.0), ("f_number", -2.8),
                                          ("pixel_pitch_m", math.nan), ("focus_distance_m", math.inf),
                                          ("f_number", "fast")])
def test_bad_parameters_raise_naming_parameter_and_value(field, value):
  params = Camera.nyu().to_dict()
  params[field] = value
  with pytest.raises(ValueError, match=field) as error:
    Camera(**params)
  assert repr(value) in str(error.value)


def test_focus_distance_must_lie_beyond_focal_length():
  with pytest.raises(ValueError, match="focus_distance_m.*0.01"):
    Camera(focal_length_m=0.015, f_number=2.8, pixel_pitch_m=5.6e-6, focus_distance_m=0.01)


def test_camera_round_trips_through_dict_and_names_missing_keys():
  camera = Camera.nyu(8.0)
  assert Camera.from_dict(camera.to_dict()) == camera
  with pytest.raises(ValueError, match="pixel_pitch_m"):
    Camera.from_dict({"focal_length_m": 0.015, "f_number": 2.8, "focus_distance_m": 2.0})


def test_gaussian_kernel_matches_scipy_and_is_sized_from_sigma():
  from scipy import ndimage
  for sigma in (0.4, 2.0, 6.5):
    kernel = psf.gaussian_kernel_1d(sigma)
    assert kernel.size == 2 * math.ceil(4 * sigma) + 1  # never a fixed 21-tap window.
    impulse = np.zeros(101)
    impulse[50] = 1.0
    np.testing.assert_allclose(ndimage.gaussian_filter1d(impulse, sigma)[50 - kernel.size // 2:
                                                                          51 + kernel.size // 2],
                               kernel, atol=1e-12)
  np.testing.assert_array_equal(psf.gaussian_kernel_1d(0.0), [1.0])


def test_disk_kernel_is_antialiased_and_grows_smoothly():
  np.testing.assert_array_equal(psf.disk_kernel_2d(0.0), [[1.0]])
  diameters = np.arange(0.5, 8.0, 0.01)
  centre_weights = [psf.disk_kernel_2d(d)[psf.disk_radius_px(d), psf.disk_radius_px(d)]
                    for d in diameters]
  assert np.all(np.diff(centre_weights) <= 1e-12)  # the centre loses weight as blur grows.
  assert np.max(np.abs(np.diff(centre_weights))) < 0.02  # ... without jumps.
  kernel = psf.disk_kernel_2d(7.0)
  assert kernel.sum() == pytest.approx(1.0)
  edge_values = kernel[kernel > 0]
  assert edge_values.min() < 0.5 * edge_values.max()  # partial pixels at the rim.
  np.testing.assert_allclose(kernel, kernel.T)
  # The disk's second moment matches a continuous disk's: r^2 / 4 per axis.
  coords = np.arange(kernel.shape[0]) - kernel.shape[0] // 2
  assert (kernel.sum(0) * coords**2).sum() == pytest.approx((7.0 / 2) ** 2 / 4 + 1 / 12, rel=0.03)


def test_unknown_psf_is_rejected():
  with pytest.raises(ValueError, match="'box'"):
    psf.check_psf("box")


def test_with_parameters_takes_the_units_people_quote():
  camera = Camera.nyu().with_parameters(focal_length_mm=50, pixel_pitch_um=4.3,
                                        focus_distance_m=1.2)
  expected = dict(focal_length_m=0.05, f_number=2.8, pixel_pitch_m=4.3e-6, focus_distance_m=1.2)
  assert camera.to_dict() == pytest.approx(expected, rel=1e-12)
  assert Camera.nyu().with_parameters() == Camera.nyu()
  with pytest.raises(ValueError, match="f_number"):
    Camera.nyu().with_parameters(f_number=0)


def test_camera_describes_itself_in_quoted_units():
  assert Camera.nyu(2.0).describe() == (
      "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m")
  assert "focal length 35 mm" in Camera.dslr_d200_35mm().describe()
