"""Tests of the Bayesian parts of d3tf.models: variational convolutions, aleatoric head, KL."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from d3tf import losses
from d3tf import models
from d3tf.models import D3NetConfig
from d3tf.models import variational
from d3tf.training import callbacks
from d3tf.training import keras_metrics

_LAYERS = (models.Conv2DFlipout, models.Conv2DReparameterization)


def _images(batch, height, width, seed=0):
  return np.random.default_rng(seed).uniform(size=(batch, height, width, 3)).astype(np.float32)


def _features(seed=0):
  return np.random.default_rng(seed).normal(size=(4, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("cls", _LAYERS)
def test_kl_is_finite_positive_and_scales_with_one_over_n(cls):
  keras.utils.set_random_seed(0)
  layer_n = cls(4, 3, num_train_examples=100, prior_scale=0.5, posterior_scale_init=0.01)
  layer_2n = cls(4, 3, num_train_examples=200, prior_scale=0.5, posterior_scale_init=0.01)
  x = _features()
  layer_n(x), layer_2n(x)
  layer_2n.set_weights(layer_n.get_weights())
  kl_n, kl_2n = float(layer_n.kl_loss()), float(layer_2n.kl_loss())
  assert math.isfinite(kl_n) and kl_n > 0
  assert kl_n / kl_2n == pytest.approx(2.0, rel=1e-6)
  # The closed form of KL(N(m, s) || N(0, p)), summed over the kernel, divided by N.
  m = layer_n.kernel_loc.numpy().astype(np.float64)
  s = np.log1p(np.exp(layer_n.kernel_rho.numpy().astype(np.float64)))
  np.testing.assert_allclose(s, 0.01, rtol=1e-4)  # posterior_scale_init.
  closed = np.sum(np.log(0.5 / s) + (s ** 2 + m ** 2) / (2 * 0.25) - 0.5) / 100
  assert kl_n == pytest.approx(closed, rel=1e-4)
  assert isinstance(layer_n.posterior(), tfp.distributions.Normal)
  # The layer adds the term on every call; the annealing weight scales it.
  assert [float(v) for v in layer_n.losses] == pytest.approx([kl_n])
  layer_n.kl_weight.assign(0.25)
  layer_n(x)
  assert [float(v) for v in layer_n.losses] == pytest.approx([0.25 * kl_n], rel=1e-6)


@pytest.mark.parametrize("cls", _LAYERS)
def test_samples_only_in_training_or_mc_mode(cls):
  keras.utils.set_random_seed(1)
  layer = cls(5, 3, num_train_examples=10, posterior_scale_init=0.05, use_bias=True)
  x = _features(1)
  mean = layer(x).numpy()
  np.testing.assert_array_equal(layer(x).numpy(), mean)  # Posterior mean: deterministic.
  expected = tf.nn.conv2d(x, layer.kernel_loc, 1, "SAME").numpy() + layer.bias.numpy()
  np.testing.assert_allclose(mean, expected, rtol=1e-5, atol=1e-5)
  first, second = layer(x, training=True).numpy(), layer(x, training=True).numpy()
  assert not np.allclose(first, second) and not np.allclose(first, mean)
  layer.mc_enabled = True
  draws = np.stack([layer(x).numpy() for _ in range(200)])
  assert not np.allclose(draws[0], draws[1])
  # Unbiased around the posterior mean: the mean of 200 draws is close to it.
  spread = draws.std(axis=0)
  assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * spread / math.sqrt(200) + 1e-6)


def test_flipout_samples_differ_across_a_batch_and_reparameterization_shares_one():
  keras.utils.set_random_seed(2)
  x = np.repeat(_features(2)[:1], 4, axis=0)  # One input, four times.
  for cls, shared in ((models.Conv2DFlipout, False), (models.Conv2DReparameterization, True)):
    layer = cls(3, 3, num_train_examples=10, posterior_scale_init=0.1)
    out = layer(x, training=True).numpy()
    assert cls.shares_sample_in_batch is shared
    assert np.allclose(out[0], out[1]) is shared, cls.__name__


def test_layers_serialise_and_check_arguments():
  for cls in _LAYERS:
    layer = cls(6, (3, 1), strides=2, padding="valid", use_bias=False, num_train_examples=7,
                prior_scale=0.3, posterior_scale_init=0.02, seed=5, name="v")
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.compute_output_shape((2, 9, 9, 4)) == (2, 4, 5, 6)
    assert tuple(clone(np.zeros((2, 9, 9, 4), np.float32)).shape) == (2, 4, 5, 6)
  with pytest.raises(ValueError, match="num_train_examples.*0"):
    models.Conv2DFlipout(4, 3, num_train_examples=0)
  with pytest.raises(ValueError, match="posterior_scale_init.*-1"):
    models.Conv2DFlipout(4, 3, posterior_scale_init=-1)
  with pytest.raises(ValueError, match="padding.*'full'"):
    models.Conv2DReparameterization(4, 3, padding="full")
  with pytest.raises(ValueError, match="variational_type.*'bayes'"):
    variational.variational_conv_class("bayes")


def test_log_scale_layer_bounds_the_scale_and_serialises():
  layer = models.LogScale(min_scale=0.01, name="s")
  z = np.array([-100.0, 0.0, 100.0], np.float32)
  np.testing.assert_allclose(np.exp(layer(z).numpy()), [0.01, math.log(2.0) + 0.01, 100.01],
                             rtol=1e-5)
  assert models.LogScale.from_config(layer.get_config()).min_scale == 0.01
  with pytest.raises(ValueError, match="min_scale.*0"):
    models.LogScale(min_scale=0)


def test_config_fields_validate_and_round_trip():
  config = D3NetConfig.tiny(variational_blocks=[4, 5], num_train_examples=50,
                            variational_type="reparameterization", aleatoric="laplace")
  assert config.variational_blocks == (5, 4) and config.is_bayesian
  assert D3NetConfig.from_dict(config.to_dict()) == config
  assert not D3NetConfig.tiny().is_bayesian and D3NetConfig.full().variational_blocks == ()
  bad = [dict(variational_blocks=(6,), num_train_examples=5),
         dict(variational_blocks=(5, 5), num_train_examples=5),
         dict(variational_blocks=(5,)),  # No num_train_examples.
         dict(variational_type="mc", variational_blocks=(5,), num_train_examples=5),
         dict(aleatoric="cauchy"), dict(num_train_examples=0), dict(prior_scale=0.0),
         dict(posterior_scale_init=-1e-3)]
  for overrides in bad:
    name = "num_train_examples" if overrides == dict(variational_blocks=(5,)) else next(
        iter(overrides))
    with pytest.raises(ValueError, match=name):
      D3NetConfig.tiny(**overrides)


@pytest.fixture(scope="module")
def bayesian_model():
  keras.utils.set_random_seed(3)
  config = D3NetConfig.tiny(variational_blocks=(5, 4), num_train_examples=64,
                            posterior_scale_init=0.02, aleatoric="gaussian")
  return models.build_d3net(config)


def test_bayesian_model_layers_and_outputs(bayesian_model):
  model = bayesian_model
  kinds = {k: type(model.get_layer(f"decoder{k}_conv")).__name__ for k in range(1, 6)}
  assert kinds == {5: "Conv2DFlipout", 4: "Conv2DFlipout", 3: "Conv2D", 2: "Conv2D",
                   1: "Conv2D"}
  out = model(_images(2, 64, 32))
  assert set(out) == {"depth", "log_scale"}
  assert out["depth"].shape == out["log_scale"].shape == (2, 64, 32, 1)
  # The untrained head predicts a 1 m scale everywhere.
  np.testing.assert_allclose(np.exp(out["log_scale"].numpy()), 1.0 + 1e-3, rtol=1e-4)
  kl = [float(v) for v in model.losses]
  assert len(kl) == 2 and all(v > 0 for v in kl)
  assert models.set_mc_sampling(model, False) == 2 + 4  # Two variational, four dropout layers.
  assert models.set_kl_weight(model, 0.5) == 2
  model(_images(1, 32, 32))
  assert [float(v) for v in model.losses] == pytest.approx([0.5 * v for v in kl], rel=1e-5)
  models.set_kl_weight(model, 1.0)
  # Parameters: the two variational convs double their kernels (loc and rho) plus kl_weight.
  plain = models.build_d3net(D3NetConfig.tiny(aleatoric="gaussian"))
  extra = sum(int(np.prod(model.get_layer(f"decoder{k}_conv").kernel_loc.shape)) + 1
              for k in (5, 4))
  assert model.count_params() == plain.count_params() + extra


def test_sampling_switch_on_a_model(bayesian_model):
  model = bayesian_model
  x = _images(2, 32, 32, seed=4)
  models.set_mc_sampling(model, False)
  reference = model.predict(x, verbose=0)["depth"]
  np.testing.assert_array_equal(model.predict(x, verbose=0)["depth"], reference)
  models.set_mc_dropout(model, True)  # Dropout only: variational layers stay at their mean.
  assert not any(layer.mc_enabled for layer in models.variational_layers(model))
  models.set_mc_dropout(model, False)
  models.set_mc_sampling(model, True)
  try:
    first, second = model(x)["depth"].numpy(), model(x)["depth"].numpy()
  finally:
    models.set_mc_sampling(model, False)
  assert not np.allclose(first, second)
  np.testing.assert_array_equal(model.predict(x, verbose=0)["depth"], reference)


@pytest.mark.parametrize("variational_type", ["flipout", "reparameterization"])
def test_variational_model_saves_and_reloads(variational_type, tmp_path):
  keras.utils.set_random_seed(5)
  config = D3NetConfig.tiny(variational_blocks=(5, 4, 3), num_train_examples=10,
                            variational_type=variational_type, posterior_scale_init=0.05,
                            aleatoric="laplace", dropout_blocks=0)
  model = models.build_d3net(config)
  rng = np.random.default_rng(6)
  for layer in models.variational_layers(model):  # Non-trivial posteriors.
    layer.kernel_rho.assign(rng.uniform(-4, -2, layer.kernel_rho.shape).astype(np.float32))
  models.set_kl_weight(model, 0.3)
  path = tmp_path / "bayes.keras"
  model.save(path)
  loaded = keras.models.load_model(path)
  assert models.config_from_model(loaded) == config
  x = _images(2, 64, 64, seed=7)
  expected = model.predict(x, verbose=0)
  got = loaded.predict(x, verbose=0)
  assert np.ptp(expected["depth"]) > 0.01
  for key in ("depth", "log_scale"):
    np.testing.assert_array_equal(got[key], expected[key])
  for a, b in zip(models.variational_layers(model), models.variational_layers(loaded)):
    assert type(a) is type(b) and a.name == b.name
    np.testing.assert_array_equal(a.kernel_rho.numpy(), b.kernel_rho.numpy())
    assert float(b.kl_weight.numpy()) == pytest.approx(0.3)
  assert models.set_mc_sampling(loaded, True) == 3
  assert not np.allclose(loaded(x)["depth"].numpy(), expected["depth"])


def test_fit_tracks_data_loss_and_kl_separately():
  keras.utils.set_random_seed(8)
  config = D3NetConfig.tiny(variational_blocks=(5,), num_train_examples=16, aleatoric="gaussian")
  model = models.build_d3net(config)
  model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get_nll_loss("gaussian"),
                metrics=[keras_metrics.MaskedAbsRel()])
  x = _images(4, 32, 32)
  y = np.full((4, 32, 32, 1), 2.0, np.float32)
  anneal = callbacks.KLAnnealing(warmup_steps=4)
  history = model.fit(x, y, batch_size=2, epochs=3, verbose=0, validation_data=(x, y),
                      callbacks=[anneal]).history
  assert {"loss", "nll", "kl", "rel", "val_loss", "val_nll", "val_kl", "val_rel"} <= set(history)
  kl = models.variational_layers(model)[0].kl_divergence().numpy() / 16
  # Validation after the warm-up: the full KL, and the loss is NLL + KL.
  assert history["val_kl"][-1] == pytest.approx(kl, rel=1e-4)
  for val_loss, val_nll, val_kl in zip(history["val_loss"], history["val_nll"],
                                       history["val_kl"]):
    assert val_loss == pytest.approx(val_nll + val_kl, rel=1e-5)
  # Epoch 1 (steps 0, 1) trains with weights 0 and 0.25: its mean KL is an eighth of the full
  # one, and its validation keeps the last step's weight, 0.25 (the KL itself changes little).
  assert history["kl"][0] == pytest.approx(history["val_kl"][-1] / 8, rel=0.05)
  assert history["val_kl"][0] == pytest.approx(history["val_kl"][-1] / 4, rel=0.05)
  assert anneal.weight == 1.0
  # Variational without an aleatoric head: the compiled loss is the data loss.
  config = D3NetConfig.tiny(variational_blocks=(4,), num_train_examples=16)
  model = models.build_d3net(config)
  model.compile(optimizer="adam", loss=losses.l1_loss)
  history = model.fit(x, y, batch_size=4, epochs=1, verbose=0).history
  assert set(history) == {"loss", "data_loss", "kl"}
  assert history["loss"][0] == pytest.approx(history["data_loss"][0] + history["kl"][0],
                                             rel=1e-5)
  # A plain D3Net logs no extra terms.
  plain = models.build_d3net(D3NetConfig.tiny())
  plain.compile(optimizer="adam", loss=losses.l1_loss)
  assert set(plain.fit(x, y, epochs=1, verbose=0).history) == {"loss"}


def test_kl_annealing_schedule():
  anneal = callbacks.KLAnnealing(warmup_steps=10, final_weight=0.5)
  assert [anneal.weight_at(s) for s in (0, 5, 10, 20)] == [0.0, 0.25, 0.5, 0.5]
  assert callbacks.KLAnnealing(0).weight_at(0) == 1.0
  with pytest.raises(ValueError, match="warmup_steps.*-1"):
    callbacks.KLAnnealing(-1)
