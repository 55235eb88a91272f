"""Tests for d3tf.data.readers.common: file decoding shared by all readers."""

import shutil

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from d3tf.data.readers import common
from d3tf.data.validation import DataError


def _truncated_copy(src, dst, keep=0.5):
  data = src.read_bytes()
  dst.write_bytes(data[:int(len(data) * keep)])
  return dst


def test_truncated_real_png_is_detected(shared_subdir, tmp_path):
  src = shared_subdir("nyuv2_samples") / "00000_colors.png"
  assert common.read_image(src).shape == (480, 640, 3)
  bad = _truncated_copy(src, tmp_path / "00000_colors.png")
  with pytest.raises(DataError, match=r"00000_colors\.png: corrupt or truncated image"):
    common.read_image(bad)


def test_truncated_real_jpeg_is_detected(shared_subdir, tmp_path):
  src = sorted((shared_subdir("dfd_indoor") / "N2_8" / "rgb" / "train").glob("*.JPG"))[0]
  bad = _truncated_copy(src, tmp_path / src.name, keep=0.6)
  with pytest.raises(DataError, match="corrupt or truncated image") as info:
    common.read_image(bad)
  assert str(bad) in str(info.value)


def test_truncated_real_depth_png_is_detected(shared_subdir, tmp_path):
  src = shared_subdir("nyuv2_samples") / "00000_depth.png"
  depth = common.read_depth_png(src, 0.001)
  assert depth.dtype == np.float32 and 0.5 < depth.min() and depth.max() < 10.5
  bad = _truncated_copy(src, tmp_path / "00000_depth.png", keep=0.9)
  with pytest.raises(DataError, match=r"00000_depth\.png: corrupt or truncated"):
    common.read_depth_png(bad, 0.001)


def test_load_truncated_images_switched_on_is_refused(shared_subdir, tmp_path, monkeypatch):
  src = shared_subdir("nyuv2_samples") / "00000_colors.png"
  bad = _truncated_copy(src, tmp_path / "x.png")
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
  with pytest.raises(DataError, match="LOAD_TRUNCATED_IMAGES"):
    common.read_image(bad)


def test_missing_empty_and_garbage_files(tmp_path):
  with pytest.raises(DataError, match=r"nope\.png: file not found"):
    common.read_image(tmp_path / "nope.png")
  (tmp_path / "empty.jpg").write_bytes(b"")
  with pytest.raises(DataError, match=r"empty\.jpg: file is empty"):
    common.read_image(tmp_path / "empty.jpg")
  (tmp_path / "text.png").write_text("not an image")
  with pytest.raises(DataError, match=r"text\.png: corrupt or truncated image"):
    common.read_image(tmp_path / "text.png")


def test_pixel_formats(tmp_path):
  grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
  Image.fromarray(grey).save(tmp_path / "grey.png")
  rgb = common.read_image(tmp_path / "grey.png")
  assert rgb.shape == (3, 4, 3) and (rgb[..., 1] == grey).all()
  rgba = np.zeros((3, 4, 4), np.uint8)
  Image.fromarray(rgba).save(tmp_path / "rgba.png")
  assert common.read_image(tmp_path / "rgba.png").shape == (3, 4, 3)
  Image.fromarray(np.full((3, 4), 1000, np.uint16)).save(tmp_path / "depth16.png")
  with pytest.raises(DataError, match="a depth map"):
    common.read_image(tmp_path / "depth16.png")
  assert common.read_depth_png(tmp_path / "depth16.png", 0.001)[0, 0] == pytest.approx(1.0)
  with pytest.raises(DataError, match=r"rgba\.png: depth PNG must have one integer channel"):
    common.read_depth_png(tmp_path / "rgba.png", 0.001)


def test_npy_depth(tmp_path):
  np.save(tmp_path / "d.npy", np.full((2, 3), 1.5, np.float64))
  depth = common.read_depth_npy(tmp_path / "d.npy")
  assert depth.dtype == np.float32 and depth[0, 0] == 1.5
  assert common.read_depth_file(tmp_path / "d.npy", png_scale=0.001)[0, 0] == 1.5
  data = (tmp_path / "d.npy").read_bytes()
  (tmp_path / "cut.npy").write_bytes(data[:-10])
  with pytest.raises(DataError, match=r"cut\.npy: corrupt or truncated \.npy"):
    common.read_depth_npy(tmp_path / "cut.npy")
  np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
  with pytest.raises(DataError, match=r"obj\.npy"):
    common.read_depth_npy(tmp_path / "obj.npy")
  shutil.copy(tmp_path / "d.npy", tmp_path / "d.tiff")
  with pytest.raises(DataError, match="unsupported depth file type"):
    common.read_depth_file(tmp_path / "d.tiff", png_scale=0.001)
