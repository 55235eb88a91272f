"""Custom Keras layers of D3-Net: Monte-Carlo dropout and an input-size check.

Every layer here is registered with Keras (package ``d3tf``) and has a
``get_config``, so ``keras.models.load_model("model.keras")`` needs no
``custom_objects`` once :mod:`d3tf.models` has been imported.

Random draws use ``tf.random`` ops (through :func:`tf.nn.dropout`), not
``keras.random``: the stateless ops of the latter cannot run in TFLite.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

_PACKAGE = "d3tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MCDropout(keras.layers.Dropout):
  """Dropout that can stay active at prediction time (Monte-Carlo dropout).

  In training (``training=True``) it is plain dropout. At prediction time it
  is the identity, unless :attr:`mc_enabled` is True: then it keeps dropping
  units, so repeated predictions sample the approximate posterior of the
  network (Gal and Ghahramani, 2016), as the D3-Net paper does for its
  uncertainty maps. Only this layer changes: BatchNormalization and every
  other layer stay in inference mode.

  :attr:`mc_enabled` is read when the call is traced. Switch it with
  :func:`set_mc_dropout`, which also drops the model's cached
  ``predict_function``; a ``tf.function`` of one's own must be retraced.
  The switch is a run-time setting: it is not saved with the model.
  """

  def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
    super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
    self.mc_enabled = False

  def call(self, inputs, training=False):
    if self.rate <= 0.0 or not (training or self.mc_enabled):
      return inputs
    noise_shape = None
    if self.noise_shape is not None:
      dynamic_shape = tf.shape(inputs)
      noise_shape = tf.stack([
          dynamic_shape[i] if size is None else tf.constant(size, tf.int32)
          for i, size in enumerate(self.noise_shape)
      ])
    return tf.nn.dropout(inputs, rate=self.rate, noise_shape=noise_shape, seed=self.seed)


def _walk_layers(layer: keras.layers.Layer):
  """Yields ``layer``'s sub-layers, depth first, nested models included."""
  for sub_layer in getattr(layer, "layers", None) or []:
    yield sub_layer
    yield from _walk_layers(sub_layer)


def set_mc_dropout(model: keras.layers.Layer, enabled: bool) -> int:
  """Turns Monte-Carlo dropout on or off in every :class:`MCDropout` of a model.

  Args:
    model: A Keras model (nested models are searched too).
    enabled: True to keep dropout active at prediction time.

  Returns:
    How many :class:`MCDropout` layers were switched (0 if the model has none).
  """
  count = 0
  for layer in _walk_layers(model):
    if isinstance(layer, MCDropout):
      layer.mc_enabled = bool(enabled)
      count += 1
  # model.predict / evaluate cache a traced function that read the old value.
  for attribute in ("predict_function", "test_function"):
    if getattr(model, attribute, None) is not None:
      setattr(model, attribute, None)
  return count


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SizeMultipleCheck(keras.layers.Layer):
  """Identity that rejects images whose height or width is not a multiple of ``multiple``.

  The check runs whenever the spatial size is known when the layer is called
  (eager calls, and the first trace of ``model.predict``/``fit``), raising a
  ValueError that says what to do instead of a shape error deep inside the
  decoder. Where the size is only known at run time nothing is checked (no
  assert op is added, so the graph stays TFLite-friendly): padding images to a
  multiple is the job of :mod:`d3tf.inference`.
  """

  def __init__(self, multiple: int = 32, **kwargs):
    super().__init__(**kwargs)
    self.multiple = int(multiple)

  def call(self, inputs):
    height, width = inputs.shape[1], inputs.shape[2]
    for size in (height, width):
      if size is not None and int(size) % self.multiple:
        raise ValueError(
            f"D3-Net needs image height and width that are multiples of {self.multiple}, got "
            f"{height}x{width}; pad or crop the image first (d3tf.inference pads automatically)")
    return inputs

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config["multiple"] = self.multiple
    return config
