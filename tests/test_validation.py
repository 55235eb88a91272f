"""Tests for d3tf.data.validation: the checks every real sample passes."""

import logging

import numpy as np
import pytest

from d3tf.data import validation
from d3tf.data.validation import DataError


def _image(h=4, w=5):
  return np.full((h, w, 3), 128, np.uint8)


def _depth(h=4, w=5, value=2.0):
  return np.full((h, w), value, np.float32)


def test_valid_sample_passes_and_is_copied():
  depth_in = _depth().astype(np.float64)
  image, depth = validation.validate_sample(_image(), depth_in, image_path="a.png",
                                            depth_path="a_depth.png")
  assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
  assert depth.dtype == np.float32 and depth.shape == (4, 5)
  depth[0, 0] = 0.0
  assert depth_in[0, 0] == 2.0


def test_data_error_is_value_error_and_names_files():
  error = DataError(("a.jpg", "a.png"), "broken")
  assert isinstance(error, ValueError)
  assert error.paths == ("a.jpg", "a.png")
  assert str(error) == "a.jpg + a.png: broken"


def test_size_mismatch_names_both_files_and_sizes():
  with pytest.raises(DataError) as info:
    validation.validate_sample(_image(4, 5), _depth(4, 6), image_path="rgb/x.jpg",
                               depth_path="depth/x.png")
  message = str(info.value)
  assert "rgb/x.jpg" in message and "depth/x.png" in message
  assert "4x6" in message and "4x5" in message


@pytest.mark.parametrize("fill", [0.0, np.nan, np.inf, -1.0])
def test_all_invalid_depth_raises(fill):
  with pytest.raises(DataError, match=r"x\.png: .*no valid pixel"):
    validation.validate_depth(_depth(value=fill), "x.png")


def test_millimetres_as_metres_raises_with_value():
  depth = _depth(value=1500.0)
  depth[0, 0] = 7600.0
  with pytest.raises(DataError) as info:
    validation.validate_depth(depth, "d.png")
  message = str(info.value)
  assert message.startswith("d.png: ")
  assert "7600" in message and "millimetres" in message


def test_max_depth_is_configurable():
  depth = _depth(value=150.0)
  assert validation.validate_depth(depth, "far.npy", max_depth_m=200.0).max() == 150.0
  assert validation.validate_depth(depth, "far.npy", max_depth_m=None).max() == 150.0


def test_non_finite_and_negative_become_zero_by_default():
  depth = _depth()
  depth[0, 0], depth[0, 1], depth[0, 2], depth[0, 3] = np.nan, np.inf, -np.inf, -3.0
  out = validation.validate_depth(depth, "x.npy")
  assert np.isfinite(out).all()
  assert (out[0, :4] == 0).all() and (out[1:] == 2.0).all()


def test_non_finite_raise_mode_counts_values():
  depth = _depth()
  depth[0, 0], depth[0, 1], depth[0, 2] = np.nan, np.inf, -1.0
  with pytest.raises(DataError, match=r"x\.npy: depth map has 1 NaN, 1 infinite and 1 negative"):
    validation.validate_depth(depth, "x.npy", non_finite="raise")


def test_depth_shape_and_dtype_checks():
  assert validation.validate_depth(_depth()[..., None], "x").shape == (4, 5)
  with pytest.raises(DataError, match=r"x: depth map must be \[H, W\]"):
    validation.validate_depth(np.ones((2, 3, 3), np.float32), "x")
  with pytest.raises(DataError, match="empty"):
    validation.validate_depth(np.ones((0, 3), np.float32), "x")
  with pytest.raises(DataError, match="dtype"):
    validation.validate_depth(np.ones((2, 3), bool), "x")
  with pytest.raises(ValueError, match="non_finite"):
    validation.validate_depth(_depth(), "x", non_finite="ignore")


def test_image_checks():
  with pytest.raises(DataError, match=r"im\.png: image must be \[H, W, 3\]"):
    validation.validate_image(np.zeros((4, 5), np.uint8), "im.png")
  with pytest.raises(DataError, match="dtype"):
    validation.validate_image(np.zeros((4, 5, 3), np.uint16), "im.png")
  with pytest.raises(DataError, match=r"got range \[255, 255\]"):
    validation.validate_image(np.full((4, 5, 3), 255.0), "im.png")
  bad = np.zeros((4, 5, 3), np.float32)
  bad[0, 0, 0] = np.nan
  with pytest.raises(DataError, match="1 NaN"):
    validation.validate_image(bad, "im.png")
  converted = validation.validate_image(np.full((4, 5, 3), 0.5, np.float32), "im.png")
  assert converted.dtype == np.uint8 and converted[0, 0, 0] == 128


def test_error_policy_raise_and_skip(caplog):
  with pytest.raises(ValueError, match="on_error"):
    validation.ErrorPolicy("ignore")
  strict = validation.ErrorPolicy("raise", "src")
  with pytest.raises(DataError):
    strict.handle(DataError("a.png", "bad"))
  lenient = validation.ErrorPolicy("skip", "src")
  with caplog.at_level(logging.WARNING):
    lenient.handle(DataError("a.png", "bad"))
    lenient.handle(DataError("b.png", "worse"))
  assert lenient.skipped == 2
  assert "src: skipping sample (2 skipped so far): b.png: worse" in caplog.text


def test_metres_read_as_millimetres_is_named():
  # A 16-bit PNG of metres (2-4) read with the millimetre scale: depths of 2-4 mm.
  depth = np.random.default_rng(0).integers(2, 5, (8, 8)).astype(np.float32) * 0.001
  with pytest.raises(DataError, match=r"d\.png: 100% of the valid depth values are below "
                     r"0\.05 m .*metres read as millimetres.*--depth_scale=1"):
    validation.validate_depth(depth, "d.png")
  assert validation.validate_depth(depth, "d.png", min_plausible_m=None).shape == (8, 8)
  # A few close pixels in a real scene are fine.
  scene = np.full((10, 10), 2.0, np.float32)
  scene[:2] = 0.01
  validation.validate_depth(scene, "d.png")


def test_millimetres_read_as_metres_is_named():
  with pytest.raises(DataError, match=r"exceed 100 m: depth looks like millimetres read as "
                     r"metres.*--depth_scale=0\.001"):
    validation.validate_depth(np.full((4, 4), 2500.0, np.float32), "d.npy")
