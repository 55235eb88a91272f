"""Keras' BatchNormalization whose training step is TensorFlow's fused kernel.

Keras 3 normalises a batch with separate ops (``ops.moments``: mean, squared
difference, mean; then ``tf.nn.batch_normalization``: rsqrt, two multiplies,
an add), and its gradient is the chain of their gradients, which keeps several
full-size intermediates for the backward pass. TensorFlow's
``FusedBatchNormV3`` computes the statistics and the normalised output in one
kernel (oneDNN's on x86 CPUs), and its gradient kernel needs the input and two
per-channel vectors only. Same maths: the batch mean and the biased batch
variance normalise, the moving averages are updated exactly as Keras does.

:class:`BatchNormalization` takes the fused kernel in training when it
applies (TensorFlow backend, a 4-D channels-last input, no mask, no
synchronized statistics under a multi-replica strategy, no batch
renormalisation) and is ``keras.layers.BatchNormalization`` otherwise
(inference included, so exports are unchanged).

The class keeps Keras' class name on purpose: Keras 3 files the weights of a
``.keras`` / ``.weights.h5`` file under the snake-cased class name of each
layer (``layers/batch_normalization_7/vars/0``), so a model built with these
layers reads the checkpoints of one built with Keras' layer, and vice versa.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

_PACKAGE = "d3tf"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchNormalization(keras.layers.BatchNormalization):
  """``keras.layers.BatchNormalization`` with TensorFlow's fused kernel in training.

  Same arguments, variables (``gamma``, ``beta``, ``moving_mean``,
  ``moving_variance``, in that order), moving-average update and outputs as
  Keras' layer (to float32 round-off); see the module docstring for when the
  fused kernel applies.

  Args:
    fused: True: the fused kernel where it applies; False: exactly Keras'
      computation.
    **kwargs: Those of ``keras.layers.BatchNormalization``.
  """

  def __init__(self, *args, fused: bool = True, **kwargs):
    super().__init__(*args, **kwargs)
    if not isinstance(fused, bool):
      raise ValueError(f"BatchNormalization.fused must be True or False, got {fused!r}")
    self.fused = fused

  def _fused_applies(self, inputs, training, mask) -> bool:
    """Whether this training call can take the fused kernel."""
    if not (self.fused and training and self.trainable) or mask is not None or self.renorm:
      return False
    if keras.backend.backend() != "tensorflow" or len(inputs.shape) != 4:
      return False
    if self.axis not in (-1, 3):
      return False
    if self.synchronized and tf.distribute.has_strategy() and (
        tf.distribute.get_strategy().num_replicas_in_sync > 1):
      return False
    return True

  def call(self, inputs, training=None, mask=None):
    if not self._fused_applies(inputs, training, mask):
      return super().call(inputs, training=training, mask=mask)
    # Statistics, scale and offset in float32 at least; a 16-bit input (mixed precision)
    # stays 16-bit, so the kernel keeps a 16-bit copy for the backward pass, not a float32 one.
    compute_dtype = keras.backend.result_type(inputs.dtype, "float32")
    x = inputs if inputs.dtype in (tf.bfloat16, tf.float16) else tf.cast(inputs, compute_dtype)
    channels = x.shape[-1]
    scale = (tf.cast(self.gamma, compute_dtype) if self.scale
             else tf.ones([channels], compute_dtype))
    offset = (tf.cast(self.beta, compute_dtype) if self.center
              else tf.zeros([channels], compute_dtype))
    empty = tf.constant([], compute_dtype)
    y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon,
        exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
    # The kernel returns the variance with Bessel's correction (n / (n - 1)); Keras' moving
    # average takes the biased variance, the one that normalised the batch.
    shape = tf.shape(x)
    count = tf.cast(shape[0] * shape[1] * shape[2], compute_dtype)
    variance = unbiased_variance * tf.math.maximum(count - 1.0, 0.0) / count
    moving_mean = tf.cast(self.moving_mean, compute_dtype)
    moving_variance = tf.cast(self.moving_variance, compute_dtype)
    self.moving_mean.assign(moving_mean * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(
        moving_variance * self.momentum + variance * (1.0 - self.momentum))
    return tf.cast(y, self.compute_dtype)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config["fused"] = self.fused
    return config
