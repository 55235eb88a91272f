"""Tests of ``python -m d3tf.predict`` (subprocesses) with a tiny untrained model."""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
_SIZES = {"wide": (50, 70), "tall": (45, 33)}  # (H, W): not multiples of 32.


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _predict(args):
  result = subprocess.run([sys.executable, "-m", "d3tf.predict", *args], cwd=_REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
  return result, result.stdout + result.stderr


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A model_dir as d3tf.train writes it: model.keras + d3tf_metadata.json (NYU camera)."""
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  path = tmp_path_factory.mktemp("model")
  config = models.D3NetConfig.tiny()
  models.build_d3net(config).save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=Camera.nyu(), model_config=config, train_data="procedural"))
  return path


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  folder = tmp_path_factory.mktemp("photos")
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, _SIZES["wide"] + (3,), dtype=np.uint8)).save(
      folder / "wide.png")
  Image.fromarray(rng.integers(0, 256, _SIZES["tall"] + (3,), dtype=np.uint8)).save(
      folder / "tall.jpg", quality=95)
  (folder / "notes.txt").write_text("not an image")
  return folder


def _check_outputs(out, name, std=False):
  height, width = _SIZES[name]
  depth = np.load(out / f"{name}_depth.npy")
  assert depth.dtype == np.float32 and depth.shape == (height, width)
  assert np.all(np.isfinite(depth)) and np.all(depth > 0) and np.all(depth < 10.0)
  with Image.open(out / f"{name}_depth_mm.png") as png:
    millimetres = np.asarray(png)
  assert millimetres.dtype == np.uint16 and millimetres.shape == (height, width)
  np.testing.assert_array_equal(millimetres, np.round(depth * 1000.0).astype(np.uint16))
  with Image.open(out / f"{name}_depth_color.png") as color:
    assert color.mode in ("RGB", "RGBA") and color.width > width  # Image + colour bar.
  if std:
    depth_std = np.load(out / f"{name}_depth_std.npy")
    assert depth_std.shape == (height, width) and np.all(depth_std >= 0)
    assert depth_std.mean() > 0
    assert (out / f"{name}_depth_std_color.png").is_file()
    # MC dropout only: the total std is the epistemic one; no aleatoric part.
    np.testing.assert_array_equal(np.load(out / f"{name}_epistemic_std.npy"), depth_std)
    assert (out / f"{name}_epistemic_std_color.png").is_file()
    assert not list(out.glob(f"{name}_aleatoric*"))


def test_folder_with_samples(model_dir, photos, tmp_path):
  out = tmp_path / "out"
  result, log = _predict([f"--model={model_dir}", f"--input={photos}", f"--output_dir={out}",
                          "--samples=3"])
  assert result.returncode == 0, log[-4000:]
  _check_outputs(out, "wide", std=True)
  _check_outputs(out, "tall", std=True)
  assert not list(out.glob("notes*"))
  assert "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in log
  assert "differs" not in log


def test_file_and_glob_and_camera_warning(model_dir, photos, tmp_path):
  out = tmp_path / "file"
  result, log = _predict([f"--model={model_dir / 'model.keras'}", f"--input={photos / 'wide.png'}",
                          f"--output_dir={out}", "--camera=dslr"])
  assert result.returncode == 0, log[-4000:]
  _check_outputs(out, "wide")
  assert sorted(p.name for p in out.iterdir()) == [
      "wide_depth.npy", "wide_depth_color.png", "wide_depth_mm.png"]
  assert "differs from the model's training camera" in log
  assert "focal length 35mm (model: 15mm)" in log

  out = tmp_path / "glob"
  result, log = _predict([f"--model={model_dir}", f"--input={photos}/t*.jpg",
                          f"--output_dir={out}", "--camera=nyu"])
  assert result.returncode == 0, log[-4000:]
  _check_outputs(out, "tall")
  assert not (out / "wide_depth.npy").exists()
  assert "matches the model's" in log and "differs" not in log


def test_missing_input_is_named(model_dir, tmp_path):
  result, log = _predict([f"--model={model_dir}", f"--input={tmp_path}/none*.png",
                          f"--output_dir={tmp_path}/out"])
  assert result.returncode != 0
  assert f"{tmp_path}/none*.png" in log and "no file matches" in log


def test_predict_from_saved_model_and_tflite_exports(model_dir, photos, tmp_path):
  pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the LiteRT interpreter) is not "
                      "installed: pip install -e '.[test]'")
  exports = tmp_path / "savedmodels"
  for extra in ([], ["--format=tflite"]):
    result = subprocess.run(
        [sys.executable, "-m", "d3tf.export", f"--model={model_dir}", "--name=tiny",
         f"--export_dir={exports}", "--samples=1", *extra], cwd=_REPO, env=_env(),
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
  depth = {}
  for kind, path, shown in (
      ("saved_model", exports / "tiny", f"Export: {exports / 'tiny' / '1'} (SavedModel"),
      ("tflite", exports / "tiny" / "tflite" / "1" / "model.tflite",
       f"Export: {exports / 'tiny' / 'tflite' / '1' / 'model.tflite'} (TFLite")):
    out = tmp_path / kind
    result, log = _predict([f"--model={path}", f"--input={photos}", f"--output_dir={out}"])
    assert result.returncode == 0, log[-4000:]
    _check_outputs(out, "wide")
    _check_outputs(out, "tall")
    assert not list(out.glob("*_std*"))  # Exported with one deterministic sample.
    assert shown in log and "Training data: procedural" in log
    assert "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in log
    depth[kind] = np.load(out / "wide_depth.npy")
  np.testing.assert_allclose(depth["tflite"], depth["saved_model"], atol=1e-4)
