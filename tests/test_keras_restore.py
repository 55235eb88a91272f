"""A SavedModel export back into a Keras model (d3tf.serving.keras_restore) and --init_from it."""

import json
import shutil

import numpy as np
import pytest

from d3tf import artifacts
from d3tf import inference
from d3tf.experiment import average_lib
from d3tf.experiment import train_lib
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.serving import exporter
from d3tf.serving import keras_restore


@pytest.fixture(scope="module")
def scrambled(camera_aware_model_dir, tmp_path_factory):
  """(model, export base folder): the tiny camera-aware model, every variable random, exported.

  Random values everywhere (the BatchNormalization statistics too, variances positive) so that
  a variable restored into the wrong place, or left at its initial value, shows.
  """
  model, path = inference.load_model(camera_aware_model_dir)
  rng = np.random.default_rng(7)
  for variable in model.variables:
    value = rng.normal(0.0, 0.1, tuple(variable.shape)).astype(np.float32)
    if variable.path.endswith("moving_variance"):
      value = np.abs(value) + 0.5
    variable.assign(value)
  base = tmp_path_factory.mktemp("restore_exports") / "anycam"
  exporter.export_saved_model(model, artifacts.read_metadata(path), base, samples=1,
                              source=str(path))
  return model, base


def test_an_export_comes_back_as_the_same_keras_model(scrambled):
  model, base = scrambled
  restored, meta = keras_restore.keras_model_from_export(base)  # The base folder: version 1.
  assert meta.model_config["camera_aware"] and meta.export["version"] == 1
  assert len(restored.variables) == len(model.variables)
  for ours, theirs in zip(model.variables, restored.variables):
    assert theirs.name == ours.name
    np.testing.assert_array_equal(np.asarray(theirs), np.asarray(ours), err_msg=ours.path)
  images = np.random.default_rng(0).random((2, 32, 64, 3)).astype(np.float32)
  cameras = np.array([[0.015, 2.8, 5.6e-6, 2.0], [0.035, 2.0, 36e-6, 1.5]], np.float32)
  inputs = {"image": images, "camera": cameras}
  np.testing.assert_allclose(restored(inputs, training=False), model(inputs, training=False),
                             rtol=0, atol=1e-6)


def test_init_from_takes_an_export(scrambled, caplog):
  model, base = scrambled
  target = build_d3net(D3NetConfig.from_dict(dict(artifacts.read_export(base)[1].model_config)))
  with caplog.at_level("INFO"), caplog.at_level("INFO", logger="absl"):
    train_lib.init_from(target, str(base / "1"), artifacts.read_export(base)[1].camera,
                        check_camera=True)
  for ours, theirs in zip(model.variables, target.variables):
    if "seed_generator" in ours.path:
      continue  # Dropout's random state: init_from copies weights, as from a .keras file.
    np.testing.assert_array_equal(np.asarray(theirs), np.asarray(ours), err_msg=ours.path)
  assert "the same camera as this run" in caplog.text


def test_an_export_averages_with_a_keras_file(scrambled, camera_aware_model_dir, tmp_path):
  model, base = scrambled  # The scrambled weights, exported; their run folder is another model.
  original, path = inference.load_model(camera_aware_model_dir)
  out = tmp_path / "soup"
  written = average_lib.run_average([str(base), str(path)], str(out))
  assert written["ingredients"][0]["model"] == str(base / "1")
  averaged, _ = inference.load_model(str(out))
  for w, a, b in zip(averaged.get_weights(), model.get_weights(), original.get_weights()):
    np.testing.assert_allclose(w, (a + b) / 2, rtol=1e-5, atol=1e-6)
  meta = artifacts.read_metadata(str(out))
  assert meta.export is None and meta.model_config["camera_aware"]
  assert "export" not in json.loads((out / "d3tf_metadata.json").read_text())
  assert not (out / "config.json").exists()  # An export has no run config to carry over.


def _copy_with_metadata(base, tmp_path, change):
  """A copy of export version 1 whose metadata JSON ``change`` edits in place."""
  copy = tmp_path / "copy" / "1"
  shutil.copytree(base / "1", copy)
  meta_path = copy / "assets.extra" / artifacts.METADATA_FILENAME
  data = json.loads(meta_path.read_text())
  change(data)
  meta_path.write_text(json.dumps(data))
  return copy


def test_an_export_of_another_network_is_refused_by_name(scrambled, tmp_path):
  _, base = scrambled

  def wider(data):
    data["model_config"]["growth_rate"] += 4
  copy = _copy_with_metadata(base, tmp_path, wider)
  with pytest.raises(ValueError, match=r"model variable \d+ \(.+\) has shape .* in the export"):
    keras_restore.keras_model_from_export(copy)
  with pytest.raises(ValueError, match=r"training.init_from=.*copy/1: .*model variable"):
    train_lib.init_from(build_d3net(D3NetConfig.tiny()), str(copy))


def test_exports_without_weights_or_config_are_refused(scrambled, tmp_path):
  _, base = scrambled

  def no_config(data):
    data["model_config"] = None
  copy = _copy_with_metadata(base, tmp_path, no_config)
  with pytest.raises(ValueError, match="no model_config in the metadata"):
    keras_restore.keras_model_from_export(copy)
  tflite = tmp_path / "lite" / "1"
  tflite.mkdir(parents=True)
  (tflite / "model.tflite").write_bytes(b"not read")
  shutil.copy(base / "1" / "assets.extra" / artifacts.METADATA_FILENAME, tflite)
  with pytest.raises(ValueError, match="a tflite export; only a SavedModel export"):
    keras_restore.keras_model_from_export(tflite)
  with pytest.raises(FileNotFoundError, match="no d3tf export there"):
    keras_restore.keras_model_from_export(tmp_path)
