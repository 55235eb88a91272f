"""Adam whose update is one TensorFlow kernel per variable (``ResourceApplyAdam``).

Keras 3's :class:`keras.optimizers.Adam` writes each variable's update as about
fifteen element-wise graph ops (casts, powers, two ``assign_add``, a square
root, a division, an ``assign_sub``). For D3-Net's 402 trainable variables that
is about 15,000 of the 24,000 nodes of a traced train step, and each op makes
a full pass over its variable. :class:`FusedAdam` runs the same update with
TensorFlow's fused ``ResourceApplyAdam`` kernel instead: one op and one pass
per variable, the graph about a third of the size, which lowers the memory the
traced step holds (``benchmarks/results/train_step.md``).

The kernel computes exactly Keras' update, in the same order::

    alpha = lr * sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
    m += (g - m) * (1 - beta_1)
    v += (g * g - v) * (1 - beta_2)
    var -= m * alpha / (sqrt(v) + epsilon)

with ``t`` the step count (``iterations + 1``). Learning-rate schedules,
gradient clipping, weight decay and EMA stay with Keras' base class (they act
before or after ``update_step``). Variants the kernel does not cover (AMSGrad,
sparse gradients, variables other than TensorFlow resource variables) fall
back to Keras' update. Checkpoints are Keras Adam's: the same slot variables
under the same names, so either optimizer resumes the other's state.
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="d3tf")
class FusedAdam(keras.optimizers.Adam):
  """:class:`keras.optimizers.Adam` with TensorFlow's fused update kernel.

  Takes Keras Adam's arguments. With ``amsgrad=True`` it is Keras' Adam. Its
  default name is Keras Adam's ("adam"), so its variables have the same paths.
  """

  def __init__(self, *args, name: str = "adam", **kwargs):
    super().__init__(*args, name=name, **kwargs)

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    """Computes the step's scalars once (per dtype), then updates every variable."""
    self._step_scalars = {}
    try:
      super()._backend_update_step(grads, trainable_variables, learning_rate)
    finally:
      self._step_scalars = None

  def _scalars(self, dtype, learning_rate) -> dict:
    """The kernel's scalar inputs in ``dtype``: one set per traced step and dtype."""
    cache = getattr(self, "_step_scalars", None)
    if cache is not None and dtype in cache:
      return cache[dtype]
    step = tf.cast(self.iterations + 1, dtype)
    beta_1 = tf.cast(self.beta_1, dtype)
    beta_2 = tf.cast(self.beta_2, dtype)
    scalars = {"beta1_power": tf.pow(beta_1, step), "beta2_power": tf.pow(beta_2, step),
               "lr": tf.cast(learning_rate, dtype), "beta1": beta_1, "beta2": beta_2,
               "epsilon": tf.cast(self.epsilon, dtype)}
    if cache is not None:
      cache[dtype] = scalars
    return scalars

  def update_step(self, gradient, variable, learning_rate):
    """Applies one Adam update to ``variable`` (a ``tf.Variable``)."""
    if (self.amsgrad or isinstance(gradient, tf.IndexedSlices)
        or not hasattr(variable, "handle")):
      super().update_step(gradient, variable, learning_rate)
      return
    dtype = variable.dtype
    index = self._get_variable_index(variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=self._momentums[index].handle,
        v=self._velocities[index].handle, grad=tf.cast(gradient, dtype),
        use_locking=False, **self._scalars(dtype, learning_rate))
