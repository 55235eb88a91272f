"""Tests for NyuDenseDepthReader: DenseDepth's <scene>_out/<n>.jpg + uint8 <n>.png layout."""

import logging

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf.data import readers
from d3tf.data.readers import densedepth
from d3tf.data.validation import DataError

H, W = 6, 8


def _write_frame(directory, number, value=51, h=H, w=W, seed=0):
  """Writes <number>.jpg (random RGB) and <number>.png (uint8 depth, a ramp from ``value``)."""
  rng = np.random.default_rng(seed + number)
  Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
      directory / f"{number}.jpg", quality=95)
  raw = (value + np.arange(h * w).reshape(h, w)) % 255 + 1
  Image.fromarray(raw.astype(np.uint8)).save(directory / f"{number}.png")
  return raw


@pytest.fixture
def tree(tmp_path):
  """Three scenes: a (frames 1, 2, 10), b (frames 3, 4), c (frame 7); returns (root, raws)."""
  raws = {}
  for scene, numbers in (("a", (10, 2, 1)), ("b", (4, 3)), ("c", (7,))):
    directory = tmp_path / f"{scene}_out"
    directory.mkdir()
    for n in numbers:
      raws[f"{scene}/{n}"] = _write_frame(directory, n, value=10 * n)
  (tmp_path / "not_a_scene").mkdir()
  return tmp_path, raws


def test_lists_frames_numerically_and_converts_to_metres_exactly(tree):
  root, raws = tree
  reader = densedepth.NyuDenseDepthReader(root, split="all")
  assert reader.scenes == ("a", "b", "c")
  assert [s.name for s in reader.samples()] == ["a/1", "a/2", "a/10", "b/3", "b/4", "c/7"]
  image, depth = reader.load(2)
  assert image.shape == (H, W, 3) and image.dtype == np.uint8
  assert depth.shape == (H, W) and depth.dtype == np.float32
  expected = (raws["a/10"].astype(np.float64) * 10.0 / 255.0).astype(np.float32)
  np.testing.assert_array_equal(depth, expected)
  assert depth.max() <= 10.0 and depth.min() > 0


def test_split_by_scene_is_disjoint_and_complete(tree):
  root, _ = tree
  train = densedepth.NyuDenseDepthReader(root, split="train", val_scenes=["b"])
  val = densedepth.NyuDenseDepthReader(root, split="validation", val_scenes="b")
  every = densedepth.NyuDenseDepthReader(root, split="all")
  assert train.scenes == ("a", "c") and val.scenes == ("b",)
  train_names = {s.name for s in train.samples()}
  val_names = {s.name for s in val.samples()}
  assert not train_names & val_names
  assert train_names | val_names == {s.name for s in every.samples()}
  assert {n.split("/")[0] for n in val_names} == {"b"}
  explicit = densedepth.NyuDenseDepthReader(root, scenes=["c", "a"])
  assert [s.name for s in explicit.samples()] == ["c/7", "a/1", "a/2", "a/10"]


def test_bad_arguments_name_the_value(tree, tmp_path_factory):
  root, _ = tree
  with pytest.raises(ValueError, match=r"val_scenes \['office_0011'\] not among"):
    densedepth.NyuDenseDepthReader(root, split="train")  # The default scene is absent here.
  with pytest.raises(ValueError, match="split must be one of"):
    densedepth.NyuDenseDepthReader(root, split="test", val_scenes=["b"])
  with pytest.raises(ValueError, match=r"scenes \['zzz'\] not found"):
    densedepth.NyuDenseDepthReader(root, scenes=["zzz"])
  with pytest.raises(ValueError, match="no training scene left"):
    densedepth.NyuDenseDepthReader(root, split="train", val_scenes=["a", "b", "c"])
  with pytest.raises(ValueError, match="frame_stride must be"):
    densedepth.NyuDenseDepthReader(root, frame_stride=0)
  with pytest.raises(ValueError, match="no <scene>_out/ folders"):
    densedepth.NyuDenseDepthReader(tmp_path_factory.mktemp("empty"))


def test_frame_stride_keeps_every_kth_frame_per_scene(tree):
  root, _ = tree
  reader = densedepth.NyuDenseDepthReader(root, frame_stride=2)
  assert [s.name for s in reader.samples()] == ["a/1", "a/10", "b/3", "c/7"]


def test_corrupt_jpg_raises_data_error_naming_it(tree):
  root, _ = tree
  (root / "b_out" / "3.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
  reader = densedepth.NyuDenseDepthReader(root, scenes=["b"])
  with pytest.raises(DataError, match=r"b_out/3\.jpg: corrupt or truncated image"):
    reader.load(0)
  skipping = densedepth.NyuDenseDepthReader(root, scenes=["b"], on_error="skip")
  assert [s.name for s, _, _ in skipping.iter_samples()] == ["b/4"]
  assert skipping.skipped == 1


def test_missing_png_raises_or_is_skipped(tree, caplog):
  root, _ = tree
  (root / "a_out" / "2.png").unlink()
  with pytest.raises(DataError, match=r"a_out/2\.jpg: missing depth map .*a_out/2\.png"):
    densedepth.NyuDenseDepthReader(root, scenes=["a"]).samples()
  reader = densedepth.NyuDenseDepthReader(root, scenes=["a"], on_error="skip")
  with caplog.at_level(logging.WARNING):
    assert [s.name for s in reader.samples()] == ["a/1", "a/10"]
  assert reader.skipped == 1


def test_size_mismatch_raises(tree):
  root, _ = tree
  Image.fromarray(np.full((H + 2, W), 100, np.uint8)).save(root / "c_out" / "7.png")
  reader = densedepth.NyuDenseDepthReader(root, scenes=["c"])
  with pytest.raises(DataError, match=r"7\.png.*depth map size 8x8 \(HxW\) differs from image "
                     r"size 6x8"):
    reader.load(0)


def test_16bit_depth_png_is_refused(tree):
  root, _ = tree
  Image.fromarray(np.full((H, W), 2000, np.uint16)).save(root / "c_out" / "7.png")
  with pytest.raises(DataError, match=r"7\.png: DenseDepth depth PNGs are 8-bit grey"):
    densedepth.NyuDenseDepthReader(root, scenes=["c"]).load(0)


def test_badly_named_frame_is_an_error(tree):
  root, _ = tree
  _write_frame(root / "c_out", 0)
  (root / "c_out" / "0.jpg").rename(root / "c_out" / "frame_x.jpg")
  with pytest.raises(DataError, match=r"frame_x\.jpg: frame files must be named <n>\.jpg"):
    densedepth.NyuDenseDepthReader(root, scenes=["c"]).samples()


def test_as_dataset_follows_the_element_contract(tree):
  root, raws = tree
  ds = densedepth.NyuDenseDepthReader(root, scenes=["b"]).as_dataset()
  elements = list(ds.as_numpy_iterator())
  assert [e["name"] for e in elements] == [b"b/3", b"b/4"]
  assert elements[0]["image"].dtype == np.uint8 and elements[0]["image"].shape == (H, W, 3)
  np.testing.assert_allclose(elements[1]["depth"], raws["b/4"] * 10.0 / 255.0, rtol=1e-6)
  assert ds.element_spec["depth"].dtype == tf.float32


def test_exported_from_the_packages():
  import d3tf.data  # pylint: disable=g-import-not-at-top
  assert readers.NyuDenseDepthReader is densedepth.NyuDenseDepthReader
  assert d3tf.data.NyuDenseDepthReader is densedepth.NyuDenseDepthReader


def test_real_densedepth_folder(shared_subdir):
  root = shared_subdir("nyuv2_train")
  train = densedepth.NyuDenseDepthReader(root, split="train")
  val = densedepth.NyuDenseDepthReader(root, split="validation")
  assert val.scenes == ("office_0011",)
  assert "office_0011" not in train.scenes and len(train.scenes) == 3
  assert len(train) + len(val) == 1048 and len(val) == 243
  names = [s.name for s in val.samples()]
  numbers = [int(n.split("/")[1]) for n in names]
  assert numbers == sorted(numbers)
  image, depth = val.load(0)
  assert image.shape == (480, 640, 3) and depth.shape == (480, 640)
  steps = np.unique(np.round(depth / (10.0 / 255.0), 4))
  np.testing.assert_array_equal(steps, np.round(steps))  # Whole uint8 units.
  assert 0.5 < float(depth.min()) and float(depth.max()) <= 10.0
