"""Tests for DfdReader: the real DSLR defocus dataset, paired by nearest timestamp."""

import datetime
import logging
import os

import numpy as np
from PIL import Image
import pytest

from d3tf.data.readers import dfd
from d3tf.data.validation import DataError


def _stamp(seconds):
  moment = datetime.datetime(2018, 4, 26, 16, 0, 0) + datetime.timedelta(seconds=seconds)
  return moment.isoformat(timespec="microseconds")


def _fake_dataset(root, photo_seconds, depth_seconds, aperture="N2_8"):
  rgb = root / aperture / "rgb" / "train"
  depth = root / aperture / "depth" / "train"
  rgb.mkdir(parents=True)
  depth.mkdir(parents=True)
  for k, t in enumerate(photo_seconds):
    Image.fromarray(np.full((4, 6, 3), 10 * k, np.uint8)).save(rgb / f"{_stamp(t)}.JPG", "JPEG")
  for k, t in enumerate(depth_seconds):
    Image.fromarray(np.full((4, 6), 1000 + 100 * k, np.uint16)).save(depth / f"{_stamp(t)}.png")


def test_real_pairing_both_apertures(shared_subdir):
  root = shared_subdir("dfd_indoor")
  for aperture, f_number in (("N2_8", 2.8), ("N8", 8.0)):
    reader = dfd.DfdReader(root, aperture=aperture)
    samples = reader.samples()
    assert len(samples) == 81
    assert reader.f_number == f_number
    assert len({s.depth_path for s in samples}) == 81  # one-to-one
    for s in samples:
      assert s.image_path.endswith(".JPG") and f"/{aperture}/rgb/train/" in s.image_path
      delta = abs(dfd.parse_timestamp(s.image_path) - dfd.parse_timestamp(s.depth_path))
      assert delta <= 0.5 and s.meta["time_delta_s"] == pytest.approx(delta)
  assert reader.camera().f_number == 8.0


def test_real_sample_loads_in_metres(shared_subdir):
  reader = dfd.DfdReader(shared_subdir("dfd_indoor"), aperture="N2_8")
  image, depth = reader.load(0)
  assert image.shape == (432, 645, 3) and image.dtype == np.uint8
  assert depth.shape == (432, 645) and depth.dtype == np.float32
  assert 0.2 < depth.min() and depth.max() < 12.0
  assert (depth > 0).all()  # filled depth
  element = next(iter(reader.as_dataset()))
  assert element["name"].numpy().decode() == reader.samples()[0].name


def test_pairs_by_timestamp_not_sorted_order(tmp_path, caplog):
  # Photo 0 has no depth map; the depth map at 30 s has no photo. Zipping
  # the sorted lists would pair every photo with the wrong depth map.
  _fake_dataset(tmp_path, photo_seconds=[0.0, 10.0, 20.0], depth_seconds=[10.3, 19.8, 30.0])
  with pytest.raises(DataError) as info:
    dfd.DfdReader(tmp_path).samples()
  message = str(info.value)
  assert message.startswith(str(tmp_path / "N2_8" / "rgb" / "train" / f"{_stamp(0.0)}.JPG"))
  assert "missing depth map: none within 0.5 s" in message and _stamp(10.3) in message
  reader = dfd.DfdReader(tmp_path, on_error="skip")
  with caplog.at_level(logging.WARNING):
    samples = reader.samples()
  assert [s.name for s in samples] == [_stamp(10.0), _stamp(20.0)]
  assert [os.path.basename(s.depth_path) for s in samples] == [f"{_stamp(10.3)}.png",
                                                              f"{_stamp(19.8)}.png"]
  assert reader.skipped == 1
  assert "1 depth maps without a photo" in caplog.text
  _, depth = reader.load(samples[1])
  assert depth[0, 0] == pytest.approx(1.1)  # the 2nd depth map: 1100 mm


def test_aperture_selection_and_tolerance(tmp_path):
  _fake_dataset(tmp_path, [0.0], [0.4], aperture="N8")
  assert len(dfd.DfdReader(tmp_path, aperture="N8")) == 1
  with pytest.raises(DataError, match="0.400 s away"):
    dfd.DfdReader(tmp_path, aperture="N8", max_time_delta_s=0.3).samples()
  with pytest.raises(DataError, match="folder not found"):
    dfd.DfdReader(tmp_path, aperture="N2_8").samples()
  with pytest.raises(ValueError, match="aperture must be one of"):
    dfd.DfdReader(tmp_path, aperture="f/2.8")


def test_bad_names_and_conflicts(tmp_path):
  _fake_dataset(tmp_path, [0.0], [0.1])
  (tmp_path / "N2_8" / "rgb" / "train" / "IMG_0001.JPG").write_bytes(b"x")
  with pytest.raises(DataError, match=r"IMG_0001\.JPG: file name 'IMG_0001' is not an ISO"):
    dfd.DfdReader(tmp_path).samples()
  # Two photos near one depth map: the nearer keeps it.
  pairs, lonely_photos, lonely_depths = dfd.pair_by_timestamp([0.0, 0.3], [0.25, 5.0], 0.5)
  assert pairs == {1: 0} and lonely_photos == [0] and lonely_depths == [1]
  assert dfd.parse_timestamp("a/2018-04-26T16:38:31.689710.JPG") == pytest.approx(
      dfd.parse_timestamp("2018-04-26T16:38:31.655986.png") + 0.033724, abs=1e-6)


def test_bad_depth_file(tmp_path):
  _fake_dataset(tmp_path, [0.0], [0.1])
  depth_path = next((tmp_path / "N2_8" / "depth" / "train").glob("*.png"))
  Image.fromarray(np.zeros((4, 6), np.uint16)).save(depth_path)
  with pytest.raises(DataError, match="no valid pixel") as info:
    dfd.DfdReader(tmp_path).load(0)
  assert str(depth_path) in str(info.value)
  with pytest.raises(DataError, match="millimetres"):
    Image.fromarray(np.full((4, 6), 2000, np.uint16)).save(depth_path)
    dfd.DfdReader(tmp_path, depth_scale=1.0).load(0)


def test_validation_holds_out_the_latest_views_by_time(tmp_path):
  # Seven views at 0, 10, ..., 60 s; each depth map 0.2 s after its photo.
  photo_seconds = [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
  _fake_dataset(tmp_path, photo_seconds, [t + 0.2 for t in photo_seconds])
  whole = dfd.DfdReader(tmp_path).samples()
  train = dfd.DfdReader(tmp_path, split="train", val_views=3).samples()
  val = dfd.DfdReader(tmp_path, split="validation", val_views=3).samples()
  assert [s.name for s in val] == [_stamp(40.0), _stamp(50.0), _stamp(60.0)]
  assert [s.name for s in train] == [_stamp(t) for t in (0.0, 10.0, 20.0, 30.0)]
  names = [s.name for s in train + val]
  assert len(set(names)) == len(names) and sorted(names) == sorted(s.name for s in whole)
  # Still paired by nearest time: each held-out photo with the depth map 0.2 s after it.
  expected = {_stamp(t): f"{_stamp(t + 0.2)}.png" for t in photo_seconds}
  for s in train + val:
    assert os.path.basename(s.depth_path) == expected[s.name]
    assert s.meta["time_delta_s"] == pytest.approx(0.2, abs=1e-4)
  assert "/rgb/train/" in val[0].image_path  # Read from the train folder.
  image, depth = dfd.DfdReader(tmp_path, split="validation", val_views=3).load(0)
  assert image[0, 0, 0] == pytest.approx(40, abs=3) and depth[0, 0] == pytest.approx(1.4)


def test_validation_split_is_by_time_not_by_file_order():
  # split_by_time sorts by capture time, whatever order the samples come in.
  from d3tf.data.readers import common
  samples = [common.Sample(name=str(t), image_path="", depth_path="",
                           meta={"photo_time_s": t}) for t in (5.0, 1.0, 4.0, 2.0, 3.0)]
  assert [s.name for s in dfd.split_by_time(samples, 2, "validation")] == ["4.0", "5.0"]
  assert [s.name for s in dfd.split_by_time(samples, 2, "train")] == ["1.0", "2.0", "3.0"]


def test_val_views_refuses_bad_values(tmp_path):
  _fake_dataset(tmp_path, [0.0, 10.0, 20.0], [0.1, 10.1, 20.1])
  with pytest.raises(ValueError, match=r"--dfd_val_views=3 .*between 0 and 2.* has 3 views"):
    dfd.DfdReader(tmp_path, split="train", val_views=3).samples()
  with pytest.raises(ValueError, match=r"--dfd_val_views=-1 .*>= 0"):
    dfd.DfdReader(tmp_path, val_views=-1)
  with pytest.raises(ValueError, match=r"give --dfd_val_views > 0"):
    dfd.DfdReader(tmp_path, split="validation")
  with pytest.raises(ValueError, match=r"split must be one of train, validation, test, got 'all'"):
    dfd.DfdReader(tmp_path, split="all")
  assert len(dfd.DfdReader(tmp_path, split="validation", val_views=2)) == 2
  assert len(dfd.DfdReader(tmp_path, split="train", val_views=0)) == 3


def test_test_split_reads_its_folder_whatever_val_views(tmp_path):
  _fake_dataset(tmp_path, [0.0, 10.0], [0.1, 10.1])
  test_rgb = tmp_path / "N2_8" / "rgb" / "test"
  test_depth = tmp_path / "N2_8" / "depth" / "test"
  test_rgb.mkdir()
  test_depth.mkdir()
  Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(test_rgb / f"{_stamp(99.0)}.JPG", "JPEG")
  Image.fromarray(np.full((4, 6), 1000, np.uint16)).save(test_depth / f"{_stamp(99.0)}.png")
  samples = dfd.DfdReader(tmp_path, split="test", val_views=1).samples()
  assert [s.name for s in samples] == [_stamp(99.0)]


def test_real_holdout_is_the_16_views_after_1718(shared_subdir):
  root = shared_subdir("dfd_indoor")
  for aperture in ("N2_8", "N8"):
    val = dfd.DfdReader(root, aperture=aperture, split="validation", val_views=16).samples()
    train = dfd.DfdReader(root, aperture=aperture, split="train", val_views=16).samples()
    assert len(val) == 16 and len(train) == 65
    assert val[0].name == "2018-04-26T17:18:08.330966"
    assert max(s.name for s in train) < min(s.name for s in val)


def test_camera_for_aperture():
  assert dfd.camera_for_aperture("N8").f_number == 8.0
  camera = dfd.camera_for_aperture("N2_8")
  assert (camera.focal_length_m, camera.f_number, camera.pixel_pitch_m,
          camera.focus_distance_m) == pytest.approx((0.035, 2.8, 36e-6, 1.7))
  with pytest.raises(ValueError, match="got 'N4'"):
    dfd.camera_for_aperture("N4")
