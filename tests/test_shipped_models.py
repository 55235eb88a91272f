"""The committed SavedModel exports (savedmodels/, issues 13 and 14) load and predict real depth.

They are part of the repository, not build outputs: a missing or broken export fails here (no
skip). Only the real test image comes from the shared data folder (skipped without it, like the
readers' tests).
"""

import pathlib

import numpy as np
import pytest

from d3tf import artifacts
from d3tf import inference

_SAVEDMODELS = pathlib.Path(__file__).resolve().parents[1] / "savedmodels"
# name -> (input kind, focus distance of the camera or None)
_SHIPPED = {"nyu_real_aif": ("sharp", None), "nyu_real_focus2m": ("defocus", 2.0),
            "d3tf_anycamera": ("defocus", 2.0), "dfd_dslr": ("defocus", 1.7)}
# name -> (focal length m, f-number) of the camera in its metadata (the default camera of a
# camera-aware model).
_LENS = {"nyu_real_focus2m": (0.015, 2.8), "d3tf_anycamera": (0.015, 2.8),
         "dfd_dslr": (0.035, 2.8)}
# Exports whose latest version takes the camera as an input (dfd_dslr/3: the camera-aware
# network fine-tuned at the DSLR's camera).
_CAMERA_AWARE = {"d3tf_anycamera", "dfd_dslr"}
_MAX_BYTES = 20 * 2**20
# The official NYU test images (nyu_png layout).
_TEST_IMAGE = "nyuv2_samples"


@pytest.mark.parametrize("name", sorted(_SHIPPED))
def test_shipped_export_is_committed_small_and_says_its_camera(name):
  folder = _SAVEDMODELS / name
  versions = sorted(p for p in folder.glob("*") if p.name.isdigit()) if folder.is_dir() else []
  assert versions, f"{folder}: no SavedModel version folder (the export is committed)"
  for version in versions:
    assert (version / "saved_model.pb").is_file(), f"{version}: no saved_model.pb"
    size = sum(p.stat().st_size for p in version.rglob("*") if p.is_file())
    assert size < _MAX_BYTES, f"{version}: {size / 2**20:.1f} MB, over 20 MB"
  _, meta = artifacts.read_export(str(versions[-1]))
  kind, focus = _SHIPPED[name]
  assert meta.input_kind == kind
  if focus is None:
    assert meta.camera is None
  else:
    assert meta.camera.focus_distance_m == pytest.approx(focus)
    focal_length_m, f_number = _LENS[name]
    assert meta.camera.focal_length_m == pytest.approx(focal_length_m)
    assert meta.camera.f_number == pytest.approx(f_number)
  exports = meta.export or {}
  assert bool(exports.get("camera_aware")) == (name in _CAMERA_AWARE), exports


def _nyu_test_image(folder: pathlib.Path):
  """The first official test image and its depth (metres), read by d3tf's nyu_png reader."""
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  reader = registry.make_reader("nyu_png", str(folder), "all", missing_splits="all")
  _, image, depth = next(iter(reader.iter_samples()))
  return image, depth


@pytest.mark.parametrize("name", ["nyu_real_aif", "nyu_real_focus2m"])
def test_shipped_export_predicts_plausible_depth_on_a_real_nyu_image(name, shared_subdir):
  image, depth = _nyu_test_image(shared_subdir(_TEST_IMAGE))
  predictor = inference.load_predictor(str(_SAVEDMODELS / name))
  assert predictor.kind == "saved_model"
  # An odd size (not a multiple of 32): serving_default takes uint8 images of any size.
  crop = image[8:8 + 250, 10:10 + 330]
  out = predictor.predict(crop)["depth"]
  assert out.shape == (1, 250, 330)
  assert np.all(np.isfinite(out))
  assert 0.5 < float(np.median(out)) < 10.0
  gt = depth[8:8 + 250, 10:10 + 330]
  valid = np.isfinite(gt) & (gt > 0)
  rel = float(np.mean(np.abs(out[0][valid] - gt[valid]) / gt[valid]))
  assert rel < 0.8, f"{name}: rel {rel:.3f} against the ground truth"


def _rel(out: np.ndarray, gt: np.ndarray) -> float:
  valid = np.isfinite(gt) & (gt > 0)
  return float(np.mean(np.abs(out[valid] - gt[valid]) / gt[valid]))


def test_shipped_anycamera_model_takes_the_camera_of_a_real_photo(shared_subdir):
  """The camera-aware model on a real NYU frame defocused by d3tf at focus 2 m and at 8 m."""
  from d3tf.optics import camera as camera_lib  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render  # pylint: disable=g-import-not-at-top
  image, depth = _nyu_test_image(shared_subdir(_TEST_IMAGE))
  predictor = inference.load_predictor(str(_SAVEDMODELS / "d3tf_anycamera"))
  assert predictor.camera_aware
  crop, gt = image[45:45 + 256, 41:41 + 320], depth[45:45 + 256, 41:41 + 320]
  rels = {}
  for focus in (2.0, 8.0):
    camera = camera_lib.Camera.nyu(focus)
    blurred = render.render_defocus(crop[None].astype(np.float32) / 255.0, gt[None], camera)
    blurred = np.clip(np.round(np.asarray(blurred)[0] * 255.0), 0, 255).astype(np.uint8)
    out = predictor.predict(blurred, camera=camera)["depth"]
    assert out.shape == (1, 256, 320) and np.all(np.isfinite(out))
    assert 0.5 < float(np.median(out)) < 10.0
    rels[focus] = _rel(out[0], gt)
  assert max(rels.values()) < 0.8, rels


def test_shipped_dfd_model_predicts_a_real_dslr_photo(shared_subdir):
  """The DFD model on a real f/2.8 photo of the DSLR (read by d3tf's dfd reader)."""
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  reader = registry.make_reader("dfd", str(shared_subdir("dfd_indoor")), "train",
                                aperture="N2_8")
  _, image, depth = next(iter(reader.iter_samples()))
  from d3tf.experiment import predict_lib  # pylint: disable=g-import-not-at-top
  predictor = inference.load_predictor(str(_SAVEDMODELS / "dfd_dslr"))
  # Fine-tuned at one camera: a photo without EXIF takes the model's camera (no refusal).
  assert not predict_lib.needs_photo_camera(predictor)
  out = predictor.predict(image)["depth"]
  assert out.shape == (1,) + image.shape[:2] and np.all(np.isfinite(out))
  assert 0.5 < float(np.median(out)) < 8.0
  assert _rel(out[0], depth) < 0.6
