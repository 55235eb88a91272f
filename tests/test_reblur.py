"""Tests of ReblurRatios (multi-scale re-blur ratios) and D3-Net's 'rgb+reblur' input."""

import json

import keras
import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from d3tf import models
from d3tf.models import D3NetConfig

INNER = (slice(None), slice(16, -16), slice(16, -16))


def _texture(size=96, seed=0):
  """A grey-level texture with detail at all scales, as RGB in [0.1, 0.9]."""
  rng = np.random.default_rng(seed)
  grey = sum(ndimage.zoom(rng.normal(size=(size // z, size // z)), z, order=1) / z ** 0.5
             for z in (1, 2, 4))
  grey = 0.5 + 0.4 * grey / np.abs(grey).max()
  return np.repeat(grey[None, :, :, None], 3, axis=-1).astype(np.float32)


def _edge(blur, size=64):
  """A vertical step edge (0.2 -> 0.8) blurred by a Gaussian of ``blur`` pixels, as RGB."""
  grey = np.where(np.arange(size) < size // 2, 0.2, 0.8)[None, :].repeat(size, 0)
  if blur:
    grey = ndimage.gaussian_filter1d(grey, blur, axis=1, mode="nearest")
  return np.repeat(grey[None, :, :, None], 3, axis=-1).astype(np.float32)


def test_reblur_ratios_ignore_contrast():
  layer = models.ReblurRatios()
  image = _texture()
  features = layer(image).numpy()
  assert features.shape == image.shape[:3] + (3,) and np.all(np.isfinite(features))
  for scale in (0.5, 0.1):
    other = layer(0.5 + scale * (image - 0.5)).numpy()
    np.testing.assert_allclose(other[INNER], features[INNER], atol=0.02)
  assert np.mean(np.abs(features[INNER])) > 0.1  # Not trivially zero.


def test_reblur_ratios_fall_monotonically_with_blur_on_an_edge_and_a_texture():
  layer = models.ReblurRatios()
  centre = (0, slice(16, 48), slice(28, 36))  # Rows away from borders, across the edge.
  edge = [layer(_edge(blur)).numpy()[centre].mean(axis=(0, 1)) for blur in (0, 1, 2, 4, 8)]
  for channel in range(3):
    values = [e[channel] for e in edge]
    assert all(a > b for a, b in zip(values, values[1:])), (channel, values)
  image = _texture()
  texture = [layer(ndimage.gaussian_filter(image, (0, s, s, 0)) if s else image)
             .numpy()[INNER].mean(axis=(0, 1, 2)) for s in (0, 1, 2, 3)]
  summed = [t.sum() for t in texture]
  assert all(a > b + 0.1 for a, b in zip(summed, summed[1:])), summed
  # A darker, lower-contrast copy of an edge of the same blur reads the same.
  dim = layer(0.1 + 0.3 * _edge(2)).numpy()[centre].mean(axis=(0, 1))
  np.testing.assert_allclose(dim, edge[2], atol=0.02)


def test_reblur_ratios_are_zero_and_finite_on_a_flat_image():
  features = models.ReblurRatios()(np.full((1, 32, 32, 3), 0.4, np.float32)).numpy()
  assert np.all(np.isfinite(features))
  np.testing.assert_allclose(features, 0.0, atol=1e-3)
  black = models.ReblurRatios()(np.zeros((2, 32, 48, 3), np.float32)).numpy()
  assert black.shape == (2, 32, 48, 3) and np.all(black == 0.0)


def test_reblur_ratios_validate_and_serialise():
  layer = models.ReblurRatios(sigmas=(0.5, 1.5), energy_window=9, floor=1e-3, name="rb")
  clone = models.ReblurRatios.from_config(json.loads(json.dumps(layer.get_config())))
  assert clone.get_config() == layer.get_config()
  assert clone.sigmas == (0.5, 1.5) and clone.energy_window == 9 and clone.floor == 1e-3
  image = _texture(64)
  np.testing.assert_allclose(clone(image).numpy(), layer(image).numpy(), atol=1e-6)
  assert layer(image).shape[-1] == 2
  for kwargs, field in (({"sigmas": (2.0, 1.0)}, "sigmas"), ({"sigmas": ()}, "sigmas"),
                        ({"sigmas": (0.0, 1.0)}, "sigmas"), ({"energy_window": 4}, "energy_window"),
                        ({"floor": 0.0}, "floor")):
    with pytest.raises(ValueError, match=f"ReblurRatios.{field}.*got"):
      models.ReblurRatios(**kwargs)


def test_reblur_converts_to_tflite_builtins_only():
  inputs = keras.Input((64, 64, 3), batch_size=1)
  model = keras.Model(inputs, models.ReblurRatios()(inputs))
  fn = tf.function(lambda x: model(x)).get_concrete_function(
      tf.TensorSpec([1, 64, 64, 3], tf.float32))
  converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
  flatbuffer = converter.convert()  # Raises if an op is not a TFLite builtin.
  assert len(flatbuffer) > 0
  try:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  except ImportError:
    return
  interpreter = Interpreter(model_content=flatbuffer)
  interpreter.allocate_tensors()
  image = _texture(64)[:1]
  interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
  interpreter.invoke()
  out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
  np.testing.assert_allclose(out, model(image).numpy(), atol=1e-4)


def test_reblur_input_feeds_six_channels_to_the_stem(tmp_path):
  keras.utils.set_random_seed(3)
  model = models.build_d3net(D3NetConfig.tiny(input_features="rgb+reblur"))
  assert model.get_layer("conv1_conv").get_weights()[0].shape == (7, 7, 6, 8)
  assert isinstance(model.get_layer("reblur_ratios"), models.ReblurRatios)
  images = np.random.default_rng(4).random((2, 64, 96, 3)).astype(np.float32)
  depth = model(images, training=False).numpy()
  assert depth.shape == (2, 64, 96, 1) and np.all(np.isfinite(depth))
  model.save(tmp_path / "reblur.keras")
  loaded = keras.models.load_model(tmp_path / "reblur.keras")
  assert loaded.d3net_config.input_features == "rgb+reblur"
  np.testing.assert_allclose(loaded(images, training=False).numpy(), depth, atol=1e-6)
