"""The DFD protocol: views held out by capture time (--dfd_val_views), the aperture's camera,
validation batches in training, and evaluate --split=validation (issue 14)."""

import datetime

import keras
import numpy as np
from PIL import Image
import pytest

from d3tf import artifacts
from d3tf import flags as flags_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import eval_lib
from d3tf.experiment import task as task_lib
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera

_SECONDS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0)


def _stamp(seconds):
  moment = datetime.datetime(2018, 4, 26, 17, 0, 0) + datetime.timedelta(seconds=seconds)
  return moment.isoformat(timespec="microseconds")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """Six views of 40 x 70 pixels at both apertures, depth maps 0.1 s after their photos."""
  root = tmp_path_factory.mktemp("dfd_indoor")
  rng = np.random.default_rng(0)
  for aperture in ("N2_8", "N8"):
    rgb, depth = root / aperture / "rgb" / "train", root / aperture / "depth" / "train"
    rgb.mkdir(parents=True)
    depth.mkdir(parents=True)
    for t in _SECONDS:
      Image.fromarray(rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(
          rgb / f"{_stamp(t)}.JPG", "JPEG")
      Image.fromarray(rng.integers(800, 5000, (40, 70)).astype(np.uint16)).save(
          depth / f"{_stamp(t + 0.1)}.png")
  return root


def _config(tree, **data):
  return config_lib.ExperimentConfig.from_dict({
      "data": {"dataset": "dfd", "data_path": str(tree), "crop_size": 32, "batch_size": 2,
               **data},
      "model": {"size": "tiny"}, "training": {"validation_steps": 4}}).resolved().validate()


def test_the_aperture_fixes_the_camera(tree):
  assert _config(tree).build_camera() == Camera.dslr_d200_35mm(f_number=2.8)
  assert _config(tree, dfd_aperture="auto").data.dfd_aperture == "N2_8"
  assert _config(tree, dfd_aperture="N8").build_camera() == Camera.dslr_d200_35mm(f_number=8.0)
  config = config_lib.ExperimentConfig.from_dict({
      "data": {"dataset": "dfd", "data_path": str(tree), "dfd_aperture": "N8"},
      "camera": {"preset": "dslr", "f_number": 8.0}})
  assert config.validate().build_camera().f_number == 8.0  # Agrees: accepted.
  with pytest.raises(config_lib.ConfigError, match=r"camera.f_number=2.8 contradicts "
                     r"data.dfd_aperture=N8: those photos were taken at f/8") as info:
    config.replace(camera={"f_number": 2.8}).validate()
  assert "--f_number=2.8 contradicts --dfd_aperture=N8" in flags_lib.flag_message(info.value)


def test_a_real_photo_model_records_no_psf(tree, tmp_path):
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(_config(tree))
  train_lib.write_metadata(str(tmp_path), task, D3NetConfig.tiny(), {})
  meta = artifacts.read_metadata(tmp_path)
  assert meta.psf is None and meta.extra["real_defocus"] is True  # Nothing was rendered.
  assert "35 mm" in meta.describe() and "(real blur)" in meta.describe()
  rendered = task_lib.DepthTask(config_lib.ExperimentConfig.from_dict({
      "data": {"dataset": "procedural", "crop_size": 32, "batch_size": 2},
      "model": {"size": "tiny"}, "render": {"psf": "disk"}}).resolved().validate())
  train_lib.write_metadata(str(tmp_path / "rendered"), rendered, D3NetConfig.tiny(), {})
  meta = artifacts.read_metadata(tmp_path / "rendered")
  assert meta.psf == "disk" and "(disk PSF)" in meta.describe()


def test_bad_val_views_are_refused_naming_the_flag(tree):
  with pytest.raises(config_lib.ConfigError, match="data.dfd_val_views must be >= 0, got -2"
                     ) as info:
    _config(tree, dfd_val_views=-2)
  assert "--dfd_val_views must be >= 0, got -2" in flags_lib.flag_message(info.value)
  with pytest.raises(config_lib.ConfigError, match="applies to data.dataset=dfd"):
    config_lib.ExperimentConfig.from_dict({"data": {"dfd_val_views": 4}}).validate()
  with pytest.raises(config_lib.ConfigError, match="give one of them"):
    _config(tree, dfd_val_views=2, val_data_path=str(tree))
  task = task_lib.DepthTask(_config(tree, dfd_val_views=6))
  with pytest.raises(ValueError, match=r"--dfd_val_views=6 .* between 0 and 5: .* has 6 views"):
    task.num_train_examples  # pylint: disable=pointless-statement
  with pytest.raises(config_lib.ConfigError, match="--dfd_val_views must be an integer >= 0"):
    eval_lib.EvalConfig(model="m", dataset="dfd", data_path=str(tree), dfd_val_views=-1
                        ).validate()


def test_training_validates_on_the_latest_views_nearly_whole(tree):
  task = task_lib.DepthTask(_config(tree, dfd_val_views=2, dfd_aperture="N8"))
  assert task.num_train_examples == 4
  assert [r.split for r in task.readers] == ["train"]
  assert task.readers[0].aperture == "N8"
  batches = list(task.build_inputs("validation"))
  val_reader = task.readers[-1]
  assert val_reader.split == "validation"
  assert [s.name for s in val_reader.samples()] == [_stamp(40.0), _stamp(50.0)]
  assert len(batches) == 1  # 2 views, batch 2: one batch, even with validation_steps=4.
  image, depth = batches[0]
  assert image.shape == (2, 32, 64, 3) and depth.shape == (2, 32, 64, 1)  # 40x70 -> 32x64.
  view, view_depth = val_reader.load(0)
  np.testing.assert_allclose(depth[0, ..., 0], view_depth[4:36, 3:67], rtol=1e-6)
  np.testing.assert_allclose(image[0], view[4:36, 3:67] / 255.0, atol=1 / 255)


def test_without_holdout_dfd_validates_on_its_test_folder_or_nothing(tree):
  task = task_lib.DepthTask(_config(tree))
  assert task.num_train_examples == 6
  assert task.build_inputs("validation") is None  # No test folder here.


def _model(path, camera, camera_aware=False):
  keras.utils.set_random_seed(0)
  path.mkdir()
  model_config = D3NetConfig.tiny(camera_aware=camera_aware)
  build_d3net(model_config).save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=camera, model_config=model_config, train_data="dfd"))
  return path


@pytest.mark.parametrize("camera_aware", [False, True])
def test_evaluate_scores_the_held_out_views(tree, tmp_path, camera_aware, caplog):
  model = _model(tmp_path / "run", Camera.dslr_d200_35mm(f_number=8.0), camera_aware)
  out = tmp_path / "val.json"
  with caplog.at_level("WARNING"):
    report = eval_lib.run_evaluation(eval_lib.EvalConfig(
        model=str(model), dataset="dfd", data_path=str(tree), split="validation",
        dfd_val_views=2, output_json=str(out)))
  assert "differs from the model's training camera" not in caplog.text
  assert report["dfd_aperture"] == "N8"  # auto: the aperture of the model's f-number.
  assert report["split"] == "validation" and report["dfd_val_views"] == 2
  assert report["num_images"] == 2
  assert [m["name"] for m in report["per_image"]] == [_stamp(40.0), _stamp(50.0)]
  assert report["camera"]["f_number"] == 8.0
  train = eval_lib.run_evaluation(eval_lib.EvalConfig(
      model=str(model), dataset="dfd", data_path=str(tree), split="train", dfd_val_views=2,
      dfd_aperture="N2_8", output_json=str(tmp_path / "train.json")))
  assert train["num_images"] == 4 and train["dfd_aperture"] == "N2_8"


def test_evaluate_validation_without_holdout_is_refused(tree, tmp_path):
  model = _model(tmp_path / "run", Camera.dslr_d200_35mm(f_number=2.8))
  with pytest.raises(ValueError, match=r"give --dfd_val_views > 0"):
    eval_lib.run_evaluation(eval_lib.EvalConfig(
        model=str(model), dataset="dfd", data_path=str(tree), split="validation",
        output_json=str(tmp_path / "x.json")))


def test_init_from_warns_when_its_camera_is_another(tmp_path, caplog):
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  source = _model(tmp_path / "pretrained", Camera.dslr_d200_35mm(f_number=2.8))
  target = build_d3net(D3NetConfig.tiny())
  # absl's logger keeps the level a flag parse in an earlier test gave it: set it here too.
  with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
    train_lib.init_from(target, str(source), Camera.dslr_d200_35mm(f_number=2.8),
                        check_camera=True)
  assert "the same camera as this run" in caplog.text and "another camera" not in caplog.text
  caplog.clear()
  with caplog.at_level("WARNING"), caplog.at_level("WARNING", logger="absl"):
    train_lib.init_from(target, str(source), Camera.dslr_d200_35mm(f_number=8.0),
                        check_camera=True)
  assert "was trained on another camera than this run's: f-number 8 (init_from: 2.8)" in (
      caplog.text)


def test_data_check_reads_the_aperture_and_the_held_out_views(tree):
  from d3tf.data import check  # pylint: disable=g-import-not-at-top
  reader = check.make_reader("dfd", str(tree), "validation", 0.001, dfd_aperture="N8",
                             dfd_val_views=2)
  assert reader.aperture == "N8" and [s.name for s in reader.samples()] == [_stamp(40.0),
                                                                            _stamp(50.0)]
  assert len(check.make_reader("dfd", str(tree), "all", 0.001, dfd_val_views=2)) == 6


def test_resuming_a_run_from_before_the_dfd_fields_does_not_warn(tmp_path, caplog):
  import json  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.ExperimentConfig().resolved()
  old = config.to_dict()
  del old["data"]["dfd_aperture"], old["data"]["dfd_val_views"]  # An older config.json.
  (tmp_path / train_lib.CONFIG_FILENAME).write_text(json.dumps(old))
  with caplog.at_level("WARNING"):
    train_lib._write_config(str(tmp_path), config, resuming=True)  # pylint: disable=protected-access
  assert "differs" not in caplog.text
  changed = config.replace(training={"learning_rate": 0.5})
  with caplog.at_level("WARNING"):
    train_lib._write_config(str(tmp_path), changed, resuming=True)  # pylint: disable=protected-access
  assert "differs" in caplog.text and "training.learning_rate" in caplog.text
