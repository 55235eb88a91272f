"""Tests of d3tf.serving's exports: SavedModel and TFLite round trips, versions, metadata, CLI.

Tiny D3-Nets (D3NetConfig.tiny()) and tiny images throughout. The SavedModel
must reproduce the in-memory model (deterministic) or its Monte-Carlo
distribution; TFLite float32 the SavedModel; float16 / int8 loosely.
"""

import dataclasses
import io
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf import artifacts
from d3tf import inference
from d3tf import models
from d3tf.models import D3NetConfig
from d3tf.models import MCDropout
from d3tf.models import build_d3net
from d3tf.optics import Camera
from d3tf.data import calibration
from d3tf.serving import exporter
from d3tf.serving import graph
from d3tf.serving import protocol

_REPO = pathlib.Path(__file__).resolve().parents[1]
_MC_SAMPLES = 32
_NO_LITERT = "ai-edge-litert (the LiteRT interpreter) is not installed: pip install -e '.[test]'"


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _run(module_args, timeout=240):
  result = subprocess.run([sys.executable, "-m", *module_args], cwd=_REPO, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
  return result, result.stdout + result.stderr


def _images(*shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def _encode(image, fmt="PNG"):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=fmt)
  return buffer.getvalue()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A model_dir as d3tf.train writes it: a tiny D3-Net (with MC dropout) + metadata."""
  keras.utils.set_random_seed(0)
  path = tmp_path_factory.mktemp("run")
  config = D3NetConfig.tiny()
  build_d3net(config).save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=config, train_data="procedural",
      extra={"crop_size": 64, "loss": "l1"}))
  return path


@pytest.fixture(scope="module")
def loaded(model_dir):
  """(Keras model, metadata) as the exporter sees them."""
  model, path = inference.load_model(model_dir)
  return model, artifacts.read_metadata(path)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
  return tmp_path_factory.mktemp("savedmodels")


@pytest.fixture(scope="module")
def deterministic_export(loaded, exports):
  model, meta = loaded
  return exporter.export_saved_model(model, meta, exports / "tiny", samples=1, source="test")


@pytest.fixture(scope="module")
def mc_export(loaded, exports):
  model, meta = loaded
  return exporter.export_saved_model(model, meta, exports / "tiny_mc", samples=_MC_SAMPLES)


def _calibration(meta, size, count):
  """int8 calibration images as d3tf.export makes them."""
  return calibration.calibration_images(meta.camera, size, count, **meta.render_kwargs())


def _serve(export_dir, images, signature=protocol.SERVING_SIGNATURE,
           input_name=protocol.IMAGES_INPUT):
  function = tf.saved_model.load(str(export_dir)).signatures[signature]
  return {k: v.numpy() for k, v in function(**{input_name: tf.constant(images)}).items()}


# ------------------------------------------------------------- SavedModel
def test_saved_model_reproduces_the_keras_model(loaded, deterministic_export):
  model, meta = loaded
  images = _images(2, 64, 96)
  out = _serve(deterministic_export, images)
  assert set(out) == {"depth"} and out["depth"].dtype == np.float32
  expected = model(images.astype(np.float32) / 255.0, training=False).numpy()[..., 0]
  np.testing.assert_allclose(out["depth"], expected, atol=1e-5, rtol=0)
  # Any size: padded by reflection inside the graph exactly as the Predictor pads.
  odd = _images(2, 50, 70, seed=1)
  by_predictor = inference.Predictor(model, meta).predict(odd)["depth"]
  np.testing.assert_allclose(_serve(deterministic_export, odd)["depth"], by_predictor,
                             atol=1e-5, rtol=0)
  tiny = _images(1, 5, 3, seed=2)  # Pads larger than the image reflect again.
  np.testing.assert_allclose(_serve(deterministic_export, tiny)["depth"],
                             inference.Predictor(model, meta).predict(tiny)["depth"], atol=1e-5)


def test_reflect_indices_match_numpy():
  for size in (1, 2, 3, 7):
    for before, after in ((0, 0), (1, 2), (5, 9), (20, 13)):
      got = tf.gather(tf.range(size), graph.reflect_indices(size, before, after)).numpy()
      np.testing.assert_array_equal(got, np.pad(np.arange(size), (before, after), "reflect"))


def test_predict_encoded_decodes_png_and_jpeg(deterministic_export):
  images = _images(2, 40, 50, seed=3)
  direct = _serve(deterministic_export, images)["depth"]
  pngs = tf.constant([_encode(image) for image in images])
  decoded = _serve(deterministic_export, pngs, protocol.ENCODED_SIGNATURE,
                   protocol.ENCODED_INPUT)["depth"]
  np.testing.assert_allclose(decoded, direct, atol=1e-6)  # PNG is lossless.
  jpeg = _serve(deterministic_export, tf.constant([_encode(images[0], "JPEG")]),
                protocol.ENCODED_SIGNATURE, protocol.ENCODED_INPUT)["depth"]
  assert jpeg.shape == (1, 40, 50) and np.all(np.isfinite(jpeg))


def test_signatures_reject_bad_input_with_clear_messages(deterministic_export):
  serve = tf.saved_model.load(str(deterministic_export)).signatures
  images = serve[protocol.SERVING_SIGNATURE]
  encoded = serve[protocol.ENCODED_SIGNATURE]
  cases = [(np.zeros((8, 8, 3), np.uint8), "wrong rank"),
           (np.zeros((1, 8, 8, 4), np.uint8), "channels are not 3"),
           (np.zeros((1, 0, 8, 3), np.uint8), "it is empty")]
  for bad, message in cases:
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      images(images=tf.constant(bad))
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a uint8 tensor"):
    images(images=tf.constant(np.zeros((1, 8, 8, 3), np.float32)))
  mixed = [_encode(_images(8, 8)), _encode(_images(9, 8))]
  with pytest.raises(tf.errors.InvalidArgumentError, match="same height and width"):
    encoded(image_bytes=tf.constant(mixed))
  with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
    encoded(image_bytes=tf.constant([b"not an image"]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="holds no image"):
    encoded(image_bytes=tf.constant([], tf.string))


def test_mc_export_agrees_in_distribution_with_the_keras_model(loaded, mc_export):
  model, meta = loaded
  images = _images(1, 32, 32, seed=4)
  out = _serve(mc_export, images)
  reference = inference.Predictor(model, meta).predict(images, samples=_MC_SAMPLES)
  assert set(out) == set(reference) == {"depth", "depth_std", "epistemic_std"}
  np.testing.assert_array_equal(out["epistemic_std"], out["depth_std"])  # No aleatoric part.
  assert np.all(out["depth_std"] >= 0) and out["depth_std"].mean() > 0
  again = _serve(mc_export, images)
  assert not np.array_equal(again["depth"], out["depth"])  # Stateful random ops: new draws.
  ratio = out["depth_std"].mean() / reference["depth_std"].mean()
  assert 0.75 < ratio < 1.33, ratio
  # Two independent means of T draws differ by about std * sqrt(2 / T).
  typical = reference["depth_std"].mean() * np.sqrt(2.0 / _MC_SAMPLES)
  assert np.abs(out["depth"] - reference["depth"]).mean() < 2.0 * typical
  deterministic = model(images / 255.0, training=False).numpy()[..., 0]
  assert np.abs(out["depth"] - deterministic).mean() < 10 * reference["depth_std"].mean()


def test_samples_need_stochastic_layers_and_default_to_20(loaded, exports):
  model, meta = loaded
  assert exporter.resolve_samples(model, None) == exporter.DEFAULT_STOCHASTIC_SAMPLES
  plain = build_d3net(D3NetConfig.tiny(dropout_blocks=0))
  assert exporter.resolve_samples(plain, None) == 1 and exporter.resolve_samples(plain, 1) == 1
  with pytest.raises(ValueError, match="samples=4 needs Monte-Carlo sampling"):
    exporter.export_saved_model(plain, meta, exports / "plain", samples=4)
  variational = build_d3net(D3NetConfig.tiny(dropout_blocks=0, variational_blocks=(5,),
                                             num_train_examples=10))
  assert exporter.resolve_samples(variational, None) == exporter.DEFAULT_STOCHASTIC_SAMPLES
  assert not (exports / "plain").exists() or not artifacts.list_versions(exports / "plain")


def test_versions_are_numbered_and_never_overwritten(loaded, tmp_path):
  model, meta = loaded
  base = tmp_path / "savedmodels" / "tiny"
  first = exporter.export_saved_model(model, meta, base, samples=1)
  second = exporter.export_saved_model(model, meta, base, samples=1)
  assert (pathlib.Path(first).name, pathlib.Path(second).name) == ("1", "2")
  with pytest.raises(FileExistsError, match=f"{base / '1'}.*exists already.*version 3"):
    exporter.export_saved_model(model, meta, base, version=1, samples=1)
  exporter.export_saved_model(model, meta, base, version=7, samples=1)
  (base / "tflite").mkdir()
  assert artifacts.list_versions(base) == [1, 2, 7] and artifacts.next_version(base) == 8
  assert sorted(os.listdir(base)) == ["1", "2", "7", "tflite"]  # No staging folder left.
  ref = artifacts.find_export(base)
  assert ref.kind == "saved_model" and ref.version == 7 and ref.path == str(base / "7")
  assert artifacts.find_export(tmp_path) is None


def test_export_holds_the_metadata(deterministic_export):
  path = pathlib.Path(deterministic_export) / "assets.extra" / "d3tf_metadata.json"
  meta = artifacts.read_metadata(path)
  assert meta.camera == Camera.nyu(2.0)
  assert meta.train_data == "procedural" and meta.extra["crop_size"] == 64
  assert meta.d3tf_version and meta.export["d3tf_version"]
  assert meta.export["samples"] == 1 and meta.export["outputs"] == ["depth"]
  assert set(meta.export["signatures"]) == set(protocol.SIGNATURES)
  ref, read = artifacts.read_export(deterministic_export)
  assert read == meta and ref.version == 1
  text = artifacts.describe_export(ref, meta)
  assert "focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in text
  assert "Training data: procedural (crop_size 64, loss l1)" in text


def test_saved_model_cli_shows_both_signatures(mc_export):
  result, log = _run(["tensorflow.python.tools.saved_model_cli", "show", "--all", "--dir",
                      str(mc_export)], timeout=120)
  assert result.returncode == 0, log[-3000:]
  for text in ("signature_def['serving_default']", "signature_def['predict_encoded']",
               "inputs['images'] tensor_info", "dtype: DT_UINT8",
               "inputs['image_bytes'] tensor_info", "dtype: DT_STRING",
               "outputs['depth'] tensor_info", "outputs['depth_std'] tensor_info"):
    assert text in result.stdout, text


# ------------------------------------------------------------------ TFLite
def _tflite(flatbuffer, tmp_path, name, meta, info):
  folder = tmp_path / name
  folder.mkdir()
  (folder / "model.tflite").write_bytes(flatbuffer)
  artifacts.write_metadata(folder / "d3tf_metadata.json",
                           artifacts.exports.export_metadata(meta, info))
  return inference.load_predictor(folder / "model.tflite")


def test_tflite_float32_matches_the_saved_model(loaded, deterministic_export, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  model, meta = loaded
  images = _images(2, 50, 70, seed=5)
  reference = _serve(deterministic_export, images)["depth"]
  flatbuffer, ops = exporter.convert_to_tflite(model, meta, 1)
  assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
  predictor = _tflite(flatbuffer, tmp_path, "any", meta, {"samples": 1})
  assert isinstance(predictor, inference.TFLitePredictor) and predictor.input_size is None
  assert predictor.camera == Camera.nyu(2.0)
  out = predictor.predict(images)
  assert set(out) == {"depth"} and out["depth"].shape == (2, 50, 70)
  np.testing.assert_allclose(out["depth"], reference, atol=1e-4, rtol=0)
  # A fixed input size: [1, 64, 96, 3]; other sizes are refused with the size named.
  flatbuffer, _ = exporter.convert_to_tflite(model, meta, 1, input_size=(64, 96))
  fixed = _tflite(flatbuffer, tmp_path, "fixed", meta, {"samples": 1})
  assert fixed.input_size == (64, 96)
  images = _images(2, 64, 96, seed=6)
  np.testing.assert_allclose(fixed.predict(images)["depth"],
                             _serve(deterministic_export, images)["depth"], atol=1e-4, rtol=0)
  with pytest.raises(ValueError, match="takes 64x96 images.*got 50x70"):
    fixed.predict(_images(1, 50, 70))
  with pytest.raises(ValueError, match="does not take a camera.*got camera=.15.0, 2.8"):
    predictor.predict(images, camera=[15.0, 2.8, 5.6, 2.0])


def test_tflite_float16_and_int8_stay_close(loaded, deterministic_export, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  model, meta = loaded
  images = _images(2, 64, 64, seed=7)
  reference = _serve(deterministic_export, images)["depth"]
  for quantize, max_error, mean_error in (("float16", 0.02, 0.005), ("int8", 0.5, 0.15)):
    flatbuffer, ops = exporter.convert_to_tflite(model, meta, 1, quantize=quantize,
                                                 input_size=(64, 64),
                                                 calibration_images=_calibration(meta, (64, 64), 4))
    assert not [op for op in ops if op.startswith("Flex")], ops
    if quantize == "int8":
      assert "QUANTIZE" in ops
    out = _tflite(flatbuffer, tmp_path, quantize, meta, {"samples": 1}).predict(images)["depth"]
    error = np.abs(out - reference)
    assert error.max() < max_error and error.mean() < mean_error, (quantize, error.max(),
                                                                   error.mean())


@pytest.mark.long  # Not in the default run (pytest.ini): 35 s; CI's time limit.
def test_tflite_mc_dropout_samples_with_builtin_random_uniform(loaded, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  model, meta = loaded
  images = _images(1, 32, 32, seed=8)
  for quantize in ("float32", "int8"):
    flatbuffer, ops = exporter.convert_to_tflite(model, meta, 8, quantize=quantize,
                                                 input_size=(32, 32),
                                                 calibration_images=_calibration(meta, (32, 32), 2))
    assert "RANDOM_UNIFORM" in ops and not [op for op in ops if op.startswith("Flex")], ops
    predictor = _tflite(flatbuffer, tmp_path, f"mc_{quantize}", meta, {"samples": 8})
    first, second = predictor.predict(images), predictor.predict(images)
    assert set(first) == {"depth", "depth_std", "epistemic_std"}
    assert np.all(np.isfinite(first["depth_std"])) and first["depth_std"].mean() > 0
    assert not np.array_equal(first["depth"], second["depth"])
  with pytest.raises(ValueError, match="exported with 8 Monte-Carlo sample"):
    predictor.predict(images, samples=5)


@pytest.fixture(scope="module")
def bandpass(loaded):
  """A tiny deterministic band-pass D3-Net and its metadata."""
  _, meta = loaded
  keras.utils.set_random_seed(4)
  config = D3NetConfig.tiny(input_features="rgb+bandpass", dropout_rate=0.0)
  return build_d3net(config), dataclasses.replace(meta, model_config=config.to_dict())


def test_bandpass_input_model_exports_to_saved_model_and_builtin_tflite(bandpass, tmp_path):
  """The band-pass sharpness maps (box means, sqrt, log) survive both exports."""
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  model, meta = bandpass
  images = _images(2, 64, 96, seed=9)
  want = model(images.astype(np.float32) / 255.0, training=False).numpy()[..., 0]
  export_dir = exporter.export_saved_model(model, meta, tmp_path / "bandpass", samples=1)
  np.testing.assert_allclose(_serve(export_dir, images)["depth"], want, atol=1e-5, rtol=0)
  flatbuffer, ops = exporter.convert_to_tflite(model, meta, 1)
  assert "AVERAGE_POOL_2D" in ops and "LOG" in ops, ops
  assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops
  out = _tflite(flatbuffer, tmp_path, "bandpass_tflite", meta, {"samples": 1}).predict(images)
  np.testing.assert_allclose(out["depth"], want, atol=1e-4, rtol=0)
  # float16: flat regions (band RMS 0) rely on the floor's constants surviving float16.
  flat = images.copy()
  flat[:, :, :48] = 128
  want = model(flat.astype(np.float32) / 255.0, training=False).numpy()[..., 0]
  flatbuffer, _ = exporter.convert_to_tflite(model, meta, 1, quantize="float16")
  out = _tflite(flatbuffer, tmp_path, "bandpass_fp16", meta, {"samples": 1}).predict(flat)
  assert np.all(np.isfinite(out["depth"]))
  np.testing.assert_allclose(out["depth"], want, atol=0.02, rtol=0)


def test_bandpass_input_model_int8_keeps_the_sharpness_maps_in_float(bandpass):
  """An int8 grid rounds the band RMS to zero; the band-pass layer stays float and runs."""
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  model, meta = bandpass
  # Scenes like the calibration's (other ones): random noise has no band-pass statistics.
  images = _calibration(meta, (64, 96), 6)[4:]
  want = model(images.astype(np.float32) / 255.0, training=False).numpy()[..., 0]
  flatbuffer, ops = exporter.convert_to_tflite(model, meta, 1, quantize="int8",
                                               input_size=(64, 96),
                                               calibration_images=_calibration(meta, (64, 96), 4))
  assert "QUANTIZE" in ops and "DIV" in ops, ops
  interpreter = Interpreter(model_content=flatbuffer)
  types = {d["name"]: d["dtype"] for d in interpreter.get_tensor_details()}
  divisions = [name for name in types if "bandpass_sharpness" in name and "truediv" in name]
  assert len(divisions) == 3 and all(types[name] == np.float32 for name in divisions), types
  assert any(dtype == np.int8 for dtype in types.values())  # The rest is quantised.
  runner = interpreter.get_signature_runner("serving_default")
  got = np.concatenate([runner(images=image[None])["depth"] for image in images])
  got = got.reshape(want.shape)
  error = np.abs(got - want)
  assert np.all(np.isfinite(got)) and error.max() < 0.5 and error.mean() < 0.15, error.mean()


# ------------------------------------------------------- aleatoric head
def _aleatoric_model():
  """Depth through MC dropout; log_scale deterministic (so aleatoric std is exact)."""
  inputs = keras.Input((None, None, 3))
  features = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
  dropped = MCDropout(0.5)(features)
  depth = keras.layers.Conv2D(1, 3, padding="same", activation="softplus")(dropped)
  log_scale = keras.layers.Conv2D(1, 3, padding="same")(inputs)
  return keras.Model(inputs, {"depth": depth, "log_scale": log_scale})


def test_aleatoric_head_gives_epistemic_aleatoric_and_total_std(tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  keras.utils.set_random_seed(1)
  model = _aleatoric_model()
  meta = artifacts.Metadata(model_config={"aleatoric": "laplace"})
  images = _images(2, 32, 32, seed=9)
  expected_log_scale = model(images / 255.0)["log_scale"].numpy()[..., 0]
  factor = graph.aleatoric_std_factor(model, meta)
  assert factor == pytest.approx(np.sqrt(2.0))
  assert graph.aleatoric_std_factor(model, artifacts.Metadata(
      model_config={"aleatoric": "gaussian"})) == 1.0
  assert graph.aleatoric_std_factor(model, None) == 1.0
  for samples in (1, 6):
    serving = graph.ServingGraph(model, samples, aleatoric_factor=factor)
    out = {k: v.numpy() for k, v in serving.tflite_signature(None)(images=images).items()}
    np.testing.assert_allclose(out["aleatoric_std"], factor * np.exp(expected_log_scale),
                               rtol=1e-5)
    if samples == 1:  # As the Predictor: no epistemic part from one pass.
      assert list(out) == ["depth", "depth_std", "aleatoric_std"]
      np.testing.assert_array_equal(out["depth_std"], out["aleatoric_std"])
    else:
      assert list(out) == ["depth", "depth_std", "epistemic_std", "aleatoric_std"]
      assert out["epistemic_std"].mean() > 0
      np.testing.assert_allclose(out["depth_std"] ** 2, out["epistemic_std"] ** 2 +
                                 out["aleatoric_std"] ** 2, rtol=1e-4)
  path = exporter.export_saved_model(model, meta, tmp_path / "alea", samples=4)
  assert artifacts.read_export(path)[1].export["outputs"] == list(protocol.OUTPUTS)
  flatbuffer, ops = exporter.convert_to_tflite(model, meta, 4)
  assert "EXP" in ops and "RANDOM_UNIFORM" in ops


class _SharedDraw(keras.layers.Layer):
  """Test double of a reparameterisation layer: one random draw per call, shared by the batch."""

  shares_sample_in_batch = True

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.mc_enabled = False

  def call(self, inputs):
    return inputs + tf.random.normal([]) if self.mc_enabled else inputs


def test_layers_sharing_a_draw_across_the_batch_are_sampled_in_separate_passes():
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  keras.utils.set_random_seed(2)
  model = keras.Sequential([keras.Input((None, None, 3)),
                            keras.layers.Conv2D(1, 3, padding="same"), _SharedDraw()])
  assert models.stochastic_kind(model) == "variational"
  images = _images(2, 32, 32, seed=10)
  serving = graph.ServingGraph(model, 8)
  assert serving.separate_passes
  out = serving.tflite_signature(None)(images=images)
  std = out["depth_std"].numpy()
  # One N(0, 1) shift per pass: every pixel of both images has the same 8 samples.
  assert std.min() > 0.2 and np.ptp(std) < 1e-4
  serving.separate_passes = False  # One batched pass: all 8 copies share a single draw.
  np.testing.assert_allclose(serving.tflite_signature(None)(images=images)["depth_std"], 0,
                             atol=1e-6)
  flatbuffer, ops = exporter.convert_to_tflite(model, None, 8)
  assert "RANDOM_STANDARD_NORMAL" in ops, ops


# --------------------------------------------------------------------- CLI
def test_export_cli_numbers_versions_and_inspect_prints_the_camera(model_dir, tmp_path):
  exports = tmp_path / "savedmodels"
  common = ["d3tf.export", f"--model={model_dir}", "--name=tiny", f"--export_dir={exports}",
            "--samples=2"]
  for version in (1, 2):
    result, log = _run(common)
    assert result.returncode == 0, log[-4000:]
    assert f"Exported SavedModel version {version} of tiny" in log
  assert sorted(os.listdir(exports / "tiny")) == ["1", "2"]
  result, log = _run(common + ["--version=1"])
  assert result.returncode != 0 and "version 1 of tiny exists already" in log
  result, log = _run(common + ["--quantize=int8"])
  assert result.returncode != 0 and "apply to --format=tflite only" in log
  result, log = _run(["d3tf.export", "--inspect", str(exports / "tiny")])
  assert result.returncode == 0, log[-4000:]
  assert f"Export: {exports / 'tiny' / '2'} (SavedModel, version 2)" in log
  assert "Camera: focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in log
  assert "Training data: procedural" in log and "Samples per prediction: 2 (mc_dropout)" in log
  result, log = _run(["d3tf.export", f"--inspect={tmp_path}"])
  assert result.returncode != 0 and f"{tmp_path}: no d3tf export there" in log


# ------------------------------------------------------------ camera-aware
_FAR = Camera.nyu(8.0)  # The default camera is NYU focused at 2 m (conftest).


def _keras_depth(model, images, camera):
  """The Keras model's depth for uint8 images of a multiple of 32 and one camera."""
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  vectors = np.repeat(camera_range.camera_vector(camera)[None], len(images), axis=0)
  return model({"image": images.astype(np.float32) / 255.0, "camera": vectors},
               training=False).numpy()[..., 0]


def test_camera_aware_saved_model_takes_a_camera_and_defaults_to_the_metadata_camera(
    camera_aware_model_dir, camera_aware_export):
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  model, path = inference.load_model(camera_aware_model_dir)
  meta = artifacts.read_metadata(path)
  images = _images(2, 64, 64)
  loaded = tf.saved_model.load(str(camera_aware_export))
  assert set(loaded.signatures) == {"serving_default", "predict_encoded", "serving_camera",
                                    "predict_encoded_camera"}
  far_vectors = np.repeat(camera_range.camera_vector(_FAR)[None], 2, axis=0)
  with_camera = loaded.signatures["serving_camera"](
      images=tf.constant(images), camera=tf.constant(far_vectors))["depth"].numpy()
  default = _serve(camera_aware_export, images)["depth"]
  np.testing.assert_allclose(with_camera, _keras_depth(model, images, _FAR), atol=1e-5)
  np.testing.assert_allclose(default, _keras_depth(model, images, meta.camera), atol=1e-5)
  assert np.abs(with_camera - default).mean() > 0.05  # The camera changes the depth.
  encoded = loaded.signatures["predict_encoded_camera"](
      image_bytes=tf.constant([_encode(image) for image in images]),
      camera=tf.constant(far_vectors))["depth"].numpy()
  np.testing.assert_allclose(encoded, with_camera, atol=1e-5)
  # The camera is checked in the graph: one row per image, plausible values.
  with pytest.raises(tf.errors.InvalidArgumentError, match="number of rows"):
    loaded.signatures["serving_camera"](images=tf.constant(images),
                                        camera=tf.constant(far_vectors[:1]))
  with pytest.raises(tf.errors.InvalidArgumentError, match="finite and positive"):
    loaded.signatures["serving_camera"](images=tf.constant(images),
                                        camera=tf.constant(-far_vectors))

  info = artifacts.read_export(str(camera_aware_export))[1].export
  assert info["camera_aware"] is True
  camera_input = info["camera_input"]
  assert camera_input["name"] == "camera" and camera_input["shape"] == "[batch, 4]"
  assert tuple(camera_input["fields"]) == camera_range.VECTOR_FIELDS == protocol.CAMERA_FIELDS
  np.testing.assert_allclose(camera_input["default"], camera_range.camera_vector(meta.camera))
  assert "camera: float32 [batch, 4]" in info["signatures"]["serving_camera"]["input"]
  described = artifacts.describe_export(*artifacts.read_export(str(camera_aware_export)))
  assert "Camera-aware: input camera float32 [batch, 4] (focal_length_mm, f_number" in described

  predictor = inference.load_predictor(str(camera_aware_export))  # The export predictor.
  assert predictor.camera_aware and predictor.kind == "saved_model"
  odd = _images(2, 40, 50, seed=1)  # Padded in the graph as the Keras predictor pads.
  keras_predictor = inference.load_predictor(str(camera_aware_model_dir))
  np.testing.assert_allclose(predictor.predict(odd, camera=_FAR)["depth"],
                             keras_predictor.predict(odd, camera=_FAR)["depth"], atol=1e-5)
  np.testing.assert_allclose(predictor.predict(odd)["depth"],
                             keras_predictor.predict(odd)["depth"], atol=1e-5)
  with pytest.raises(ValueError, match="focus distance"):
    predictor.predict(odd, camera=[15.0, 2.8, 5.6, 0.01])


def test_camera_aware_tflite_has_a_camera_input(camera_aware_model_dir, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  model, _ = inference.load_model(camera_aware_model_dir)
  path = export_lib.run_export(str(camera_aware_model_dir), "anycam", export_dir=str(tmp_path),
                               fmt="tflite", samples=1)
  predictor = inference.load_predictor(path)
  assert predictor.kind == "tflite" and predictor.camera_aware
  details = predictor._runner.get_input_details()  # pylint: disable=protected-access
  assert set(details) == {"images", "camera"}
  assert details["camera"]["dtype"] == np.float32
  assert list(details["camera"]["shape_signature"]) == [-1, 4]
  images = _images(1, 64, 64)
  far = predictor.predict(images, camera=_FAR)["depth"]
  default = predictor.predict(images)["depth"]  # The metadata's camera, filled in.
  np.testing.assert_allclose(far, _keras_depth(model, images, _FAR), atol=1e-4)
  np.testing.assert_allclose(default, _keras_depth(model, images, Camera.nyu(2.0)), atol=1e-4)
  assert np.abs(far - default).mean() > 0.05
  info = artifacts.read_export(path)[1].export
  assert info["camera_aware"] and info["camera_input"]["shape"] == "[batch, 4]"


def _with_camera_range(model_dir, tmp_path, range_name: str) -> pathlib.Path:
  """A copy of a camera-aware model_dir whose metadata names a training camera range."""
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "ranged_run"
  copy.mkdir()
  (copy / "model.keras").write_bytes((pathlib.Path(model_dir) / "model.keras").read_bytes())
  meta = artifacts.read_metadata(str(model_dir))
  artifacts.write_metadata(copy, dataclasses.replace(meta, extra={
      **meta.extra, "camera_range": camera_range.get_range(range_name).to_dict()}))
  return copy


def test_camera_aware_calibration_draws_cameras_from_the_training_range():
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  anycamera = camera_range.get_range("anycamera")
  images, vectors = calibration.calibration_examples_with_cameras(
      Camera.nyu(2.0), (32, 32), 6, camera_range=anycamera)
  assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
  assert vectors.shape == (6, 4) and vectors.dtype == np.float32
  assert all(anycamera.contains(v) for v in vectors)
  assert len({tuple(np.round(v, 3)) for v in vectors}) == 6  # Each scene its own camera.
  again = calibration.calibration_examples_with_cameras(Camera.nyu(2.0), (32, 32), 6,
                                                        camera_range=anycamera)
  np.testing.assert_array_equal(again[1], vectors)  # Seeded: the same draws.
  _, fixed = calibration.calibration_examples_with_cameras(Camera.nyu(8.0), (32, 32), 2)
  np.testing.assert_allclose(fixed, [camera_range.camera_vector(Camera.nyu(8.0))] * 2,
                             rtol=1e-6)
  with pytest.raises(ValueError, match="need a camera or a camera_range"):
    calibration.calibration_examples_with_cameras(None, (32, 32), 2)


def test_model_calibration_chooses_cameras_only_for_a_camera_aware_model():
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  anycamera = camera_range.get_range("anycamera")
  images, cameras, source = calibration.model_calibration(Camera.nyu(2.0), (32, 32), 3,
                                                          camera_aware=False)
  assert cameras is None and source == "procedural train scenes"
  np.testing.assert_array_equal(images, calibration.calibration_images(Camera.nyu(2.0),
                                                                       (32, 32), 3))
  images, cameras, source = calibration.model_calibration(
      Camera.nyu(2.0), (32, 32), 3, camera_aware=True, camera_range=anycamera)
  assert images.shape == (3, 32, 32, 3) and all(anycamera.contains(v) for v in cameras)
  assert source == "procedural train scenes, each by a camera drawn from range anycamera"
  _, cameras, source = calibration.model_calibration(Camera.nyu(8.0), (32, 32), 2,
                                                     camera_aware=True)
  assert source.endswith("rendered and fed with the default camera")
  np.testing.assert_allclose(cameras, [camera_range.camera_vector(Camera.nyu(8.0))] * 2,
                             rtol=1e-6)
  for bad in (0, 2.5, True):
    with pytest.raises(ValueError, match=f"calibration examples must be an integer >= 1, "
                       f"got {bad!r}"):
      calibration.model_calibration(Camera.nyu(2.0), (32, 32), bad, camera_aware=True)


def test_camera_aware_int8_tflite_is_calibrated_over_cameras_and_takes_the_camera(
    camera_aware_model_dir, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  ranged = _with_camera_range(camera_aware_model_dir, tmp_path, "anycamera")
  model, _ = inference.load_model(ranged)
  path = export_lib.run_export(str(ranged), "anycam", export_dir=str(tmp_path / "exports"),
                               fmt="tflite", quantize="int8", samples=1, input_size=(64, 64),
                               calibration_examples=4)
  info = artifacts.read_export(path)[1].export
  assert info["quantize"] == "int8" and info["camera_aware"]
  assert info["calibration"] == ("4 procedural train scenes, each by a camera drawn from range "
                                 "anycamera")
  assert "QUANTIZE" in info["ops"]
  predictor = inference.load_predictor(path)
  images = _images(1, 64, 64, seed=4)
  far = predictor.predict(images, camera=_FAR)["depth"]
  near = predictor.predict(images, camera=Camera.nyu(1.0))["depth"]
  # The camera input reaches the float thin-lens head through the int8 graph: depths follow it.
  for camera, depth in ((_FAR, far), (Camera.nyu(1.0), near)):
    reference = _keras_depth(model, images, camera)
    error = np.abs(depth - reference)
    assert error.mean() < 0.05 * reference.mean(), (camera.focus_distance_m, error.mean())
  assert far.mean() > 2.0 * near.mean()


def test_camera_aware_int8_without_a_range_calibrates_at_the_default_camera(
    camera_aware_model_dir, tmp_path):
  pytest.importorskip("ai_edge_litert", reason=_NO_LITERT)
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  path = export_lib.run_export(str(camera_aware_model_dir), "anycam", export_dir=str(tmp_path),
                               fmt="tflite", quantize="int8", samples=1, input_size=(32, 32),
                               calibration_examples=2)
  assert artifacts.read_export(path)[1].export["calibration"] == (
      "2 procedural train scenes, rendered and fed with the default camera")


def test_camera_aware_int8_conversion_needs_one_camera_per_image(camera_aware_model_dir):
  model, path = inference.load_model(camera_aware_model_dir)
  meta = artifacts.read_metadata(path)
  images = _calibration(meta, (32, 32), 2)
  with pytest.raises(ValueError, match="needs one camera per calibration image"):
    exporter.convert_to_tflite(model, meta, 1, quantize="int8", input_size=(32, 32),
                               calibration_images=images)
  with pytest.raises(ValueError, match=r"float32 \[2, 4\].*got shape \(1, 4\)"):
    exporter.convert_to_tflite(model, meta, 1, quantize="int8", input_size=(32, 32),
                               calibration_images=images,
                               calibration_cameras=np.ones((1, 4), np.float32))


def test_camera_aware_mc_samples_repeat_each_images_camera(camera_aware_model_dir):
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  model, path = inference.load_model(camera_aware_model_dir)
  serving = graph.ServingGraph.for_model(model, artifacts.read_metadata(path), 8)
  image = _images(1, 32, 32)
  images = np.concatenate([image, image])
  cameras = np.stack([camera_range.camera_vector(c) for c in (Camera.nyu(2.0), _FAR)])
  function = serving._traced(serving.depth_outputs,  # pylint: disable=protected-access
                             [tf.TensorSpec([None, None, None, 3], tf.uint8),
                              tf.TensorSpec([None, 4], tf.float32)])
  out = {k: v.numpy() for k, v in function(tf.constant(images), tf.constant(cameras)).items()}
  assert set(out) == {"depth", "depth_std", "epistemic_std"}
  near, far = _keras_depth(model, image, Camera.nyu(2.0)), _keras_depth(model, image, _FAR)
  # Each image's samples got its own camera: image 1's mean lies near the far camera's depth.
  assert np.abs(out["depth"][1] - far[0]).mean() < np.abs(out["depth"][1] - near[0]).mean()
  assert np.abs(out["depth"][0] - near[0]).mean() < np.abs(out["depth"][0] - far[0]).mean()
