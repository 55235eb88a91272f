"""Tests of d3tf.inference: loading, padding, MC-dropout sampling, errors."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

from d3tf import artifacts
from d3tf import inference
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera
from d3tf.optics import RenderOptions


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A model_dir with a tiny D3-Net saved as model.keras and its metadata."""
  keras.utils.set_random_seed(0)
  model = build_d3net(D3NetConfig.tiny())
  path = tmp_path_factory.mktemp("run")
  model.save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), psf="disk", render_options=RenderOptions.for_mode("paper"),
      model_config=D3NetConfig.tiny(), train_data="procedural"))
  return path


@pytest.fixture(scope="module")
def predictor(model_dir):
  return inference.load_predictor(model_dir)


def _images(*shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape + (3,), dtype=np.uint8)


def test_loaded_model_predicts_like_the_original(model_dir, predictor):
  assert predictor.camera == Camera.nyu(2.0) and predictor.input_kind == "defocus"
  assert predictor.path == str(model_dir / "model.keras")
  images = _images(2, 64, 96)
  original = keras.models.load_model(model_dir / "model.keras", compile=False)
  expected = original.predict(images.astype(np.float32) / 255.0, verbose=0)[..., 0]
  out = predictor.predict(images)
  assert set(out) == {"depth"} and out["depth"].dtype == np.float32
  np.testing.assert_allclose(out["depth"], expected, rtol=1e-5, atol=1e-5)
  # float input in [0, 1] is the same as uint8.
  np.testing.assert_allclose(predictor.predict(images / 255.0)["depth"], out["depth"], atol=1e-5)


def test_odd_sizes_are_padded_by_reflection_and_cropped_back(predictor):
  images = _images(2, 50, 70)
  out = predictor.predict(images)
  assert out["depth"].shape == (2, 50, 70) and np.all(out["depth"] > 0)
  single = predictor.predict(images[1])
  assert single["depth"].shape == (1, 50, 70)  # always batched.
  np.testing.assert_allclose(single["depth"][0], out["depth"][1], atol=1e-5)
  # Same as padding by hand: 50 -> 64 (7 top, 7 bottom), 70 -> 96 (13 left, 13 right).
  padded, box = inference.pad_to_multiple(images.astype(np.float32) / 255.0)
  assert padded.shape == (2, 64, 96, 3) and box == (7, 7, 13, 13)
  np.testing.assert_array_equal(padded[:, 6, 13:83], padded[:, 8, 13:83])  # reflected row.
  by_hand = predictor.model.predict(padded, verbose=0)[:, 7:57, 13:83, 0]
  np.testing.assert_allclose(out["depth"], by_hand, rtol=1e-5, atol=1e-5)
  tiny = inference.pad_to_multiple(np.ones((1, 5, 3, 1)))[0]
  assert tiny.shape == (1, 32, 32, 1)  # pads much larger than the image still reflect.


def test_mc_dropout_samples_give_a_positive_std(predictor):
  images = _images(2, 40, 40, seed=1)
  deterministic = predictor.predict(images)["depth"]
  out = predictor.predict(images, samples=6)
  assert out["depth"].shape == out["depth_std"].shape == (2, 40, 40)
  assert np.all(out["depth_std"] >= 0) and out["depth_std"].mean() > 0
  assert not np.allclose(out["depth"], deterministic)
  # Dropout is off again afterwards: deterministic and unchanged.
  np.testing.assert_array_equal(predictor.predict(images)["depth"], deterministic)
  assert "depth_std" not in predictor.predict(images, samples=1)


def test_chunked_forward_passes(model_dir):
  small = inference.load_predictor(model_dir, max_batch_pixels=64 * 64)  # one image per pass.
  big = inference.load_predictor(model_dir)
  images = _images(3, 64, 64, seed=2)
  np.testing.assert_allclose(small.predict(images)["depth"], big.predict(images)["depth"],
                             atol=1e-5)
  out = small.predict(images[:1], samples=4)
  assert out["depth_std"].mean() > 0


def test_bad_arguments(predictor):
  with pytest.raises(ValueError, match=r"\[B, H, W, 3\].*\(8, 8, 4\)"):
    predictor.predict(np.zeros((8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match=r"\[0, 1\].*255"):
    predictor.predict(np.full((8, 8, 3), 255.0))
  with pytest.raises(ValueError, match="uint8 or float"):
    predictor.predict(np.zeros((8, 8, 3), np.uint16))
  with pytest.raises(ValueError, match="samples"):
    predictor.predict(_images(8, 8), samples=0)
  with pytest.raises(ValueError, match="does not take a camera.*predict without camera="):
    predictor.predict(_images(8, 8), camera=[15.0, 2.8, 5.6, 2.0])


def test_samples_need_mc_dropout_layers():
  model = keras.Sequential([keras.Input((None, None, 3)),
                            keras.layers.Conv2D(1, 3, padding="same", activation="softplus")])
  with pytest.raises(ValueError, match="no MCDropout"):
    inference.Predictor(model).predict(_images(8, 8), samples=3)


def test_checkpoint_choice_and_missing_files_name_the_path(model_dir, tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  with pytest.raises(FileNotFoundError, match=f"{run}.*model.keras or best.keras"):
    inference.load_predictor(run)
  with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nothing.keras'}"):
    inference.load_predictor(tmp_path / "nothing.keras")
  shutil.copy(model_dir / "model.keras", run / "best.keras")
  with pytest.raises(FileNotFoundError, match=f"{run / artifacts.METADATA_FILENAME}.*not found"):
    inference.load_predictor(run)  # "auto" falls back to best.keras, which has no metadata.
  loaded = inference.load_predictor(run, require_metadata=False)
  assert loaded.path == str(run / "best.keras") and loaded.metadata is None
  assert loaded.input_kind == "sharp" and loaded.camera is None
  with pytest.raises(FileNotFoundError, match="model.keras"):
    artifacts.resolve_model_path(run, "final")
  with pytest.raises(ValueError, match="checkpoint"):
    artifacts.resolve_model_path(run, "last")


def test_corrupt_files_name_the_path(model_dir, tmp_path):
  bad_model = tmp_path / "bad.keras"
  bad_model.write_bytes(b"not a zip archive")
  with pytest.raises(ValueError, match=f"{bad_model}: not a complete .keras archive"):
    inference.load_predictor(bad_model)
  shutil.copy(model_dir / "model.keras", tmp_path / "good.keras")
  meta_path = tmp_path / artifacts.METADATA_FILENAME
  meta_path.write_text("{not json")
  with pytest.raises(ValueError, match=f"{meta_path}: corrupt"):
    inference.load_predictor(tmp_path / "good.keras")
  meta = json.loads((model_dir / artifacts.METADATA_FILENAME).read_text())
  meta["camera"] = None
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(ValueError, match=f"{meta_path}: input 'defocus' needs a 'camera'"):
    artifacts.read_metadata(meta_path)
  meta["input"] = "blurry"
  meta_path.write_text(json.dumps(meta))
  with pytest.raises(ValueError, match="'input' must be one of"):
    artifacts.read_metadata(tmp_path)
  with pytest.raises(ValueError, match="needs a 'camera'"):
    artifacts.Metadata.for_training(input_kind="defocus")
  with pytest.raises(ValueError, match="missing"):
    artifacts.Metadata.for_training(camera={"focal_length_m": 0.015})
  assert os.path.exists(meta_path)


def _bayesian_predictor(seed=0, **overrides):
  keras.utils.set_random_seed(seed)
  config = D3NetConfig.tiny(**overrides)
  return inference.Predictor(build_d3net(config),
                             artifacts.Metadata(model_config=config.to_dict()))


@pytest.mark.parametrize("kind,factor", [("gaussian", 1.0), ("laplace", 2.0)])
def test_aleatoric_head_gives_its_std_without_sampling(kind, factor):
  predictor = _bayesian_predictor(aleatoric=kind, dropout_blocks=0)
  assert predictor.aleatoric == kind and predictor.num_mc_layers == 0
  model = predictor.model
  head = model.get_layer("log_scale_conv")
  rng = np.random.default_rng(0)
  head.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in head.get_weights()])
  images = _images(2, 50, 40)
  out = predictor.predict(images)
  assert set(out) == {"depth", "aleatoric_std", "depth_std"}
  padded, box = inference.pad_to_multiple(images.astype(np.float32) / 255.0)
  raw = model.predict(padded, verbose=0)
  crop = (slice(None), slice(box[0], box[0] + 50), slice(box[2], box[2] + 40), 0)
  expected = np.sqrt(factor) * np.exp(raw["log_scale"][crop])
  assert np.ptp(expected) > 0.01
  np.testing.assert_allclose(out["aleatoric_std"], expected, rtol=1e-5)
  np.testing.assert_array_equal(out["depth_std"], out["aleatoric_std"])  # No epistemic part.
  np.testing.assert_allclose(out["depth"], raw["depth"][crop], rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="no MCDropout or variational layer"):
    predictor.predict(images, samples=2)


def test_mc_samples_split_epistemic_and_aleatoric_std():
  predictor = _bayesian_predictor(seed=1, aleatoric="gaussian", variational_blocks=(5, 4),
                                  num_train_examples=10, posterior_scale_init=0.05)
  assert predictor.num_mc_layers == 6 and predictor.is_bayesian
  images = _images(2, 32, 64, seed=3)
  out = predictor.predict(images, samples=5)
  assert set(out) == {"depth", "epistemic_std", "aleatoric_std", "depth_std"}
  assert all(v.shape == (2, 32, 64) and v.dtype == np.float32 for v in out.values())
  assert out["epistemic_std"].mean() > 0 and np.all(out["aleatoric_std"] > 0)
  np.testing.assert_allclose(out["depth_std"] ** 2, out["epistemic_std"] ** 2 +
                             out["aleatoric_std"] ** 2, rtol=1e-4)
  again = predictor.predict(images, samples=5)
  assert not np.allclose(again["depth"], out["depth"])  # Two sampled predictions differ.
  deterministic = predictor.predict(images)
  np.testing.assert_array_equal(predictor.predict(images)["depth"], deterministic["depth"])
  assert "epistemic_std" not in deterministic


def test_mc_mean_of_t_samples_has_variance_falling_like_one_over_t():
  # Flipout only (no dropout): every sample of the 128 copies of one image is its own draw, and
  # the copies give 128 independent MC means of the same input.
  predictor = _bayesian_predictor(seed=2, variational_blocks=(5, 4, 3), num_train_examples=10,
                                  posterior_scale_init=0.1, dropout_blocks=0)
  copies = np.repeat(_images(1, 32, 32, seed=4), 128, axis=0)
  variance = {t: predictor.predict(copies, samples=t)["depth"].var(axis=0).mean()
              for t in (4, 16)}
  assert variance[4] > 1e-8
  assert 2.0 < variance[4] / variance[16] < 8.0, variance


def test_reparameterization_samples_of_one_image_go_in_separate_passes():
  predictor = _bayesian_predictor(seed=3, variational_blocks=(5, 4, 3, 2, 1),
                                  num_train_examples=10, variational_type="reparameterization",
                                  posterior_scale_init=0.3, dropout_blocks=0)
  assert [rows.tolist() for rows in predictor._passes(3, 2, chunk=8)] == [[0, 2, 4], [1, 3, 5]]
  assert [rows.tolist() for rows in predictor._passes(3, 2, chunk=2)] == [
      [0, 2], [4], [1, 3], [5]]
  image = _images(1, 32, 32, seed=5)
  assert predictor.predict(image, samples=4)["epistemic_std"].mean() > 1e-4
  # Batched in one pass, the four samples would share one kernel and be identical.
  predictor._shared_samples = False
  np.testing.assert_array_equal(predictor.predict(image, samples=4)["epistemic_std"], 0.0)
