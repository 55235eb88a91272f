"""Tests for FolderReader: RGB + depth pairs by file name (16-bit PNG or .npy)."""

import logging

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf.data.readers import folder
from d3tf.data.validation import DataError


def _write_image(path, h=6, w=8, seed=0):
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  Image.fromarray(image).save(path)
  return image


def _write_png_depth_mm(path, depth_m):
  Image.fromarray(np.round(np.asarray(depth_m) * 1000).astype(np.uint16)).save(path)


@pytest.fixture
def two_dirs(tmp_path):
  rgb, depth = tmp_path / "rgb", tmp_path / "depth"
  rgb.mkdir()
  depth.mkdir()
  images = {}
  images["a"] = _write_image(rgb / "a.png", seed=1)
  images["b"] = _write_image(rgb / "b.JPG", seed=2)
  _write_png_depth_mm(depth / "a.png", np.full((6, 8), 1.25))
  np.save(depth / "b.npy", np.full((6, 8), 3.5, np.float32))
  return rgb, depth, images


def test_pairs_by_stem_in_two_folders(two_dirs):
  rgb, depth, images = two_dirs
  reader = folder.FolderReader(rgb, depth)
  samples = reader.samples()
  assert [s.name for s in samples] == ["a", "b"]
  assert samples[1].image_path.endswith("b.JPG") and samples[1].depth_path.endswith("b.npy")
  image, depth_a = reader.load(samples[0])
  np.testing.assert_array_equal(image, images["a"])  # PNG: lossless.
  assert depth_a.dtype == np.float32 and depth_a[0, 0] == pytest.approx(1.25)
  _, depth_b = reader.load(1)
  assert depth_b[0, 0] == pytest.approx(3.5)


def test_one_folder_with_suffixes(tmp_path):
  _write_image(tmp_path / "0001_rgb.png")
  _write_png_depth_mm(tmp_path / "0001_depth.png", np.full((6, 8), 2.0))
  reader = folder.FolderReader(tmp_path, image_suffixes=("_rgb.png",),
                               depth_suffixes=("_depth.png",))
  assert [s.name for s in reader.samples()] == ["0001"]
  with pytest.raises(ValueError, match="suffixes must differ"):
    folder.FolderReader(tmp_path, image_suffixes=(".png",), depth_suffixes=(".PNG",))


def test_missing_depth_names_the_expected_file(two_dirs, caplog):
  rgb, depth, _ = two_dirs
  _write_image(rgb / "c.png")
  with pytest.raises(DataError, match=r"c\.png: missing depth map .*depth/c\.png or .*c\.npy"):
    folder.FolderReader(rgb, depth).samples()
  reader = folder.FolderReader(rgb, depth, on_error="skip")
  with caplog.at_level(logging.WARNING):
    assert [s.name for s in reader.samples()] == ["a", "b"]
  assert reader.skipped == 1
  assert "skipping sample (1 skipped so far)" in caplog.text


def test_orphan_depth_is_logged(two_dirs, caplog):
  rgb, depth, _ = two_dirs
  np.save(depth / "zzz.npy", np.ones((6, 8), np.float32))
  with caplog.at_level(logging.WARNING):
    assert len(folder.FolderReader(rgb, depth).samples()) == 2
  assert "1 depth maps" in caplog.text and "zzz.npy" in caplog.text


def test_bad_samples_raise_naming_files(two_dirs):
  rgb, depth, _ = two_dirs
  np.save(depth / "b.npy", np.full((6, 8), 3500.0, np.float32))  # millimetres, not metres
  reader = folder.FolderReader(rgb, depth)
  with pytest.raises(DataError, match=r"b\.npy: depth values up to 3500 .*millimetres"):
    reader.load(1)
  np.save(depth / "b.npy", np.full((6, 9), 3.5, np.float32))
  with pytest.raises(DataError, match=r"b\.JPG \+ .*b\.npy: depth map size 6x9 .* image size 6x8"):
    reader.load(1)
  np.save(depth / "b.npy", np.zeros((6, 8), np.float32))
  with pytest.raises(DataError, match=r"b\.npy: .*no valid pixel"):
    reader.load(1)
  nan_depth = np.full((6, 8), 3.5, np.float32)
  nan_depth[0, 0] = np.nan
  np.save(depth / "b.npy", nan_depth)
  _, loaded = reader.load(1)
  assert loaded[0, 0] == 0 and np.isfinite(loaded).all()


def test_dataset_contract_and_skip(two_dirs):
  rgb, depth, _ = two_dirs
  data = (rgb / "a.png").read_bytes()
  (rgb / "a.png").write_bytes(data[:len(data) // 2])  # truncated image
  ds = folder.FolderReader(rgb, depth).as_dataset()
  assert ds.element_spec["image"].dtype == tf.uint8
  assert ds.element_spec["image"].shape.as_list() == [None, None, 3]
  assert ds.element_spec["depth"].dtype == tf.float32
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"a\.png: corrupt or truncated image"):
    list(ds)
  reader = folder.FolderReader(rgb, depth, on_error="skip")
  elements = list(reader.as_dataset())
  assert [e["name"].numpy() for e in elements] == [b"b"]
  assert elements[0]["depth"].shape == (6, 8)
  assert reader.skipped == 1
  with pytest.raises(DataError):
    reader.load(0)  # Direct loads always raise.
  assert [s.name for s, _, _ in reader.iter_samples()] == ["b"]
  assert reader.skipped == 2


def test_folder_checks(tmp_path):
  with pytest.raises(ValueError, match="not a folder"):
    folder.FolderReader(tmp_path / "nope")
  with pytest.raises(ValueError, match="depth_scale"):
    folder.FolderReader(tmp_path, tmp_path / "..", depth_scale=0)


def test_folder_reader_for_accepts_train_and_one_folder_layouts(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  image = np.zeros((8, 8, 3), np.uint8)
  depth = np.full((8, 8), 2000, np.uint16)
  two = tmp_path / "two"
  (two / "rgb").mkdir(parents=True)
  (two / "depth").mkdir()
  Image.fromarray(image).save(two / "rgb" / "0001.jpg")
  Image.fromarray(depth).save(two / "depth" / "0001.png")
  one = tmp_path / "one"
  one.mkdir()
  Image.fromarray(image).save(one / "0001_colors.png")
  Image.fromarray(depth).save(one / "0001_depth.png")
  for path in (two, one):
    reader = folder.folder_reader_for(path)
    assert [s.name for s in reader.samples()] == ["0001"]
    assert float(reader.load(0)[1][0, 0]) == pytest.approx(2.0)
  (tmp_path / "half" / "rgb").mkdir(parents=True)
  with pytest.raises(ValueError, match=r"half: has rgb/ but not depth/; a folder dataset is "):
    folder.folder_reader_for(tmp_path / "half")
  with pytest.raises(ValueError, match="not a folder"):
    folder.folder_reader_for(tmp_path / "missing")
