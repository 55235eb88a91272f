"""Tests of the fused BatchNormalization and of D3-Net's training-speed options.

The fused layer must be Keras' BatchNormalization in everything but speed:
outputs, gradients and moving statistics in training and inference, its
config, and the weight files of models built with either layer.
"""

import json
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from d3tf import models
from d3tf.models import D3NetConfig
from d3tf.models import batch_norm


def _training_step(layer, x):
  """Output and gradients (input, gamma, beta) of a non-trivial loss, in one tf.function."""

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)
      loss = tf.reduce_sum(y * tf.sin(y))
    return y, tape.gradient(loss, [x] + layer.trainable_variables)

  y, gradients = step(tf.constant(x))
  return y.numpy(), [g.numpy() for g in gradients]


def _close(actual, expected, rtol=1e-5):
  """Equal to ``rtol`` of the largest magnitude of ``expected`` (float32 round-off)."""
  np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("epsilon", [1.001e-5, 1e-3])
def test_fused_batch_norm_equals_keras_in_training_and_inference(epsilon):
  rng = np.random.default_rng(0)
  x = rng.normal(2.0, 3.0, (2, 5, 7, 6)).astype(np.float32)
  weights = [rng.normal(size=6).astype(np.float32), rng.normal(size=6).astype(np.float32),
             rng.normal(size=6).astype(np.float32), rng.uniform(0.5, 2, 6).astype(np.float32)]
  keras_layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=epsilon)
  fused_layer = batch_norm.BatchNormalization(momentum=0.9, epsilon=epsilon)
  for layer in (keras_layer, fused_layer):
    layer.build(x.shape)
    layer.set_weights(weights)
  expected_y, expected_gradients = _training_step(keras_layer, x)
  y, gradients = _training_step(fused_layer, x)
  assert np.abs(expected_y).max() > 1.0  # Normalised with gamma and beta, not trivially 0.
  _close(y, expected_y)
  for gradient, expected in zip(gradients, expected_gradients):
    _close(gradient, expected)
  # The moving averages took one step from different values: the same update.
  for weight, expected in zip(fused_layer.get_weights(), keras_layer.get_weights()):
    _close(weight, expected)
  assert not np.allclose(fused_layer.get_weights()[2], weights[2])
  _close(fused_layer(x, training=False).numpy(), keras_layer(x, training=False).numpy())
  # Same variables in the same order (the weight files address them so).
  assert ([v.name for v in fused_layer.weights] ==
          ["gamma", "beta", "moving_mean", "moving_variance"])


def test_fused_batch_norm_falls_back_to_keras_where_the_kernel_does_not_apply():
  x = np.random.default_rng(1).normal(size=(3, 4, 5)).astype(np.float32)  # 3-D: no fused kernel.
  keras_layer = keras.layers.BatchNormalization()
  fused_layer = batch_norm.BatchNormalization()
  np.testing.assert_array_equal(fused_layer(x, training=True).numpy(),
                                keras_layer(x, training=True).numpy())
  with pytest.raises(ValueError, match="fused must be True or False, got 'yes'"):
    batch_norm.BatchNormalization(fused="yes")


def test_fused_batch_norm_config_round_trips():
  layer = batch_norm.BatchNormalization(momentum=0.7, epsilon=2e-3, fused=False, name="bn")
  config = layer.get_config()
  assert config["fused"] is False and config["momentum"] == 0.7
  clone = batch_norm.BatchNormalization.from_config(config)
  assert clone.get_config() == config
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert isinstance(restored, batch_norm.BatchNormalization)
  assert restored.get_config() == config


def test_d3net_config_fused_batch_norm_field():
  assert D3NetConfig.tiny().fused_batch_norm is True
  assert "fused_batch_norm" not in D3NetConfig.tiny().to_dict()  # Default: older d3tf reads it.
  plain = D3NetConfig.tiny(fused_batch_norm=False)
  assert D3NetConfig.from_dict(plain.to_dict()) == plain
  with pytest.raises(ValueError, match="fused_batch_norm must be True or False, got 1"):
    D3NetConfig.tiny(fused_batch_norm=1)
  fused = models.build_d3net(D3NetConfig.tiny())
  keras_bn = models.build_d3net(plain)
  bn_layers = lambda m: [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
  assert bn_layers(fused) and all(isinstance(l, batch_norm.BatchNormalization)
                                  for l in bn_layers(fused))
  assert not any(isinstance(l, batch_norm.BatchNormalization) for l in bn_layers(keras_bn))
  assert [l.name for l in bn_layers(fused)] == [l.name for l in bn_layers(keras_bn)]


def _randomise_batch_norm_statistics(model, seed):
  rng = np.random.default_rng(seed)
  for weight in model.non_trainable_weights:
    low, high = (0.5, 1.5) if "variance" in weight.path else (-0.1, 0.1)
    weight.assign(rng.uniform(low, high, size=weight.shape).astype(np.float32))


def _without_config_key(source, target, key):
  """Copies a .keras file, dropping ``key`` from its D3NetConfig (a file of older d3tf)."""
  with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
    for item in zin.infolist():
      data = zin.read(item.filename)
      if item.filename == "config.json":
        config = json.loads(data)
        del config["config"]["config"][key]
        data = json.dumps(config).encode()
      zout.writestr(item, data)


def test_checkpoints_of_keras_batch_norm_models_load_into_fused_ones(tmp_path):
  keras.utils.set_random_seed(2)
  old = models.build_d3net(D3NetConfig.tiny(fused_batch_norm=False))
  _randomise_batch_norm_statistics(old, 3)
  x = np.random.default_rng(4).uniform(size=(2, 32, 64, 3)).astype(np.float32)
  expected = old(x, training=False).numpy()
  assert np.ptp(expected) > 0.1
  # A whole .keras file (weights under the layers' class names), loaded with today's default.
  path = tmp_path / "old.keras"
  old.save(tmp_path / "saved.keras")
  _without_config_key(tmp_path / "saved.keras", path, "fused_batch_norm")
  loaded = keras.models.load_model(path)
  assert loaded.d3net_config.fused_batch_norm
  assert isinstance(loaded.get_layer("conv2_block1_0_bn"), batch_norm.BatchNormalization)
  np.testing.assert_array_equal(loaded(x, training=False).numpy(), expected)
  # A weights file, into a model built anew, and back.
  weights = tmp_path / "old.weights.h5"
  old.save_weights(weights)
  fused = models.build_d3net(D3NetConfig.tiny())
  fused.load_weights(weights)
  for a, b in zip(fused.weights, old.weights):
    assert a.path == b.path
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  fused.save_weights(tmp_path / "new.weights.h5")
  again = models.build_d3net(D3NetConfig.tiny(fused_batch_norm=False))
  again.load_weights(tmp_path / "new.weights.h5")
  np.testing.assert_array_equal(again(x, training=False).numpy(), expected)


def _loss_and_gradients(config, x, y):
  """A D3-Net of ``config`` (seeded weights): L1 loss, gradients, weights after the step."""
  keras.utils.set_random_seed(7)
  model = models.build_d3net(config)

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.abs(model(x, training=True) - y))
    return loss, tape.gradient(loss, model.trainable_variables)

  loss, gradients = step(tf.constant(x))
  return model, float(loss), [g.numpy() for g in gradients]


def test_fused_and_keras_batch_norm_d3nets_have_the_same_gradients():
  # 64x64, batch 4: the deepest BN still normalises 16 values per channel (fewer would
  # magnify round-off).
  x = np.random.default_rng(5).uniform(size=(4, 64, 64, 3)).astype(np.float32)
  y = np.full((4, 64, 64, 1), 2.0, np.float32)
  sizes = dict(block_layers=(2, 2, 2, 2), dropout_rate=0.0)
  keras_bn, keras_loss, keras_gradients = _loss_and_gradients(
      D3NetConfig.tiny(fused_batch_norm=False, **sizes), x, y)
  fused, loss, gradients = _loss_and_gradients(D3NetConfig.tiny(**sizes), x, y)
  assert loss == pytest.approx(keras_loss, rel=1e-5)
  scale = max(np.abs(g).max() for g in keras_gradients)
  for variable, gradient, expected in zip(fused.trainable_variables, gradients,
                                          keras_gradients):
    np.testing.assert_allclose(gradient, expected, rtol=1e-3, atol=1e-5 * scale,
                               err_msg=variable.path)
  for weight, expected in zip(fused.non_trainable_weights, keras_bn.non_trainable_weights):
    np.testing.assert_allclose(weight.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6,
                               err_msg=weight.path)


def test_recomputed_dense_blocks_give_the_plain_models_gradients_and_statistics():
  x = np.random.default_rng(8).uniform(size=(4, 64, 64, 3)).astype(np.float32)
  y = np.full((4, 64, 64, 1), 2.0, np.float32)
  sizes = dict(block_layers=(2, 3, 2, 2), dropout_rate=0.0)
  plain, plain_loss, plain_gradients = _loss_and_gradients(D3NetConfig.tiny(**sizes), x, y)
  model, loss, gradients = _loss_and_gradients(D3NetConfig.tiny(recompute=True, **sizes), x, y)
  # 9 dense layers, 7 nodes each (concat, BN, ReLU, 1x1 conv, BN, ReLU, 3x3 conv), deferred
  # together.
  assert len(model._recompute_roles) == 63  # pylint: disable=protected-access
  assert loss == pytest.approx(plain_loss, rel=1e-6)
  scale = max(np.abs(g).max() for g in plain_gradients)
  for variable, gradient, expected in zip(model.trainable_variables, gradients, plain_gradients):
    np.testing.assert_allclose(gradient, expected, rtol=1e-4, atol=1e-6 * scale,
                               err_msg=variable.path)
  # The moving averages took one update (forward pass), not a second when recomputed.
  for name in ("conv3_block2_0_bn", "conv3_block2_1_bn"):
    assert not np.allclose(model.get_layer(name).moving_mean.numpy(), 0.0)
  for weight, expected in zip(model.non_trainable_weights, plain.non_trainable_weights):
    np.testing.assert_allclose(weight.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7,
                               err_msg=weight.path)
  # Same layers and weights: inference, config and checkpoints as the plain model.
  assert [w.path for w in model.weights] == [w.path for w in plain.weights]
  np.testing.assert_array_equal(model(x[:1], training=False).numpy(),
                                plain(x[:1], training=False).numpy())
  config = D3NetConfig.tiny(recompute=True, **sizes)
  assert config.to_dict()["recompute"] is True
  assert D3NetConfig.from_dict(config.to_dict()) == config
  assert models.config_from_model(models.D3Net.from_config(model.get_config())) == config
  with pytest.raises(ValueError, match="recompute must be True or False, got 'no'"):
    D3NetConfig.tiny(recompute="no")


def test_recomputing_d3net_trains_with_keras_fit():
  keras.utils.set_random_seed(9)
  model = models.build_d3net(D3NetConfig.tiny(recompute=True))
  model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae", jit_compile=False)
  x = np.random.default_rng(10).uniform(size=(8, 32, 32, 3)).astype(np.float32)
  y = np.full((8, 32, 32, 1), 2.0, np.float32)
  history = model.fit(x, y, batch_size=4, epochs=4, verbose=0).history["loss"]
  assert np.all(np.isfinite(history)) and history[-1] < 0.7 * history[0]


def test_fused_batch_norm_keeps_a_bfloat16_input_in_bfloat16():
  """Under mixed bfloat16 the kernel takes the 16-bit input (no float32 copy kept for backward)."""
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(1.0, 2.0, (2, 6, 5, 4)), tf.bfloat16)
  keras_layer = keras.layers.BatchNormalization(momentum=0.9, dtype="mixed_bfloat16")
  fused_layer = batch_norm.BatchNormalization(momentum=0.9, dtype="mixed_bfloat16")
  for layer in (keras_layer, fused_layer):
    layer.build(x.shape)
    layer.set_weights(keras_layer.get_weights())

  @tf.function
  def forward(layer, x):
    return layer(x, training=True)

  graph = forward.get_concrete_function(fused_layer, x).graph
  kernels = [op for op in graph.get_operations() if op.type == "FusedBatchNormV3"]
  assert [op.get_attr("T") for op in kernels] == [tf.bfloat16]
  assert [op.get_attr("U") for op in kernels] == [tf.float32]
  y, expected = forward(fused_layer, x), forward(keras_layer, x)
  assert y.dtype == expected.dtype == tf.bfloat16
  # bfloat16 has 8 bits of mantissa: equal to a few of its units.
  np.testing.assert_allclose(tf.cast(y, tf.float32), tf.cast(expected, tf.float32),
                             rtol=0, atol=0.05)
  for weight, reference in zip(fused_layer.get_weights()[2:], keras_layer.get_weights()[2:]):
    np.testing.assert_allclose(weight, reference, rtol=1e-2)
