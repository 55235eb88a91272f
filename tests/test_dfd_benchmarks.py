"""benchmarks/dfd_blur_calibration.py, dfd_rendered_vs_real.py and camera_range_validation.py."""

import datetime
import importlib.util
import json
import os
import sys

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage

from d3tf.optics import blur_measurement
from d3tf.optics.camera import Camera

_BENCHMARKS = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks")


def _load(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(_BENCHMARKS, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module
  spec.loader.exec_module(module)  # Defines no flags at import.
  return module


@pytest.fixture(scope="module")
def calibration():
  yield _load("dfd_blur_calibration")
  del sys.modules["dfd_blur_calibration"]


@pytest.fixture(scope="module")
def rendered_vs_real():
  yield _load("dfd_rendered_vs_real")
  del sys.modules["dfd_rendered_vs_real"]


def _stamp(seconds):
  moment = datetime.datetime(2018, 4, 26, 17, 0, 0) + datetime.timedelta(seconds=seconds)
  return moment.isoformat(timespec="microseconds")


def _dfd_tree(root, camera, views=3):
  """Views whose f/2.8 photo is the f/8 one blurred as ``camera`` blurs stripes at 6 depths."""
  depths = [0.8, 1.1, 2.2, 3.0, 4.5, 7.0]
  factor = blur_measurement.relative_sigma_factor(2.8, 8.0)
  rng = np.random.default_rng(0)
  for aperture in ("N2_8", "N8"):
    for kind in ("rgb", "depth"):
      (root / aperture / kind / "train").mkdir(parents=True)
  for view in range(views):
    noise = ndimage.gaussian_filter(rng.random((144, 48 * len(depths))), 0.7)
    sharp = (noise - noise.min()) / (noise.max() - noise.min())
    blurred = np.empty_like(sharp)
    depth = np.empty(sharp.shape, np.uint16)
    for i, d in enumerate(depths):
      columns = slice(48 * i, 48 * (i + 1))
      blurred[:, columns] = ndimage.gaussian_filter(
          sharp, factor * float(camera.blur_diameter_px(d)))[:, columns]
      depth[:, columns] = int(d * 1000)
    for aperture, image in (("N8", sharp), ("N2_8", blurred)):
      rgb = np.repeat((image * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
      Image.fromarray(rgb).save(root / aperture / "rgb" / "train" / f"{_stamp(60 * view)}.JPG",
                                "JPEG", quality=98)
      Image.fromarray(depth).save(root / aperture / "depth" / "train" /
                                  f"{_stamp(60 * view + 0.1)}.png")
  return root


def test_the_calibration_recovers_a_known_camera_and_writes_its_record(calibration, tmp_path):
  camera = Camera.dslr_d200_35mm(f_number=2.8, focus_distance_m=1.5)
  root = _dfd_tree(tmp_path / "dfd", camera)
  output = tmp_path / "out" / "calibration.md"
  report = calibration.run(str(root), str(output), None, str(tmp_path / "out" / "plot.png"),
                           max_depth_spread=0.08, min_fit_r2=0.5, compare_disk=True)
  assert report["views"] == 3 and report["kept_patches"] > 20
  assert report["fit"]["focus_distance_m"] == pytest.approx(1.5, rel=0.1)
  assert report["fit"]["blur_scale_px"] == pytest.approx(camera.blur_scale_px, rel=0.1)
  assert report["nominal"]["focus_distance_m"] == 1.7
  assert len(report["bins"]) >= 4 and report["shape"]
  # Gaussian blur: the Gaussian fits at least as well as the disk wherever there is blur.
  assert all(b["gaussian_unexplained"] <= b["disk_unexplained"] + 1e-3 for b in report["shape"]
             if b["lo_m"] >= 2.0)
  text = output.read_text()
  assert "**Fit** to all kept patches: focus 1.50 m" in text and "**PSF shape.**" in text
  assert json.loads((tmp_path / "out" / "calibration.json").read_text())["views"] == 3
  assert (tmp_path / "out" / "plot.png").stat().st_size > 1000


def test_soften_blurs_in_linear_light_and_keeps_a_flat_image(rendered_vs_real):
  flat = np.full((20, 20, 3), 128, np.uint8)
  np.testing.assert_array_equal(rendered_vs_real.soften(flat, 0.7), flat)
  assert rendered_vs_real.soften(flat, 0) is flat
  edge = np.zeros((20, 20, 3), np.uint8)
  edge[:, 10:] = 255
  soft = rendered_vs_real.soften(edge, 1.0)
  assert 0 < soft[0, 9, 0] < 255 and soft[0, 0, 0] == 0 and soft[0, 19, 0] == 255
  # Linear light: the step's midpoint is brighter than the sRGB average of its sides.
  assert soft[0, 9:11, 0].mean() > 127


def test_the_held_out_sharp_views_are_written_as_a_folder(rendered_vs_real, tmp_path):
  root = _dfd_tree(tmp_path / "dfd", Camera.dslr_d200_35mm(f_number=2.8))
  count = rendered_vs_real.write_sharp_views(str(root), 2, str(tmp_path / "folder"), 0.0)
  assert count == 2
  assert sorted(os.listdir(tmp_path / "folder" / "rgb")) == ["000.png", "001.png"]
  latest = sorted((root / "N8" / "rgb" / "train").iterdir())[-2]
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "folder" / "rgb" / "000.png")),
                                np.asarray(Image.open(latest).convert("RGB")))
  assert np.asarray(Image.open(tmp_path / "folder" / "depth" / "001.png")).max() == 7000
