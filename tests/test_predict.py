"""Tests of prediction with a tiny untrained model: the library, and the CLI once (a subprocess)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from d3tf.experiment import config as config_lib
from d3tf.experiment import predict_lib

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


def _predict_in_process(model, images, out, camera=None, samples=1):
  """The library path of the CLI: returns the camera differences."""
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  predictor = inference.load_predictor(str(model))
  diffs = predict_lib.check_camera(predictor.camera, camera)
  predict_lib.predict_files(predictor, predict_lib.list_inputs(str(images)), str(out),
                            samples=samples)
  return predictor, diffs


def test_folder_with_samples(model_dir, photos, tmp_path):
  """The CLI smoke test (a subprocess)."""
  out = tmp_path / "out"
  result, log = _predict([f"--model={model_dir}", f"--images={photos}", f"--output_dir={out}",
                          "--samples=3", "--flip_average"])
  assert result.returncode == 0, log[-4000:]
  assert "Flip test-time averaging" in log
  _check_outputs(out, "wide", std=True)
  _check_outputs(out, "tall", std=True)
  assert not list(out.glob("notes*"))
  assert "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in log
  assert "differs" not in log


def test_file_and_glob_and_camera_warning(model_dir, photos, tmp_path):
  out = tmp_path / "file"
  _, diffs = _predict_in_process(model_dir / "model.keras", photos / "wide.png", out,
                                 camera=config_lib.CameraConfig("dslr"))
  _check_outputs(out, "wide")
  assert sorted(p.name for p in out.iterdir()) == [
      "wide_depth.npy", "wide_depth_color.png", "wide_depth_mm.png"]
  assert "focal length 35mm (model: 15mm)" in diffs

  out = tmp_path / "glob"
  _, diffs = _predict_in_process(model_dir, f"{photos}/t*.jpg", out,
                                 camera=config_lib.CameraConfig("nyu"))
  _check_outputs(out, "tall")
  assert not (out / "wide_depth.npy").exists()
  assert diffs == []
  # The model's camera with one parameter changed; all-in-focus photos.
  assert predict_lib.check_camera(
      predict_lib_camera(), config_lib.CameraConfig("model", f_number=4.0)) == [
          "f-number 4 (model: 2.8)"]
  assert predict_lib.check_camera(predict_lib_camera(), config_lib.CameraConfig("none")) == [
      "the photos are all-in-focus, but the model was trained on defocused ones"]


def predict_lib_camera():
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  return Camera.nyu()


def test_missing_input_is_named(tmp_path):
  with pytest.raises(ValueError, match="no file matches") as info:
    predict_lib.list_inputs(f"{tmp_path}/none*.png")
  assert f"{tmp_path}/none*.png" in str(info.value)


def test_predict_from_saved_model_and_tflite_exports(model_dir, photos, tmp_path):
  pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the LiteRT interpreter) is not "
                      "installed: pip install -e '.[test]'")
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  exports = tmp_path / "savedmodels"
  for fmt in ("saved_model", "tflite"):
    export_lib.run_export(str(model_dir), "tiny", export_dir=str(exports), samples=1, fmt=fmt)
  depth = {}
  for kind, path, shown in (
      ("saved_model", exports / "tiny", f"Export: {exports / 'tiny' / '1'} (SavedModel"),
      ("tflite", exports / "tiny" / "tflite" / "1" / "model.tflite",
       f"Export: {exports / 'tiny' / 'tflite' / '1' / 'model.tflite'} (TFLite")):
    out = tmp_path / kind
    predictor, _ = _predict_in_process(path, photos, out)
    _check_outputs(out, "wide")
    _check_outputs(out, "tall")
    assert not list(out.glob("*_std*"))  # Exported with one deterministic sample.
    description = artifacts.describe_export(*artifacts.read_export(str(path)))
    assert shown in description and "Training data: procedural" in description
    from d3tf.optics import camera_match  # pylint: disable=g-import-not-at-top
    assert camera_match.describe_camera(predictor.camera) == (
        "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m")
    depth[kind] = np.load(out / "wide_depth.npy")
  np.testing.assert_allclose(depth["tflite"], depth["saved_model"], atol=1e-4)


# ------------------------------------------- the default model: camera-aware, shipped
def _default_models_folder(tmp_path, camera_aware_export):
  """A savedmodels folder holding d3tf_anycamera/1 and /3 (links to the tiny export)."""
  base = tmp_path / "savedmodels" / predict_lib.DEFAULT_MODEL_NAME
  base.mkdir(parents=True)
  (base / "1").symlink_to(camera_aware_export, target_is_directory=True)
  (base / "3").symlink_to(camera_aware_export, target_is_directory=True)
  (base / "7").mkdir()  # No saved_model.pb: not a version to take.
  return base.parent


def test_default_model_is_the_latest_shipped_camera_aware_export(tmp_path, camera_aware_export,
                                                                 monkeypatch, caplog):
  monkeypatch.setenv(predict_lib.SAVEDMODELS_ENV, str(tmp_path / "absent"))
  with pytest.raises(FileNotFoundError, match=r"(?s)No --model given.*"
                     r"absent/d3tf_anycamera is absent.*Pass --model=PATH"):
    predict_lib.default_model_path()
  folder = _default_models_folder(tmp_path, camera_aware_export)
  monkeypatch.setenv(predict_lib.SAVEDMODELS_ENV, str(folder))
  caplog.set_level("INFO", logger="absl")
  path = predict_lib.default_model_path()
  assert path == str(folder / "d3tf_anycamera" / "3")
  assert (f"No --model given: using the camera-aware model {path} (any camera; camera from each "
          "photo's EXIF or the flags)") in caplog.text
  monkeypatch.delenv(predict_lib.SAVEDMODELS_ENV)  # The repository's own savedmodels/.
  assert predict_lib.savedmodels_dir() == _REPO / "savedmodels"


def test_cli_without_model_predicts_with_the_default_model_and_each_photos_camera(
    tmp_path, camera_aware_export):
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  folder = _default_models_folder(tmp_path, camera_aware_export)
  image = np.random.default_rng(2).integers(0, 256, (40, 50, 3), dtype=np.uint8)
  Image.fromarray(image).save(tmp_path / "photo.png")
  env = dict(_env(), **{predict_lib.SAVEDMODELS_ENV: str(folder)})
  args = [str(tmp_path / "photo.png"), "--focal_length_mm=15", "--f_number=2.8",
          "--pixel_pitch_um=5.6", "--focus_distance_m=8", f"--output_dir={tmp_path / 'out'}"]
  result = subprocess.run([sys.executable, "-m", "d3tf.predict", *args], cwd=_REPO, env=env,
                          capture_output=True, text=True, timeout=120)
  log = result.stdout + result.stderr
  assert result.returncode == 0, log
  assert "No --model given: using the camera-aware model" in log
  depth = np.load(tmp_path / "out" / "photo_depth.npy")
  export = inference.load_predictor(str(camera_aware_export))
  np.testing.assert_allclose(depth, export.predict(image, camera=Camera.nyu(8.0))["depth"][0],
                             atol=1e-5)  # The photo's camera (the flags), not the default.
  assert np.abs(depth - export.predict(image)["depth"][0]).mean() > 0.05
  # Without the default model: refused, naming the folder and --model.
  env[predict_lib.SAVEDMODELS_ENV] = str(tmp_path / "absent")
  result = subprocess.run([sys.executable, "-m", "d3tf.predict", *args], cwd=_REPO, env=env,
                          capture_output=True, text=True, timeout=120)
  log = result.stdout + result.stderr
  assert result.returncode != 0 and "d3tf_anycamera is absent" in log and "--model=PATH" in log
