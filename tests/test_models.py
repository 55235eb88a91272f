"""Tests of d3tf.models: D3-Net's shapes, size, skips, MC dropout, saving, ImageNet weights."""

import json

import h5py
import keras
import numpy as np
import pytest

from d3tf import models
from d3tf.models import D3NetConfig

_PAPER_PARAMETERS = 24.2e6


def _images(batch, height, width, seed=0):
  return np.random.default_rng(seed).uniform(size=(batch, height, width, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model():
  keras.utils.set_random_seed(1)
  return models.build_d3net(D3NetConfig.tiny())


@pytest.mark.parametrize("height,width", [(32, 32), (64, 96), (96, 64), (128, 32)])
def test_output_is_positive_depth_at_input_resolution(tiny_model, height, width):
  depth = tiny_model(_images(2, height, width), training=False).numpy()
  assert depth.shape == (2, height, width, 1)
  assert np.all(np.isfinite(depth))
  assert np.all(depth > 0.0)
  assert np.all(depth < tiny_model.d3net_config.max_depth_m)


def test_size_not_a_multiple_of_32_is_a_clear_error(tiny_model):
  with pytest.raises(ValueError, match="multiples of 32.*48x64"):
    tiny_model(_images(1, 48, 64))


def test_full_size_has_the_papers_parameter_count():
  model = models.build_d3net(D3NetConfig.full())
  trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
  total = model.count_params()
  print(f"\nD3-Net full: {trainable:,} trainable parameters, {total:,} with BN statistics")
  # The paper counts PyTorch parameters: trainable ones, without BN running statistics.
  assert abs(trainable - _PAPER_PARAMETERS) / _PAPER_PARAMETERS < 0.02
  assert trainable < total < trainable * 1.01
  # DenseNet-121 encoder shapes: 1024 channels at the bottleneck, paper decoder widths.
  assert model.get_layer(models.ENCODER_OUTPUT_NAME).output.shape[-1] == 1024
  assert [model.get_layer(f"decoder{k}_conv").filters for k in (5, 4, 3, 2, 1)] == [
      512, 256, 128, 64, 64]


def test_small_and_tiny_are_small():
  small = models.build_d3net(D3NetConfig.small()).count_params()
  tiny = models.build_d3net(D3NetConfig.tiny()).count_params()
  medium = models.build_d3net(D3NetConfig.medium()).count_params()
  print(f"\nD3-Net small: {small:,} parameters; tiny: {tiny:,}; medium: {medium:,}")
  assert 2e5 < small < 2e6
  assert tiny < 3e4
  # Medium: larger than small, and its float32 weights well under a shipped model's 20 MB.
  assert small < medium and 4 * medium < 10e6


def test_skips_come_from_named_layers_at_halving_resolutions(tiny_model):
  names = models.SKIP_LAYER_NAMES
  probe = keras.Model(tiny_model.input, [tiny_model.get_layer(n).output for n in names])
  outputs = probe(_images(1, 64, 64))
  assert [tuple(o.shape[1:3]) for o in outputs] == [(32, 32), (16, 16), (8, 8), (4, 4)]
  # Each skip feeds the concatenation before the decoder block at its resolution.
  for k, name in zip((1, 2, 3, 4), names):
    concat_inputs = tiny_model.get_layer(f"decoder{k}_concat").input
    assert any(t is tiny_model.get_layer(name).output for t in concat_inputs), (k, name)
  with pytest.raises(ValueError):
    tiny_model.get_layer("decoder5_concat")  # The bottleneck has no skip.


def test_dropout_only_in_the_two_deepest_decoder_blocks(tiny_model):
  dropout = [l for l in tiny_model.layers if isinstance(l, keras.layers.Dropout)]
  assert dropout and all(isinstance(l, models.MCDropout) for l in dropout)
  assert sorted(l.name for l in dropout) == [
      "decoder4_dropout", "decoder4_up_dropout", "decoder5_dropout", "decoder5_up_dropout"]
  assert all(l.rate == 0.5 for l in dropout)
  none = models.build_d3net(D3NetConfig.tiny(dropout_blocks=0))
  assert not [l for l in none.layers if isinstance(l, keras.layers.Dropout)]


def test_mc_dropout_samples_only_when_enabled():
  keras.utils.set_random_seed(2)
  model = models.build_d3net(D3NetConfig.tiny())
  x = _images(2, 64, 64)
  first, first_eager = model.predict(x, verbose=0), model(x).numpy()
  np.testing.assert_array_equal(first, model.predict(x, verbose=0))
  np.testing.assert_array_equal(first_eager, model(x).numpy())
  assert models.set_mc_dropout(model, True) == 4
  draws = [model.predict(x, verbose=0) for _ in range(2)] + [model(x).numpy()]
  assert not np.allclose(draws[0], draws[1])
  assert not np.allclose(draws[1], draws[2])
  assert models.set_mc_dropout(model, False) == 4
  np.testing.assert_array_equal(first, model.predict(x, verbose=0))
  np.testing.assert_array_equal(first_eager, model(x).numpy())


def test_mc_dropout_keeps_batch_norm_in_inference_mode():
  keras.utils.set_random_seed(3)
  model = models.build_d3net(D3NetConfig.tiny(dropout_rate=0.0))  # MC layers, no dropping.
  x = _images(2, 32, 32)
  reference = model(x).numpy()
  models.set_mc_dropout(model, True)
  np.testing.assert_allclose(model(x).numpy(), reference, rtol=1e-6)
  # Batch statistics (training mode) would change the output.
  assert not np.allclose(model(x, training=True).numpy(), reference, rtol=1e-3)


def test_save_and_load_round_trip(tiny_model, tmp_path):
  rng = np.random.default_rng(4)
  for weight in tiny_model.non_trainable_weights:  # Non-trivial BN statistics.
    low, high = (0.5, 1.5) if "variance" in weight.path else (-0.1, 0.1)
    weight.assign(rng.uniform(low, high, size=weight.shape).astype(np.float32))
  path = tmp_path / "tiny.keras"
  tiny_model.save(path)
  loaded = keras.models.load_model(path)  # No custom_objects needed.
  assert isinstance(loaded, models.D3Net)
  assert models.config_from_model(loaded) == tiny_model.d3net_config
  x = _images(2, 64, 32)
  expected = tiny_model.predict(x, verbose=0)
  assert np.ptp(expected) > 0.1  # Not a constant (saturated) output.
  np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
  assert models.set_mc_dropout(loaded, True) == 4
  assert not np.allclose(loaded(x).numpy(), tiny_model(x).numpy())


def test_config_round_trips_and_validates():
  for config in (D3NetConfig.full(), D3NetConfig.small(), D3NetConfig.medium(),
                 D3NetConfig.tiny(max_depth_m=20.0)):
    as_json = json.dumps(config.to_dict())
    assert D3NetConfig.from_dict(json.loads(as_json)) == config
  config = D3NetConfig.tiny(decoder_filters=[8, 8, 4, 4, 4])
  assert config.decoder_filters == (8, 8, 4, 4, 4)
  model = models.build_d3net(config)
  assert model.get_config()["config"] == config.to_dict()
  rebuilt = models.D3Net.from_config(model.get_config())
  assert models.config_from_model(rebuilt) == config
  assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
  bad = [dict(block_layers=(1, 1, 1)), dict(decoder_filters=(8, 8, 8, 8, 0)),
         dict(growth_rate=2.5), dict(dropout_rate=1.0), dict(max_depth_m=-1.0),
         dict(dropout_blocks=6), dict(compression=0.0)]
  for overrides in bad:
    with pytest.raises(ValueError, match=next(iter(overrides))):
      D3NetConfig.tiny(**overrides)
  with pytest.raises(ValueError, match="Unknown D3NetConfig fields"):
    D3NetConfig.from_dict({"growth": 4})
  with pytest.raises(ValueError, match="not a D3Net"):
    models.config_from_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))


def test_custom_layers_serialise():
  for layer in (models.MCDropout(0.3, name="d"), models.SizeMultipleCheck(16, name="s")):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
  assert models.SizeMultipleCheck.from_config(
      models.SizeMultipleCheck(16).get_config()).multiple == 16


def _texture(size=96, seed=0):
  """A grey-level texture with detail at all scales, as RGB in [0.1, 0.9]."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  grey = sum(ndimage.zoom(rng.normal(size=(size // z, size // z)), z, order=1) / z ** 0.5
             for z in (1, 2, 4))
  grey = 0.5 + 0.4 * grey / np.abs(grey).max()
  return np.repeat(grey[None, :, :, None], 3, axis=-1).astype(np.float32)


def test_bandpass_sharpness_ignores_contrast_and_falls_with_blur():
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  layer = models.BandPassSharpness()
  image = _texture()
  inner = (slice(None), slice(16, -16), slice(16, -16))
  features = layer(image).numpy()
  assert features.shape == image.shape and np.all(np.isfinite(features))
  # Halving the texture's contrast leaves the band ratio unchanged and the normalised bands
  # nearly so (their 1e-3 floor differs by a few per cent from the band's RMS).
  low_contrast = layer(0.5 + 0.5 * (image - 0.5)).numpy()
  np.testing.assert_allclose(low_contrast[inner][..., 2], features[inner][..., 2], atol=0.02)
  for channel in (0, 1):
    change = np.abs(low_contrast[inner][..., channel] - features[inner][..., channel])
    assert np.mean(change) < 0.05 * np.mean(np.abs(features[inner][..., channel]))
  # A flat image gives zero bands and a ratio near 0 (both RMS at the floor), finite.
  flat = layer(np.full((1, 32, 32, 3), 0.4, np.float32)).numpy()
  np.testing.assert_allclose(flat[..., :2], 0.0, atol=1e-2)  # Float round-off / floor.
  np.testing.assert_allclose(flat[..., 2], np.log(1 / 1.1), atol=1e-3)
  # Blur lowers the fine-to-middle band ratio (channel 2), the more the stronger.
  ratios = [np.mean(features[inner][..., 2])]
  for sigma in (0.7, 1.5):
    blurred = ndimage.gaussian_filter(image, (0, sigma, sigma, 0))
    ratios.append(np.mean(layer(blurred).numpy()[inner][..., 2]))
  assert ratios[0] > ratios[1] + 0.3 and ratios[1] > ratios[2] + 0.3, ratios


def test_bandpass_sharpness_validates_and_serialises():
  layer = models.BandPassSharpness(fine_window=5, middle_window=11, rms_window=21, floor=1e-3,
                                   name="bp")
  clone = models.BandPassSharpness.from_config(layer.get_config())
  assert clone.get_config() == layer.get_config() and clone.rms_window == 21
  assert clone.floor == 1e-3
  for kwargs, field in (({"fine_window": 4}, "fine_window"), ({"rms_window": 1}, "rms_window"),
                        ({"fine_window": 9, "middle_window": 9}, "middle_window"),
                        ({"floor": 0.0}, "floor")):
    with pytest.raises(ValueError, match=f"BandPassSharpness.{field}.*got"):
      models.BandPassSharpness(**kwargs)


def test_bandpass_input_feeds_six_channels_to_the_stem(tmp_path):
  with pytest.raises(ValueError, match=r"input_features must be one of.*'rgb\+depth'"):
    D3NetConfig.tiny(input_features="rgb+depth")
  keras.utils.set_random_seed(3)
  rgb = models.build_d3net(D3NetConfig.tiny())
  model = models.build_d3net(D3NetConfig.tiny(input_features="rgb+bandpass"))
  config = model.d3net_config
  assert model.get_layer("conv1_conv").get_weights()[0].shape == (7, 7, 6, 8)
  assert model.count_params() - rgb.count_params() == 7 * 7 * 3 * config.init_features
  assert D3NetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
  images = _images(2, 64, 96, seed=4)
  depth = model(images, training=False).numpy()
  assert depth.shape == (2, 64, 96, 1) and np.all(np.isfinite(depth))
  model.save(tmp_path / "bandpass.keras")
  loaded = keras.models.load_model(tmp_path / "bandpass.keras")
  assert loaded.d3net_config.input_features == "rgb+bandpass"
  np.testing.assert_allclose(loaded(images, training=False).numpy(), depth, atol=1e-6)


def test_bandpass_floor_reaches_the_layer_and_survives_saving(tmp_path):
  with pytest.raises(ValueError, match=r"bandpass_floor must be in \(0, 1\), got 0"):
    D3NetConfig.tiny(input_features="rgb+bandpass", bandpass_floor=0)
  assert D3NetConfig.tiny().bandpass_floor == 1e-4
  model = models.build_d3net(D3NetConfig.tiny(input_features="rgb+bandpass",
                                              bandpass_floor=1e-3))
  assert model.get_layer("bandpass_sharpness").floor == 1e-3
  model.save(tmp_path / "floor.keras")
  loaded = keras.models.load_model(tmp_path / "floor.keras")
  assert loaded.d3net_config.bandpass_floor == 1e-3
  assert loaded.get_layer("bandpass_sharpness").floor == 1e-3


@pytest.mark.slow
def test_tiny_model_trains():
  keras.utils.set_random_seed(5)
  model = models.build_d3net(D3NetConfig.tiny())
  model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae", jit_compile=False)
  x = _images(8, 32, 32)
  y = np.full((8, 32, 32, 1), 2.0, np.float32)  # The untrained net predicts about 5 m.
  history = model.fit(x, y, batch_size=4, epochs=6, verbose=0).history["loss"]
  assert np.all(np.isfinite(history))
  assert history[-1] < 0.5 * history[0]


@pytest.mark.slow
@pytest.mark.long  # Not in the default run (pytest.ini): 41 s (the full D3-Net); CI's time limit.
def test_imagenet_weights_are_copied_into_the_encoder(tmp_path):
  from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(6)
  source = keras.applications.DenseNet121(include_top=False, weights=None,
                                          input_shape=(None, None, 3))
  keras_file = tmp_path / "densenet121.weights.h5"  # Keras 3's weights format.
  source.save_weights(keras_file)
  # The layout of densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5 (legacy HDF5).
  legacy_file = tmp_path / "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"
  with h5py.File(legacy_file, "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, source)

  for path in (legacy_file, keras_file):
    model = models.build_d3net(D3NetConfig.full(), imagenet_weights=str(path))
    for name in ("conv1_conv", "conv4_block17_2_conv", "pool3_conv", "bn"):
      for got, want in zip(model.get_layer(name).get_weights(),
                           source.get_layer(name).get_weights()):
        np.testing.assert_array_equal(got, want, err_msg=f"{path.name}: {name}")

  # With band-pass input the stem gets ImageNet's kernel on its RGB channels only.
  bandpass = models.build_d3net(D3NetConfig.full(input_features="rgb+bandpass"),
                                imagenet_weights=str(legacy_file))
  stem = bandpass.get_layer("conv1_conv").get_weights()[0]
  want = source.get_layer("conv1_conv").get_weights()[0]
  assert stem.shape == (7, 7, 6, 64)
  np.testing.assert_array_equal(stem[:, :, :3], want)
  assert np.std(stem[:, :, 3:]) > 0  # Its own random initialisation.
  np.testing.assert_array_equal(bandpass.get_layer("pool3_conv").get_weights()[0],
                                source.get_layer("pool3_conv").get_weights()[0])

  # The replaced stem convolution and the decoder keep their own initialisation.
  assert model.get_layer("down1_conv").get_weights()[0].shape == (4, 4, 64, 64)

  with pytest.raises(FileNotFoundError, match="missing.h5"):
    models.build_d3net(D3NetConfig.full(), imagenet_weights=str(tmp_path / "missing.h5"))
  wrong = tmp_path / "wrong.weights.h5"
  models.build_d3net(D3NetConfig.tiny()).save_weights(wrong)
  with pytest.raises(ValueError, match="wrong.weights.h5.*does not match"):
    models.build_d3net(D3NetConfig.full(), imagenet_weights=str(wrong))
  with pytest.raises(ValueError, match="DenseNet-121 encoder"):
    models.build_d3net(D3NetConfig.tiny(), imagenet_weights=str(keras_file))
