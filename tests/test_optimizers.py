"""d3tf.optimizers.FusedAdam must be Keras' Adam in everything but its graph: updates, slots, files."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from d3tf import optimizers


def _tiny_model(seed: int) -> keras.Model:
  keras.utils.set_random_seed(seed)
  inputs = keras.Input((6, 6, 2))
  x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
  x = keras.layers.BatchNormalization(name="bn")(x)
  outputs = keras.layers.Conv2D(1, 1, name="head")(x)
  return keras.Model(inputs, outputs)


def _train(optimizer, steps: int = 5):
  """Weights and optimizer variables of a tiny model after ``steps`` fit steps."""
  model = _tiny_model(0)
  model.compile(optimizer=optimizer, loss="mae")
  rng = np.random.default_rng(0)
  x = rng.normal(size=(8, 6, 6, 2)).astype(np.float32)
  y = rng.normal(size=(8, 6, 6, 1)).astype(np.float32)
  model.fit(x, y, batch_size=4, epochs=steps // 2 + 1, steps_per_epoch=2, verbose=0)
  return model


@pytest.mark.parametrize("kwargs", [
    {"learning_rate": 1e-2, "beta_1": 0.5},
    {"learning_rate": keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5),
     "epsilon": 1e-4, "clipnorm": 1.0},
])
def test_fused_adam_trains_exactly_as_keras_adam(kwargs):
  reference = _train(keras.optimizers.Adam(**kwargs))
  fused = _train(optimizers.FusedAdam(**kwargs))
  assert int(fused.optimizer.iterations) == int(reference.optimizer.iterations) == 6
  start = _tiny_model(0).get_weights()
  for weight, expected, initial in zip(fused.get_weights(), reference.get_weights(), start):
    np.testing.assert_allclose(weight, expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(fused.get_weights()[0], start[0])  # It did train.
  for slot, expected in zip(fused.optimizer.variables, reference.optimizer.variables):
    # The same slot names (the optimizer's own name is made unique per session).
    assert slot.path.split("/", 1)[1] == expected.path.split("/", 1)[1]
    # Float32 round-off, grown over six steps: to 1e-4 of the slot's largest magnitude.
    np.testing.assert_allclose(slot.numpy(), expected.numpy(), rtol=0,
                               atol=1e-4 * np.abs(expected.numpy()).max())


def test_fused_adam_graph_has_one_update_op_per_variable():
  model = _tiny_model(0)
  optimizer = optimizers.FusedAdam(1e-3)
  optimizer.build(model.trainable_variables)

  @tf.function
  def step():
    gradients = [tf.ones_like(v) for v in model.trainable_variables]
    optimizer.apply(gradients, model.trainable_variables)

  graph = step.get_concrete_function().graph
  types = [op.type for op in graph.get_operations()]
  assert types.count("ResourceApplyAdam") == len(model.trainable_variables)
  # The step's scalars (powers of beta) once, not once per variable.
  assert types.count("Pow") == 2


def test_fused_adam_with_amsgrad_is_keras_adam():
  reference = _train(keras.optimizers.Adam(1e-2, amsgrad=True))
  fused = _train(optimizers.FusedAdam(1e-2, amsgrad=True))
  for weight, expected in zip(fused.get_weights(), reference.get_weights()):
    np.testing.assert_allclose(weight, expected, rtol=1e-6, atol=1e-7)


def test_keras_adam_state_resumes_in_fused_adam(tmp_path):
  """A .keras file trained with Keras' Adam restores its slots into FusedAdam."""
  model = _train(keras.optimizers.Adam(1e-2))
  path = str(tmp_path / "model.weights.h5")
  model.save_weights(path)
  checkpoint = tf.train.Checkpoint(optimizer=model.optimizer)
  saved = checkpoint.write(str(tmp_path / "ckpt"))
  other = _tiny_model(1)
  optimizer = optimizers.FusedAdam(1e-2)
  optimizer.build(other.trainable_variables)
  tf.train.Checkpoint(optimizer=optimizer).read(saved).assert_consumed()
  for slot, expected in zip(optimizer.variables, model.optimizer.variables):
    np.testing.assert_array_equal(slot.numpy(), expected.numpy())


def test_fused_adam_config_round_trips():
  optimizer = optimizers.FusedAdam(3e-4, beta_1=0.5)
  restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
  assert isinstance(restored, optimizers.FusedAdam)
  assert restored.get_config() == optimizer.get_config()


def test_compiled_model_file_loads_with_d3tf_models_imported(tmp_path):
  """A model.keras compiled with FusedAdam loads in a process that imports d3tf.models only."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  model = _tiny_model(0)
  model.compile(optimizer=optimizers.FusedAdam(1e-3), loss="mae")
  model.train_on_batch(np.zeros((1, 6, 6, 2), np.float32), np.ones((1, 6, 6, 1), np.float32))
  path = tmp_path / "model.keras"
  model.save(path)
  code = ("import keras\nfrom d3tf import models\n"
          f"model = keras.models.load_model({str(path)!r})\n"
          "print(type(model.optimizer).__name__, int(model.optimizer.iterations))\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split()[-2:] == ["FusedAdam", "1"]
