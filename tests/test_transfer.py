"""Tests of d3tf.models.copy_weights_by_name (``--init_from`` across model variants)."""

import keras
import numpy as np
import pytest

from d3tf import models
from d3tf.models import D3NetConfig


def _images(seed=0):
  return np.random.default_rng(seed).uniform(0.0, 1.0, (2, 64, 64, 3)).astype(np.float32)


def _depth(model, images):
  out = model(images, training=False)
  return keras.ops.convert_to_numpy(out["depth"] if isinstance(out, dict) else out)


def test_deterministic_model_starts_a_bayesian_one_and_back():
  keras.utils.set_random_seed(0)
  plain = models.build_d3net(D3NetConfig.tiny())
  bayesian_config = D3NetConfig.tiny(variational_blocks=(5, 4), aleatoric="gaussian",
                                     num_train_examples=10, posterior_scale_init=0.02)
  bayesian = models.build_d3net(bayesian_config)
  images = _images()
  assert not np.allclose(_depth(bayesian, images), _depth(plain, images), atol=1e-3)
  rho_before = {layer.name: layer.kernel_rho.numpy() for layer in
                models.variational_layers(bayesian)}

  report = models.copy_weights_by_name(bayesian, plain)
  assert sorted(report.to_posterior_mean) == ["decoder4_conv", "decoder5_conv"]
  assert {"log_scale_conv"} <= set(report.kept) and report.unused == []
  assert not report.from_posterior_mean and len(report.copied) > 20
  for layer in models.variational_layers(bayesian):
    np.testing.assert_array_equal(layer.kernel_loc.numpy(),
                                  plain.get_layer(layer.name).get_weights()[0])
    np.testing.assert_array_equal(layer.kernel_rho.numpy(), rho_before[layer.name])
  # The deterministic pass of the Bayesian model (posterior means) is the source model.
  np.testing.assert_allclose(_depth(bayesian, images), _depth(plain, images), atol=1e-5)

  keras.utils.set_random_seed(1)
  fresh = models.build_d3net(D3NetConfig.tiny())
  back = models.copy_weights_by_name(fresh, bayesian)
  assert sorted(back.from_posterior_mean) == ["decoder4_conv", "decoder5_conv"]
  assert {"log_scale_conv"} <= set(back.unused) and back.kept == []
  np.testing.assert_allclose(_depth(fresh, images), _depth(plain, images), atol=1e-5)


def test_same_architecture_copies_everything():
  keras.utils.set_random_seed(2)
  source = models.build_d3net(D3NetConfig.tiny(variational_blocks=(5,), num_train_examples=4))
  keras.utils.set_random_seed(3)
  target = models.build_d3net(D3NetConfig.tiny(variational_blocks=(5,), num_train_examples=4))
  report = models.copy_weights_by_name(target, source)
  assert "decoder5_conv" in report.copied and not report.kept and not report.unused
  for got, want in zip(target.get_weights(), source.get_weights()):
    np.testing.assert_array_equal(got, want)


def test_mismatched_models_are_named():
  rgb = models.build_d3net(D3NetConfig.tiny())
  bandpass = models.build_d3net(D3NetConfig.tiny(input_features="rgb+bandpass"))
  with pytest.raises(ValueError, match=r"'conv1_conv'.*\(7, 7, 3, 8\).*\(7, 7, 6, 8\)"):
    models.copy_weights_by_name(bandpass, rgb)
  other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="unrelated")])
  with pytest.raises(ValueError, match="no layer with weights in common"):
    models.copy_weights_by_name(rgb, other)
