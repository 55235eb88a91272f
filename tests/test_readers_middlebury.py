"""Tests for MiddleburyReader: PFM disparity + calib.txt to metric depth."""

import shutil

import numpy as np
from PIL import Image
import pytest

from d3tf.data.readers import middlebury
from d3tf.data.validation import DataError


def test_pfm_byte_order_and_row_order(tmp_path):
  # Rows are stored bottom-up; the scale's sign gives the byte order.
  top_down = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, np.inf]], np.float32)
  bottom_up = top_down[::-1]
  (tmp_path / "le.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + bottom_up.astype("<f4").tobytes())
  (tmp_path / "be.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + bottom_up.astype(">f4").tobytes())
  for name in ("le.pfm", "be.pfm"):
    np.testing.assert_array_equal(middlebury.read_pfm(tmp_path / name), top_down)
  colour = np.arange(18, dtype=np.float32).reshape(2, 3, 3)
  middlebury.write_pfm(tmp_path / "rgb.pfm", colour)
  assert (tmp_path / "rgb.pfm").read_bytes().startswith(b"PF\n3 2\n-1.0\n")
  np.testing.assert_array_equal(middlebury.read_pfm(tmp_path / "rgb.pfm"), colour)


def test_bad_pfm(tmp_path):
  middlebury.write_pfm(tmp_path / "d.pfm", np.ones((4, 5), np.float32))
  data = (tmp_path / "d.pfm").read_bytes()
  (tmp_path / "cut.pfm").write_bytes(data[:-8])
  with pytest.raises(DataError, match=r"cut\.pfm: truncated PFM: 72 data bytes, expected 80"):
    middlebury.read_pfm(tmp_path / "cut.pfm")
  (tmp_path / "png.pfm").write_bytes(b"\x89PNG\r\n\x1a\n 1 2 3 ")
  with pytest.raises(DataError, match=r"png\.pfm: not a PFM file"):
    middlebury.read_pfm(tmp_path / "png.pfm")
  (tmp_path / "head.pfm").write_bytes(b"Pf\n4 ")
  with pytest.raises(DataError, match="truncated PFM header"):
    middlebury.read_pfm(tmp_path / "head.pfm")


def test_calib_and_depth_formula(tmp_path):
  # Spacing as in the real files: keys with leading blanks, trailing blanks.
  (tmp_path / "calib.txt").write_text(
      "cam0=[ 1000 0 300 ; 0 1000 200 ; 0 0 1 ] \ncam1=[ 1000 0 350 ; 0 1000 200 ; 0 0 1 ]\n"
      " doffs= 50 \nbaseline= 200\n width= 3\nheight= 2\n isint=0\n")
  calib = middlebury.read_calib(tmp_path / "calib.txt")
  assert calib["cam0"][0, 0] == 1000 and calib["doffs"] == 50 and calib["width"] == 3
  disparity = np.array([[50.0, 150.0, np.inf], [np.nan, -50.0, 0.0]])
  depth = middlebury.disparity_to_depth(disparity, focal_px=1000, baseline_mm=200, doffs=50)
  np.testing.assert_allclose(depth, [[2.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
  (tmp_path / "bad.txt").write_text("cam0=[ 1 0 ; 0 1 ]\ndoffs=1\nbaseline=1\n")
  with pytest.raises(DataError, match=r"bad\.txt: cam0 must be a 3x3 matrix"):
    middlebury.read_calib(tmp_path / "bad.txt")
  (tmp_path / "nobase.txt").write_text("cam0=[1 0 0; 0 1 0; 0 0 1]\ndoffs=1\n")
  with pytest.raises(DataError, match="no 'baseline' entry"):
    middlebury.read_calib(tmp_path / "nobase.txt")


def test_real_scenes(shared_subdir):
  root = shared_subdir("middlebury_q")
  reader = middlebury.MiddleburyReader(root, scenes=["ArtL", "Teddy"])
  assert len(middlebury.MiddleburyReader(root).samples()) == 15
  sample = reader.samples()[0]
  image, depth = reader.load(sample)
  assert image.shape == (277, 347, 3) and depth.shape == (277, 347)
  disparity = middlebury.read_pfm(root / "ArtL" / "disp0GT.pfm")
  unknown = ~np.isfinite(disparity)
  assert unknown.any() and (depth[unknown] == 0).all() and np.isfinite(depth).all()
  # ArtL calib.txt: f = 935 px, baseline 160 mm, doffs 50.
  y, x = np.argwhere(~unknown)[1000]
  assert depth[y, x] == pytest.approx(160 * 935 / (disparity[y, x] + 50) / 1000, rel=1e-6)
  valid = depth[depth > 0]
  assert 0.9 < valid.min() and valid.max() < 9.0  # about 1-8.6 m over the set
  nocc = middlebury.MiddleburyReader(root, scenes=["ArtL"], occluded_invalid=True)
  _, depth_nocc = nocc.load(0)
  mask = np.asarray(Image.open(root / "ArtL" / "mask0nocc.png"))
  assert (depth_nocc[mask != 255] == 0).all() and (depth_nocc > 0).sum() < (depth > 0).sum()


def test_scene_problems(shared_subdir, tmp_path):
  src = shared_subdir("middlebury_q") / "ArtL"
  scene = tmp_path / "ArtL"
  shutil.copytree(src, scene)
  (scene / "calib.txt").write_text((src / "calib.txt").read_text().replace("width= 347",
                                                                          "width= 1388"))
  with pytest.raises(DataError, match=r"calib\.txt \+ .*disp0GT\.pfm: calibration width 1388 "
                     r"differs from the disparity's 347"):
    middlebury.MiddleburyReader(tmp_path).load(0)
  (scene / "disp0GT.pfm").unlink()
  with pytest.raises(DataError, match=r"disp0GT\.pfm: missing file of the scene"):
    middlebury.MiddleburyReader(tmp_path).samples()
  reader = middlebury.MiddleburyReader(tmp_path, on_error="skip")
  assert reader.samples() == [] and reader.skipped == 1
