"""Tests for the NYU Depth v2 readers (.mat v7.3 via h5py, PNG export) and the Eigen crop."""

import h5py
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from d3tf.data.readers import nyu
from d3tf.data.validation import DataError

H, W, N = 24, 32, 5


def _pattern(i):
  """An asymmetric image and depth: any transposition or flip changes them."""
  y, x = np.mgrid[0:H, 0:W]
  image = np.stack([(y * 7 + x * 3 + i) % 256, (x * 5) % 256, (y * 11 + i * 40) % 256],
                   axis=-1).astype(np.uint8)
  depth = (1.0 + 0.1 * y + 0.01 * x + 0.5 * i).astype(np.float32)
  return image, depth


def _write_matlab_v73(path, images, depths, depth_key="depths"):
  """Writes the labelled set's layout as MATLAB -v7.3 does: HDF5, column-major.

  MATLAB's images (H x W x 3 x N) and depths (H x W x N) appear in h5py with
  the dimensions reversed: (N, 3, W, H) and (N, W, H).
  """
  with h5py.File(path, "w", userblock_size=512) as f:
    d = f.create_dataset("images", data=np.stack([im.transpose(2, 1, 0) for im in images]))
    d.attrs["MATLAB_class"] = np.bytes_("uint8")
    d = f.create_dataset(depth_key, data=np.stack([dp.T for dp in depths]).astype(np.float32))
    d.attrs["MATLAB_class"] = np.bytes_("single")
  header = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
            b"HDF5 schema 1.00 .")
  header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
  with open(path, "r+b") as f:
    f.write(header)


def _write_splits(path, train_1based, test_1based):
  scipy.io.savemat(path, {
      "trainNdxs": np.asarray(train_1based, np.float64).reshape(-1, 1),
      "testNdxs": np.asarray(test_1based, np.float64).reshape(-1, 1)})


@pytest.fixture
def mat_dir(tmp_path):
  pairs = [_pattern(i) for i in range(N)]
  _write_matlab_v73(tmp_path / "nyu_depth_v2_labeled.mat", [p[0] for p in pairs],
                    [p[1] for p in pairs])
  _write_splits(tmp_path / "splits.mat", [1, 3, 4], [2, 5])
  return tmp_path, pairs


def test_mat_is_untransposed(mat_dir):
  folder, pairs = mat_dir
  assert (folder / "nyu_depth_v2_labeled.mat").read_bytes()[:10] == b"MATLAB 7.3"
  with nyu.NyuMatReader(folder / "nyu_depth_v2_labeled.mat") as reader:
    assert [s.name for s in reader.samples()] == ["00000", "00001", "00002", "00003", "00004"]
    for i in (0, 3):
      image, depth = reader.load(i)
      assert image.shape == (H, W, 3) and depth.shape == (H, W)
      np.testing.assert_array_equal(image, pairs[i][0])
      np.testing.assert_array_equal(depth, pairs[i][1])
    # Top-left pixel is the nearest, bottom-right the farthest, in the right order.
    assert depth[0, 1] - depth[0, 0] == pytest.approx(0.01)
    assert depth[1, 0] - depth[0, 0] == pytest.approx(0.1)


def test_official_split_is_one_based(mat_dir):
  folder, pairs = mat_dir
  mat = folder / "nyu_depth_v2_labeled.mat"
  train = nyu.NyuMatReader(mat, split="train")  # splits.mat found beside the .mat
  assert [s.index for s in train.samples()] == [0, 2, 3]
  test = nyu.NyuMatReader(mat, split="test", splits_path=folder / "splits.mat")
  assert [s.name for s in test.samples()] == ["00001", "00004"]
  np.testing.assert_array_equal(test.load(1)[0], pairs[4][0])
  splits = nyu.read_splits(folder / "splits.mat", num_images=N)
  assert splits["train"].tolist() == [0, 2, 3] and splits["test"].tolist() == [1, 4]
  train.close()
  test.close()


def test_bad_splits(tmp_path):
  _write_splits(tmp_path / "zero.mat", [0, 1], [2])  # 0-based by mistake
  with pytest.raises(DataError, match=r"zero\.mat: trainNdxs indices must lie in \[1, 5\]"):
    nyu.read_splits(tmp_path / "zero.mat", num_images=5)
  _write_splits(tmp_path / "both.mat", [1, 2], [2])
  with pytest.raises(DataError, match="both splits"):
    nyu.read_splits(tmp_path / "both.mat", num_images=5)
  scipy.io.savemat(tmp_path / "other.mat", {"foo": np.ones(3)})
  with pytest.raises(DataError, match="no variable 'trainNdxs'"):
    nyu.read_splits(tmp_path / "other.mat")
  with pytest.raises(DataError, match="file not found"):
    nyu.read_splits(tmp_path / "missing.mat")
  with pytest.raises(ValueError, match="split must be one of"):
    nyu.NyuMatReader(tmp_path / "x.mat", split="val")


def test_bad_mat_files(tmp_path):
  (tmp_path / "old.mat").write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 200)
  with pytest.raises(DataError, match=r"old\.mat: cannot open as HDF5.*-v7\.3"):
    nyu.NyuMatReader(tmp_path / "old.mat").samples()
  with pytest.raises(DataError, match=r"missing\.mat: file not found"):
    nyu.NyuMatReader(tmp_path / "missing.mat").samples()
  image, depth = _pattern(0)
  _write_matlab_v73(tmp_path / "raw.mat", [image], [depth], depth_key="rawDepths")
  with pytest.raises(DataError, match=r"raw\.mat: no dataset 'depths'"):
    nyu.NyuMatReader(tmp_path / "raw.mat").samples()
  assert nyu.NyuMatReader(tmp_path / "raw.mat", depth_key="rawDepths").load(0)[1].shape == (H, W)
  with h5py.File(tmp_path / "flat.mat", "w") as f:  # not transposed: (N, H, W, 3)
    f["images"] = image[None]
    f["depths"] = depth[None]
  with pytest.raises(DataError, match=r"expected h5py shapes images \(N, 3, W, H\)"):
    nyu.NyuMatReader(tmp_path / "flat.mat").samples()


def test_bad_depth_in_mat(tmp_path):
  images, depths = zip(*[_pattern(i) for i in range(3)])
  depths = list(depths)
  depths[0] = depths[0].copy()
  depths[0][0, 0] = np.nan
  depths[1] = np.zeros((H, W), np.float32)
  depths[2] = depths[2] * 1000.0  # millimetres
  _write_matlab_v73(tmp_path / "bad.mat", images, depths)
  reader = nyu.NyuMatReader(tmp_path / "bad.mat")
  assert reader.load(0)[1][0, 0] == 0.0
  with pytest.raises(DataError, match=r"bad\.mat: depth map .* no valid pixel"):
    reader.load(1)
  with pytest.raises(DataError, match=r"bad\.mat: depth values up to .* millimetres"):
    reader.load(2)
  skipping = nyu.NyuMatReader(tmp_path / "bad.mat", on_error="skip")
  names = [e["name"].numpy() for e in skipping.as_dataset()]
  assert names == [b"00000"] and skipping.skipped == 2


def test_eigen_crop():
  assert nyu.eigen_crop_box() == (45, 471, 41, 601)
  frame = np.zeros((480, 640, 3))
  assert nyu.eigen_crop(frame).shape == (426, 560, 3)
  mask = nyu.eigen_crop_mask()
  assert mask.sum() == 426 * 560 and mask[45, 41] and not mask[44, 41] and not mask[45, 601]
  assert nyu.eigen_crop_box(240, 320) == (22, 236, 20, 300)


def test_mat_eigen_crop(mat_dir):
  folder, pairs = mat_dir
  reader = nyu.NyuMatReader(folder / "nyu_depth_v2_labeled.mat", eigen_crop=True)
  top, bottom, left, right = nyu.eigen_crop_box(H, W)
  image, depth = reader.load(0)
  np.testing.assert_array_equal(image, pairs[0][0][top:bottom, left:right])
  assert depth.shape == (bottom - top, right - left)


# ----------------------------------------------------------------- PNG export
def test_png_export_real_files(shared_subdir):
  reader = nyu.NyuPngReader(shared_subdir("nyuv2_samples"))
  samples = reader.samples()
  assert len(samples) == 10
  assert [s.index for s in samples[:4]] == [0, 1, 8, 13]
  image, depth = reader.load(samples[2])
  assert image.shape == (480, 640, 3) and image.dtype == np.uint8
  assert depth.shape == (480, 640) and depth.dtype == np.float32
  assert 0.5 < depth.min() and depth.max() <= 10.0  # filled depth, metres
  cropped = nyu.NyuPngReader(shared_subdir("nyuv2_samples"), eigen_crop=True)
  crop_image, crop_depth = cropped.load(2)
  np.testing.assert_array_equal(crop_image, image[45:471, 41:601])
  assert crop_depth.shape == (426, 560)


def test_png_export_split_and_dataset(shared_subdir, tmp_path):
  # The 10 files are the first test images: 0-based 0, 1, 8, 13, ...
  _write_splits(tmp_path / "splits.mat", [3, 4, 5], [1, 2, 9])
  test = nyu.NyuPngReader(shared_subdir("nyuv2_samples"), split="test",
                          splits_path=tmp_path / "splits.mat")
  assert [s.name for s in test.samples()] == ["00000", "00001", "00008"]
  element = next(iter(test.as_dataset()))
  assert element["image"].dtype == tf.uint8 and element["image"].shape == (480, 640, 3)
  assert element["depth"].dtype == tf.float32 and element["name"].numpy() == b"00000"
  with pytest.raises(ValueError, match="needs splits_path"):
    nyu.NyuPngReader(shared_subdir("nyuv2_samples"), split="train").samples()


def test_png_export_missing_partner(shared_subdir, tmp_path):
  src = shared_subdir("nyuv2_samples")
  for name in ("00000_colors.png", "00000_depth.png", "00001_colors.png"):
    (tmp_path / name).write_bytes((src / name).read_bytes())
  with pytest.raises(DataError, match=r"00001_colors\.png: missing depth map .*00001_depth\.png"):
    nyu.NyuPngReader(tmp_path).samples()
  reader = nyu.NyuPngReader(tmp_path, on_error="skip")
  assert [s.name for s in reader.samples()] == ["00000"] and reader.skipped == 1
