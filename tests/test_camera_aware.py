"""The camera-aware model: camera ranges, the thin-lens head, training on drawn cameras."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from d3tf import artifacts
from d3tf import inference
from d3tf import models
from d3tf.experiment import config as config_lib
from d3tf.experiment import predict_lib
from d3tf.experiment import task as task_lib
from d3tf.experiment import train_lib
from d3tf.optics import Camera
from d3tf.optics import camera_range as camera_range_lib
from d3tf.optics import photo_camera
from d3tf.optics import render_defocus

_CAMERAS = (Camera.nyu(), Camera.nyu(focus_distance_m=8.0),
            Camera.dslr_d200_35mm(f_number=2.0, focus_distance_m=1.0),
            Camera(focal_length_m=5.7e-3, f_number=1.8, pixel_pitch_m=2.4e-6,
                   focus_distance_m=0.6))


def _vectors(cameras=_CAMERAS):
  return np.stack([camera_range_lib.camera_vector(c) for c in cameras])


def test_thin_lens_layer_round_trips_depth_through_signed_blur():
  depth = np.array([0.5, 0.9, 1.7, 3.0, 6.5, 9.5], np.float32).reshape(1, 1, 6, 1)
  vectors = _vectors()
  depths = np.repeat(depth, len(vectors), axis=0)
  blur = models.camera_layers.signed_blur_px(depths, vectors)
  for i, camera in enumerate(_CAMERAS):  # The layer's formula is the optics module's.
    np.testing.assert_allclose(blur[i, 0, :, 0], camera.signed_blur_px(depth[0, 0, :, 0]),
                               rtol=1e-4, atol=1e-5)
  back = models.ThinLensDepth(min_depth_m=0.1, max_depth_m=10.0)([blur, vectors])
  np.testing.assert_allclose(back, depths, rtol=1e-4)


def test_thin_lens_layer_clamps_beyond_infinity_and_leaks_gradients():
  vector = _vectors()[:1]  # NYU at 2 m: infinity is at K / 2 px.
  far_blur = float(camera_range_lib.blur_scale_px(vector.astype(np.float64))[0]) * 0.5
  blur = tf.constant([far_blur * 2.0, far_blur * 0.999, -1e4], tf.float32)[None, None, :, None]
  layer = models.ThinLensDepth(min_depth_m=0.1, max_depth_m=10.0, leak=0.01)
  with tf.GradientTape() as tape:
    tape.watch(blur)
    depth = layer([blur, vector])
  np.testing.assert_allclose(depth.numpy()[0, 0, :, 0], [10.0, 10.0, 0.1], rtol=1e-5)
  grad = tape.gradient(depth, blur).numpy()[0, 0, :, 0]
  assert np.all(np.isfinite(grad)) and np.all(grad != 0)
  config = layer.get_config()
  assert models.ThinLensDepth.from_config(config).get_config() == config


def test_camera_draws_are_deterministic_within_range_and_cover_the_families():
  camera_range = camera_range_lib.get_range("anycamera")
  draw = lambda seed, i: camera_range_lib.sample_camera_vector(camera_range, [seed, 7], i).numpy()
  vectors = np.stack([draw(3, i) for i in range(80)])
  np.testing.assert_array_equal(vectors[17], draw(3, 17))  # By (seed, index) alone.
  assert not np.array_equal(vectors[17], draw(4, 17))
  assert all(camera_range.contains(v) for v in vectors)
  assert camera_range_lib.max_blur_px(vectors.astype(np.float64)).max() <= (
      camera_range.max_blur_px * 1.001)
  nyu = np.isclose(vectors[:, 0], 15.0) & np.isclose(vectors[:, 2], 5.6)
  dslr = np.isclose(vectors[:, 0], 35.0) & np.isclose(vectors[:, 2], 36.0)
  assert 10 < nyu.sum() < 40 and 10 < dslr.sum() < 40
  np.testing.assert_allclose(vectors[nyu, 1], 2.8, rtol=1e-6)
  assert vectors[nyu, 3].min() >= 1.0 and vectors[nyu, 3].max() <= 8.0
  json.dumps(camera_range.to_dict())
  assert camera_range_lib.CameraRange.from_dict(camera_range.to_dict()) == camera_range


def test_render_of_a_camera_vector_equals_the_camera_render():
  rng = np.random.default_rng(0)
  image = tf.constant(rng.uniform(size=(32, 32, 3)), tf.float32)
  depth = tf.constant(np.where(np.arange(32)[None, :] < 16, 1.0, 4.0) * np.ones((32, 1)),
                      tf.float32)
  for camera in (_CAMERAS[0], _CAMERAS[2]):
    expected = render_defocus(image, depth, camera)
    got = camera_range_lib.render_defocus_vector(
        image, depth, camera_range_lib.camera_vector(camera), max_blur=16.0)
    np.testing.assert_allclose(got, expected, atol=2e-4)
    assert float(tf.reduce_mean(tf.abs(got - image))) > 0.005


def test_single_camera_configs_are_unchanged():
  plain = models.D3NetConfig.tiny()
  assert "camera_aware" not in plain.to_dict()
  assert models.D3NetConfig.from_dict(plain.to_dict()) == plain
  model = models.build_d3net(plain)
  assert not isinstance(model.input, dict) and model.get_layer("depth_sigmoid")
  assert config_lib.ExperimentConfig().to_dict()["camera"]["range"] is None
  with pytest.raises(config_lib.ConfigError, match="camera_aware"):
    config_lib.ExperimentConfig(
        render=config_lib.RenderConfig(input="sharp"),
        model=config_lib.ModelConfig(camera_aware=True)).validate()


def _photo_camera(path, camera=None, missing=()):
  values = dict(zip(photo_camera.PARAMETER_NAMES, camera_range_lib.camera_vector(
      camera or Camera.nyu()).tolist()))
  return photo_camera.PhotoCamera(path, {
      name: photo_camera.CameraValue(None if name in missing else value, "test")
      for name, value in values.items()})


def test_a_camera_aware_model_refuses_an_incomplete_photo_camera():
  complete = _photo_camera("a.jpg")
  incomplete = _photo_camera("b.jpg", missing=("focus_distance_m",))
  with pytest.raises(ValueError, match="camera-aware.*b.jpg.*--focus_distance_m"):
    predict_lib.check_photo_cameras([complete, incomplete], Camera.nyu(), needs_camera=True)
  done = predict_lib.check_photo_cameras([incomplete], Camera.nyu())  # One-camera model.
  assert done[0].complete  # Filled from the model's camera.


def test_only_a_camera_aware_model_of_a_camera_range_needs_each_photos_camera():
  import types  # pylint: disable=g-import-not-at-top

  def predictor(camera_aware, extra):
    return types.SimpleNamespace(camera_aware=camera_aware,
                                 metadata=artifacts.Metadata(extra=extra))
  ranged = {"camera_range": camera_range_lib.get_range("anycamera").to_dict()}
  assert predict_lib.needs_photo_camera(predictor(True, ranged))
  assert not predict_lib.needs_photo_camera(predictor(True, {}))  # Fine-tuned at one camera.
  assert not predict_lib.needs_photo_camera(predictor(False, ranged))
  assert not predict_lib.needs_photo_camera(types.SimpleNamespace())


@pytest.mark.slow
def test_camera_aware_model_trains_on_drawn_cameras_saves_and_depends_on_its_camera(tmp_path):
  config = config_lib.ExperimentConfig.from_dict({
      "data": {"crop_size": 32, "batch_size": 2},
      "camera": {"range": "anycamera"},
      "model": {"size": "tiny", "camera_aware": True},
      "training": {"learning_rate": 1e-3, "seed": 5}})
  task = task_lib.DepthTask(config)
  train = task.build_inputs("train", start_step=1)  # Examples 2, 3, ... of the stream.
  inputs, depth = next(iter(train))
  assert inputs["image"].shape == (2, 32, 32, 3) and inputs["camera"].shape == (2, 4)
  assert depth.shape == (2, 32, 32, 1)
  camera_range = config.build_camera_range()
  for row, index in enumerate((2, 3)):  # Drawn by the example's index: resume is exact.
    np.testing.assert_array_equal(inputs["camera"][row], camera_range_lib.sample_camera_vector(
        camera_range, [5, 0x0CA3], index).numpy())

  model = task.build_model()
  model.compile(optimizer=task.build_optimizer(), loss=task.build_losses())
  history = model.fit(train, steps_per_epoch=2, epochs=1, verbose=0)
  assert np.isfinite(history.history["loss"][-1])
  train_lib.write_metadata(str(tmp_path), task, task.d3net_config(), {})
  with open(tmp_path / "d3tf_metadata.json") as f:
    metadata = json.load(f)
  assert metadata["model_config"]["camera_aware"] is True
  assert metadata["camera_range"]["name"] == "anycamera"
  assert metadata["camera"] == Camera.nyu().to_dict()  # The default camera.

  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path, compile=False)
  image = np.random.default_rng(1).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  near = loaded({"image": image, "camera": _vectors(_CAMERAS[:1])}).numpy()
  far = loaded({"image": image, "camera": _vectors(_CAMERAS[1:2])}).numpy()
  np.testing.assert_allclose(near, model({"image": image, "camera": _vectors(_CAMERAS[:1])}),
                             rtol=1e-5)
  assert np.all(np.isfinite(near)) and 0.1 <= near.min() and near.max() <= 10.0
  assert np.abs(near - far).mean() > 0.05  # Focus 2 m vs 8 m: other depths.

  predictor = inference.load_predictor(str(tmp_path))  # model.keras + its metadata.
  assert predictor.camera_aware
  np.testing.assert_allclose(predictor.predict(image, camera=_CAMERAS[1])["depth"],
                             far[..., 0], rtol=1e-5)
  np.testing.assert_allclose(predictor.predict(image)["depth"], near[..., 0],  # Default: NYU.
                             rtol=1e-5)
  with pytest.raises(ValueError, match="camera must be"):
    predictor.predict(image, camera=[15.0, 2.8])
  photo = str(tmp_path / "photo.png")
  keras.utils.save_img(photo, (image[0] * 255).astype(np.uint8))
  written = predict_lib.predict_files(predictor, [photo], str(tmp_path / "out"),
                                      cameras=[_photo_camera(photo, _CAMERAS[1])])
  from_file = np.load(tmp_path / "out" / f"{written[0]['name']}_depth.npy")
  assert np.abs(from_file - far[0, ..., 0]).mean() < 0.05  # Through an 8-bit PNG.
  assert np.abs(from_file - near[0, ..., 0]).mean() > 0.05  # The photo's camera was used.
