"""Tests of each photo's camera from its EXIF (written here with Pillow), flags and the model."""

import logging
import math
import os
import pathlib
import subprocess
import sys

from absl import app
from absl import flags
from absl.testing import flagsaver
import numpy as np
from PIL import ExifTags
from PIL import Image
from PIL import TiffImagePlugin
import pytest

from d3tf import flags as flags_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import predict_lib
from d3tf.optics import Camera
from d3tf.optics import exif_camera
from d3tf.optics import photo_camera
from d3tf.optics import sensor_sizes

flags_lib.define_predict_flags()
_REPO = pathlib.Path(__file__).resolve().parents[1]
_R = TiffImagePlugin.IFDRational
# EXIF tags: IFD0 Make, Model; Exif IFD the rest.
_MAKE, _MODEL = 0x010F, 0x0110
_FNUMBER, _SUBJECT_DISTANCE, _FOCAL_LENGTH = 0x829D, 0x9206, 0x920A
_PIXEL_X, _PIXEL_Y, _FP_X_RES, _FP_UNIT = 0xA002, 0xA003, 0xA20E, 0xA210
_FOCAL_35MM, _DISTANCE_RANGE = 0xA405, 0xA40C


def _photo(path, size=(24, 16), make=None, model=None, **tags):
  """Writes a tiny JPEG (``size`` = width, height) with EXIF: ``tags`` by hex name, e.g. t920A."""
  exif = Image.Exif()
  if make:
    exif[_MAKE] = make
  if model:
    exif[_MODEL] = model
  exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
  for name, value in tags.items():
    exif_ifd[int(name[1:], 16)] = value
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
      path, exif=exif, quality=95)
  return str(path)


def test_exif_values_are_read(tmp_path):
  # 50 mm, f/1.8, focus 2.5 m, 200 px/cm on the sensor at 24 px (the photo's width): 50 um.
  path = _photo(tmp_path / "a.jpg", t920A=_R(50, 1), t829D=_R(18, 10), t9206=_R(5, 2),
                tA20E=_R(200, 1), tA210=3, tA002=24)
  found = exif_camera.read_exif_camera(path)
  assert found.missing == {} and found.size == (24, 16)
  assert found.values == {"focal_length_mm": (50.0, "EXIF FocalLength"),
                          "f_number": (1.8, "EXIF FNumber"),
                          "pixel_pitch_um": (pytest.approx(50.0), "EXIF FocalPlaneXResolution"),
                          "focus_distance_m": (2.5, "EXIF SubjectDistance")}
  camera = photo_camera.resolve(path).camera()
  # f-number from the APEX ApertureValue (3: f/2.83) when FNumber is absent; a focal-plane
  # resolution without an absolute unit (1) gives no pitch.
  path_b = _photo(tmp_path / "b.jpg", t9202=_R(3, 1), tA20E=_R(200, 1), tA210=1)
  found = exif_camera.read_exif_camera(path_b)
  assert found.values["f_number"] == (pytest.approx(2 ** 1.5), "EXIF ApertureValue")
  assert found.missing["pixel_pitch_um"].startswith("FocalPlaneResolutionUnit 1 is not a length")
  assert camera.to_dict() == pytest.approx(dict(
      focal_length_m=0.05, f_number=1.8, pixel_pitch_m=50e-6, focus_distance_m=2.5))


@pytest.mark.parametrize("tags, value, source", [
    ({"tA40C": 3}, None, "no SubjectDistance in the EXIF (SubjectDistanceRange: distant view)"),
    ({"t9206": _R(0, 1)}, None, "EXIF SubjectDistance 0.0 means unknown"),
    ({"t9206": _R(0xFFFFFFFF, 1)}, exif_camera.INFINITE_FOCUS_M,
     "EXIF SubjectDistance infinity (taken as 1e+06 m)"),
], ids=["absent", "zero", "infinite"])
def test_subject_distance_absent_zero_and_infinite(tmp_path, tags, value, source):
  path = _photo(tmp_path / "d.jpg", t920A=_R(35, 1), **tags)
  focus = photo_camera.resolve(path).values["focus_distance_m"]
  assert focus == photo_camera.CameraValue(value, source)


def test_focal_plane_pitch_is_rescaled_to_a_downsampled_photo(tmp_path):
  # Full frame 36 mm over 5616 px (6.41 um), the photo downsampled to 24 px: 1500 um. Portrait
  # (16 x 24 as stored) gives the same: widths are along the long side.
  inch_res = _R(5616 * 254, 360)  # px per inch: 5616 px / (36 mm / 25.4 mm).
  for size in ((24, 16), (16, 24)):
    path = _photo(tmp_path / f"{size[0]}.jpg", size=size, tA20E=inch_res, tA210=2,
                  tA002=5616, tA003=3744)
    value, source = exif_camera.read_exif_camera(path).values["pixel_pitch_um"]
    assert value == pytest.approx(36e3 / 24) and source == (
        "EXIF FocalPlaneXResolution, rescaled from 5616 to 24 px")


def test_sensor_table_and_35mm_equivalent(tmp_path):
  assert sensor_sizes.lookup("NIKON CORPORATION", "NIKON D200").width_mm == 23.6
  assert sensor_sizes.lookup("Canon", "Canon EOS 5D Mark II\x00").name == "Canon EOS 5D Mark II"
  assert sensor_sizes.lookup("SONY", "ILCE-7M3").width_mm == 35.6
  assert sensor_sizes.lookup("Canon", "PowerShot X") is None and sensor_sizes.lookup("", "") is None
  # The DFD dataset's D200 photos, 645 px wide: 36.6 um (its parameter file: 36 um).
  path = _photo(tmp_path / "dfd.jpg", size=(32, 21), make="NIKON CORPORATION",
                model="NIKON D200", t920A=_R(35, 1))
  value, source = exif_camera.read_exif_camera(path).values["pixel_pitch_um"]
  assert value == pytest.approx(23.6e3 / 32)
  assert source == "sensor table: Nikon D200 23.6 mm wide / 32 px"
  assert 23.6e3 / 645 == pytest.approx(36.6, abs=0.05)
  # A phone: 4.2 mm, 26 mm equivalent; an unknown camera without it has no pitch.
  path = _photo(tmp_path / "phone.jpg", size=(32, 24), make="Apple", model="iPhone 13",
                t920A=_R(42, 10), tA405=26)
  value, source = exif_camera.read_exif_camera(path).values["pixel_pitch_um"]
  assert value == pytest.approx(math.hypot(36, 24) * 4.2 / 26 / 40 * 1e3)
  assert source.startswith("EXIF FocalLengthIn35mmFilm 26 mm") and "approximate" in source
  path = _photo(tmp_path / "other.jpg", make="Apple", model="iPhone 13")
  assert exif_camera.read_exif_camera(path).missing["pixel_pitch_um"] == (
      "no FocalPlaneXResolution; camera Apple 'iPhone 13' not in the sensor table; "
      "no FocalLengthIn35mmFilm")


def test_flags_override_exif_and_the_model_fills_the_rest(tmp_path, caplog):
  path = _photo(tmp_path / "p.jpg", t920A=_R(50, 1), t829D=_R(18, 10))
  cameras = predict_lib.read_photo_cameras(
      [path], config_lib.CameraConfig("model", f_number=4.0))
  # absl's logger keeps the level an earlier test's flag parsing set (--verbosity): INFO here.
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")
  [photo] = predict_lib.check_photo_cameras(cameras, Camera.nyu())
  assert {n: (v.value, v.source) for n, v in photo.values.items()} == {
      "focal_length_mm": (50.0, "EXIF FocalLength"), "f_number": (4.0, "--f_number"),
      "pixel_pitch_um": (pytest.approx(5.6), "model metadata"),
      "focus_distance_m": (2.0, "model metadata")}
  assert (f"Camera of {path}: focal length 50 mm (EXIF FocalLength), f-number 4 (--f_number), "
          "pixel pitch 5.6 um (model metadata), focus distance 2 m (model metadata)"
          in caplog.text)
  # The mismatch warning, with the photo's values.
  assert f"The camera of photo {path} differs" in caplog.text
  assert "focal length 50mm (model: 15mm); f-number 4 (model: 2.8)" in caplog.text
  # A preset states all four values (EXIF unused); "none": no per-photo camera.
  [photo] = predict_lib.read_photo_cameras([path], config_lib.CameraConfig("dslr",
                                                                           f_number=4.0))
  assert [v.source for v in photo.values.values()] == [
      "--camera=dslr", "--f_number", "--camera=dslr", "--camera=dslr"]
  assert predict_lib.read_photo_cameras([path], config_lib.CameraConfig("none")) is None
  # "off": the EXIF is not read, the model's camera is used.
  cameras = predict_lib.read_photo_cameras([path], config_lib.CameraConfig("model"), "off")
  assert predict_lib.check_photo_cameras(cameras, Camera.nyu())[0].camera() == Camera.nyu()


def test_missing_or_implausible_values_are_refused_naming_file_and_flag(tmp_path):
  path = _photo(tmp_path / "p.jpg", t920A=_R(50, 1), t829D=_R(18, 10))
  with pytest.raises(ValueError) as info:
    predict_lib.read_photo_cameras([path], config_lib.CameraConfig("model"), "require")
  assert str(info.value) == (
      f"--camera_from_exif=require: {path}: the photo's camera is incomplete: no pixel pitch "
      "(no FocalPlaneXResolution; no Make/Model for the sensor table; no "
      "FocalLengthIn35mmFilm); no focus distance (no SubjectDistance in the EXIF). Give "
      "--pixel_pitch_um and --focus_distance_m")
  stated = config_lib.CameraConfig("model", pixel_pitch_um=5.0, focus_distance_m=3.0)
  assert predict_lib.read_photo_cameras([path], stated, "require")[0].complete
  # No model camera to fall back on: refused where the model needs one (camera-aware).
  cameras = predict_lib.read_photo_cameras([path], config_lib.CameraConfig("model"))
  with pytest.raises(ValueError, match=f"{path}: .* Give --pixel_pitch_um and "
                     "--focus_distance_m"):
    predict_lib.check_photo_cameras(cameras, None, needs_camera=True)
  assert predict_lib.check_photo_cameras(cameras, None)[0].missing() == [
      "pixel_pitch_um", "focus_distance_m"]
  # An implausible EXIF value names the photo, the source and the flags.
  path = _photo(tmp_path / "bad.jpg", t920A=_R(50, 1), t9206=_R(1, 100))
  cameras = predict_lib.read_photo_cameras([path], config_lib.CameraConfig("model"))
  with pytest.raises(ValueError, match=f"{path}: Camera parameter focus_distance_m must be "
                     "beyond the focal length .*focus distance from EXIF SubjectDistance"):
    predict_lib.check_photo_cameras(cameras, Camera.nyu())


def test_photo_arguments_and_their_errors(tmp_path):
  for name in ("a.jpg", "b.jpg"):
    _photo(tmp_path / name)
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--model=m"])
    with pytest.raises(app.UsageError, match="No photos"):
      flags_lib.photo_arguments_from_flags([])
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--model=m", f"--images={tmp_path}", "--camera=dslr"])
    arguments = flags_lib.photo_arguments_from_flags([str(tmp_path / "a.jpg"), "nothing*.jpg"])
    assert flags_lib.camera_from_exif_from_flags() == "off"
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["prog", "--model=m", "--camera=nyu", "--camera_from_exif=require"])
    with pytest.raises(app.UsageError, match="require contradicts --camera=nyu"):
      flags_lib.camera_from_exif_from_flags()
  with pytest.raises(ValueError, match="photo argument 'nothing\\*.jpg': no such file"):
    predict_lib.list_photos(arguments)
  # A file given twice (by name and through its folder) is predicted once.
  assert predict_lib.list_photos([arguments[0], arguments[2]]) == [
      str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")]


def _predict(args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  result = subprocess.run([sys.executable, "-m", "d3tf.predict", *args], cwd=_REPO, env=env,
                          capture_output=True, text=True, timeout=120)
  return result, result.stdout + result.stderr


@pytest.mark.slow
def test_cli_positional_photos_with_exif(tmp_path):
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  config = models.D3NetConfig.tiny()
  models.build_d3net(config).save(tmp_path / "model.keras")
  artifacts.write_metadata(tmp_path, artifacts.Metadata.for_training(
      camera=Camera.nyu(), model_config=config, train_data="procedural"))
  (tmp_path / "folder").mkdir()
  exif = _photo(tmp_path / "exif.jpg", size=(32, 24), t920A=_R(50, 1))
  _photo(tmp_path / "folder" / "f.jpg")
  _photo(tmp_path / "g1.jpg", size=(20, 16))
  out = tmp_path / "out"
  result, log = _predict([exif, str(tmp_path / "folder"), str(tmp_path / "g*.jpg"),
                          f"--model={tmp_path}", f"--output_dir={out}"])
  assert result.returncode == 0, log[-4000:]
  assert sorted(p.name for p in out.glob("*_depth.npy")) == [
      "exif_depth.npy", "f_depth.npy", "g1_depth.npy"]
  assert np.load(out / "g1_depth.npy").shape == (16, 20)
  assert f"Camera of {exif}: focal length 50 mm (EXIF FocalLength), f-number 2.8 (model" in log
  assert f"The camera of photo {exif} differs" in log and "focal length 50mm (model: 15mm)" in log
  assert log.count("differs") == 1  # The other photos have no EXIF: the model's camera.
  # --camera_from_exif=require refuses before the model is loaded, in one line.
  result, log = _predict([exif, "--model=nonexistent", "--camera_from_exif=require"])
  last = result.stderr.strip().splitlines()[-1]
  assert result.returncode == 1 and last.startswith("d3tf.predict: error: "), log[-3000:]
  assert f"{exif}: the photo's camera is incomplete" in last and "--f_number" in last, last
