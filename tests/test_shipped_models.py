"""The committed SavedModel exports (savedmodels/nyu_real_*, issue 13) load and predict real depth.

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
_SHIPPED = {"nyu_real_aif": ("sharp", None), "nyu_real_focus2m": ("defocus", 2.0)}
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
    assert meta.camera.focal_length_m == pytest.approx(0.015)
    assert meta.camera.f_number == pytest.approx(2.8)


def _nyu_test_image(folder: pathlib.Path):
  """The first official test image and its depth (metres), read by d3tf's nyu_png reader."""
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  reader = registry.make_reader("nyu_png", str(folder), "all", missing_splits="all")
  _, image, depth = next(iter(reader.iter_samples()))
  return image, depth


@pytest.mark.parametrize("name", sorted(_SHIPPED))
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
