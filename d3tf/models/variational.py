"""Variational (Bayesian) 2-D convolutions for Keras 3, built on TFP distributions.

``tfp.layers`` only works with legacy tf-keras; these layers are plain
Keras 3 layers whose weight posterior and prior are
``tfp.distributions`` objects:

* posterior: mean-field ``tfd.Normal(loc, softplus(rho))`` over every
  kernel weight, with ``loc`` initialised like a Keras kernel and
  ``softplus(rho)`` initialised to ``posterior_scale_init`` (small, so that
  the untrained network starts almost deterministic);
* prior: ``tfd.Normal(0, prior_scale)``;
* the bias (if any) is a deterministic weight, as in ``tfp.layers``;
* KL term: ``tfd.kl_divergence(posterior, prior)`` summed over the kernel,
  times ``kl_weight / num_train_examples``, where ``kl_weight`` is a
  non-trainable variable (1 by default) that :class:`d3tf.training.callbacks.
  KLAnnealing` ramps up from 0 for a KL warm-up. The layer adds it with
  ``add_loss`` on every call (training and inference alike), so Keras adds it
  to the training loss, and :meth:`kl_loss` returns it on demand.

Two estimators of the expected log-likelihood's gradient:

* :class:`Conv2DFlipout` (Wen et al., ICLR 2018): one kernel perturbation
  ``dW = softplus(rho) * eps`` per call, decorrelated across the examples of
  a batch by random signs on each example's input and output channels:
  ``conv(x, loc) + conv(x * s_in, dW) * s_out``. Every example of a batch
  gets its own (pseudo-independent) weight sample, so repeating one image in
  a batch gives different Monte-Carlo samples.
* :class:`Conv2DReparameterization` (Kingma and Welling; Blundell et al.
  2015): one kernel ``loc + softplus(rho) * eps`` drawn per call and shared
  by the whole batch (cheaper, noisier gradients). Monte-Carlo samples of one
  image must therefore come from separate calls
  (:class:`d3tf.inference.Predictor` does so: :attr:`shares_sample_in_batch`).

**When a layer samples.** In training (``training=True``) and when its
``mc_enabled`` switch is on (:func:`d3tf.models.set_mc_sampling`, which also
switches MC dropout); otherwise it convolves with the posterior mean ``loc``
and is deterministic. The switch is read when the call is traced and is not
saved with the model.

Random draws use ``tf.random.normal`` and ``tf.random.uniform`` (TFLite
builtins), never ``keras.random``. TensorFlow Probability is imported only
when a KL divergence is computed (its import costs seconds).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from d3tf.models.layers import MonteCarloLayer

_PACKAGE = "d3tf"
#: Values of ``D3NetConfig.variational_type`` and the layer class of each.
VARIATIONAL_TYPES = ("flipout", "reparameterization")


def _tfd():
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  return tfp.distributions


def _positive(name: str, value, integer: bool = False):
  try:
    number = float(value)
  except (TypeError, ValueError):
    number = math.nan
  ok = 0.0 < number < math.inf and not isinstance(value, bool)
  if integer:
    ok = ok and number == int(number)
  if not ok:
    what = "a positive integer" if integer else "positive and finite"
    raise ValueError(f"{name} must be {what}, got {value!r}")
  return int(number) if integer else number


def _pair(name: str, value) -> tuple[int, int]:
  values = (value, value) if isinstance(value, int) else tuple(value)
  if len(values) != 2 or any(isinstance(v, bool) or int(v) != v or v < 1 for v in values):
    raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
  return int(values[0]), int(values[1])


class _VariationalConv2D(MonteCarloLayer, keras.layers.Layer):
  """Base of the variational 2-D convolutions (NHWC); see the module docstring.

  Args:
    filters: Output channels.
    kernel_size: Kernel height and width (an int or a pair).
    strides: Strides (an int or a pair).
    padding: ``"same"`` or ``"valid"``.
    use_bias: Add a (deterministic) bias.
    num_train_examples: Number of training examples N; the KL term is divided
      by it (the ELBO's per-example weighting).
    prior_scale: Standard deviation of the zero-mean Normal prior.
    posterior_scale_init: Initial standard deviation of every weight's
      posterior.
    kernel_initializer: Initialiser of the posterior means.
    bias_initializer: Initialiser of the bias.
    seed: Optional op seed of the random draws (with the global seed, as
      ``tf.random`` ops take it).

  Attributes:
    kernel_loc: Posterior means, ``[kh, kw, in, filters]``.
    kernel_rho: Posterior scale parameters (``scale = softplus(rho)``).
    kl_weight: Non-trainable scalar that multiplies the KL term (annealing).
    mc_enabled: Sample at prediction time too (see the module docstring).
  """

  #: Whether one weight sample is shared by all the examples of a call.
  shares_sample_in_batch = False

  def __init__(self, filters: int, kernel_size, strides=1, padding: str = "same",
               use_bias: bool = True, num_train_examples: int = 1, prior_scale: float = 1.0,
               posterior_scale_init: float = 1e-3, kernel_initializer="glorot_uniform",
               bias_initializer="zeros", seed: int | None = None, **kwargs):
    super().__init__(**kwargs)
    self.filters = _positive(f"{type(self).__name__}.filters", filters, integer=True)
    self.kernel_size = _pair(f"{type(self).__name__}.kernel_size", kernel_size)
    self.strides = _pair(f"{type(self).__name__}.strides", strides)
    padding = str(padding).lower()
    if padding not in ("same", "valid"):
      raise ValueError(f"{type(self).__name__}.padding must be 'same' or 'valid', got "
                       f"{padding!r}")
    self.padding = padding
    self.use_bias = bool(use_bias)
    self.num_train_examples = _positive(f"{type(self).__name__}.num_train_examples",
                                        num_train_examples, integer=True)
    self.prior_scale = _positive(f"{type(self).__name__}.prior_scale", prior_scale)
    self.posterior_scale_init = _positive(f"{type(self).__name__}.posterior_scale_init",
                                          posterior_scale_init)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self.seed = seed
    self.mc_enabled = False

  # ----------------------------------------------------------------- weights
  def build(self, input_shape):
    channels = input_shape[-1]
    if channels is None:
      raise ValueError(f"{self.name}: the input's channel axis must be known, got shape "
                       f"{input_shape}")
    shape = self.kernel_size + (int(channels), self.filters)
    # softplus(rho) == posterior_scale_init.
    rho = math.log(math.expm1(self.posterior_scale_init))
    # Not autocast: under mixed precision the posterior, its samples and the KL stay float32;
    # only the convolution runs in the compute dtype (see _conv).
    self.kernel_loc = self.add_weight(name="kernel_loc", shape=shape,
                                      initializer=self.kernel_initializer, autocast=False)
    self.kernel_rho = self.add_weight(name="kernel_rho", shape=shape,
                                      initializer=keras.initializers.Constant(rho),
                                      autocast=False)
    self.bias = (self.add_weight(name="bias", shape=(self.filters,),
                                 initializer=self.bias_initializer)
                 if self.use_bias else None)
    self.kl_weight = self.add_weight(name="kl_weight", shape=(), initializer="ones",
                                     trainable=False, autocast=False)

  def kernel_scale(self) -> tf.Tensor:
    """Standard deviations of the kernel's posterior, ``softplus(rho)``."""
    return tf.nn.softplus(tf.convert_to_tensor(self.kernel_rho))

  def posterior(self):
    """The kernel's posterior, a ``tfd.Normal`` with the kernel's shape (batch shape)."""
    return _tfd().Normal(loc=tf.convert_to_tensor(self.kernel_loc), scale=self.kernel_scale())

  def prior(self):
    """The kernel's prior, ``tfd.Normal(0, prior_scale)`` (scalar, broadcast)."""
    return _tfd().Normal(loc=tf.constant(0.0, tf.float32),
                         scale=tf.constant(self.prior_scale, tf.float32))

  def kl_divergence(self) -> tf.Tensor:
    """``KL(posterior || prior)`` summed over the kernel, unscaled (nats)."""
    return tf.reduce_sum(_tfd().kl_divergence(self.posterior(), self.prior()))

  def kl_loss(self) -> tf.Tensor:
    """The KL term the layer adds to the loss: ``kl_weight * KL / num_train_examples``."""
    return (tf.convert_to_tensor(self.kl_weight) * self.kl_divergence() /
            float(self.num_train_examples))

  # -------------------------------------------------------------------- call
  def _conv(self, inputs, kernel):
    kernel = tf.cast(kernel, inputs.dtype)  # float32 posterior, compute-dtype convolution.
    return tf.nn.conv2d(inputs, kernel, strides=(1,) + self.strides + (1,),
                        padding=self.padding.upper())

  def _sampled_conv(self, inputs):
    raise NotImplementedError

  def call(self, inputs, training=False):
    inputs = tf.convert_to_tensor(inputs, self.compute_dtype)
    if training or self.mc_enabled:
      outputs = self._sampled_conv(inputs)
    else:
      outputs = self._conv(inputs, tf.convert_to_tensor(self.kernel_loc))
    if self.bias is not None:
      outputs = tf.nn.bias_add(outputs, tf.convert_to_tensor(self.bias))
    self.add_loss(self.kl_loss())
    return outputs

  def _noise(self):
    return tf.random.normal(tf.shape(self.kernel_loc), dtype=tf.float32, seed=self.seed)

  def compute_output_shape(self, input_shape):
    batch, height, width = input_shape[0], input_shape[1], input_shape[2]
    sizes = []
    for size, kernel, stride in zip((height, width), self.kernel_size, self.strides):
      if size is None:
        sizes.append(None)
      elif self.padding == "same":
        sizes.append(-(-int(size) // stride))
      else:
        sizes.append((int(size) - kernel) // stride + 1)
    return (batch, sizes[0], sizes[1], self.filters)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update({
        "filters": self.filters,
        "kernel_size": list(self.kernel_size),
        "strides": list(self.strides),
        "padding": self.padding,
        "use_bias": self.use_bias,
        "num_train_examples": self.num_train_examples,
        "prior_scale": self.prior_scale,
        "posterior_scale_init": self.posterior_scale_init,
        "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        "seed": self.seed,
    })
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Conv2DFlipout(_VariationalConv2D):
  """Variational 2-D convolution with the Flipout estimator (per-example samples).

  See :class:`_VariationalConv2D` for the arguments. A sampled call computes
  ``conv(x, loc) + conv(x * s_in, softplus(rho) * eps) * s_out`` with one
  ``eps ~ N(0, 1)`` per call and random signs ``s_in`` ``[B, 1, 1, in]``,
  ``s_out`` ``[B, 1, 1, filters]`` per example.
  """

  shares_sample_in_batch = False

  def _signs(self, batch, channels):
    shape = tf.stack([batch, 1, 1, channels])
    uniform = tf.random.uniform(shape, dtype=self.compute_dtype, seed=self.seed)
    return tf.where(uniform < 0.5, -tf.ones_like(uniform), tf.ones_like(uniform))

  def _sampled_conv(self, inputs):
    mean = self._conv(inputs, tf.convert_to_tensor(self.kernel_loc))
    delta = self.kernel_scale() * self._noise()
    batch = tf.shape(inputs)[0]
    sign_in = self._signs(batch, tf.shape(inputs)[-1])
    sign_out = self._signs(batch, self.filters)
    return mean + self._conv(inputs * sign_in, delta) * sign_out


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Conv2DReparameterization(_VariationalConv2D):
  """Variational 2-D convolution with the reparameterisation estimator.

  See :class:`_VariationalConv2D` for the arguments. A sampled call draws one
  kernel ``loc + softplus(rho) * eps`` and convolves the whole batch with it.
  """

  shares_sample_in_batch = True

  def _sampled_conv(self, inputs):
    kernel = tf.convert_to_tensor(self.kernel_loc) + self.kernel_scale() * self._noise()
    return self._conv(inputs, kernel)


_CLASSES = {"flipout": Conv2DFlipout, "reparameterization": Conv2DReparameterization}


def variational_conv_class(variational_type: str) -> type:
  """The layer class of a ``variational_type`` ("flipout" or "reparameterization").

  Raises:
    ValueError: an unknown type (the message lists the known ones).
  """
  if variational_type not in _CLASSES:
    raise ValueError(f"variational_type must be one of {VARIATIONAL_TYPES}, got "
                     f"{variational_type!r}")
  return _CLASSES[variational_type]


def variational_layers(model: keras.layers.Layer) -> list[_VariationalConv2D]:
  """Every variational convolution of a model (nested models searched too)."""
  found, stack = [], list(getattr(model, "layers", None) or [])
  while stack:
    layer = stack.pop(0)
    if isinstance(layer, _VariationalConv2D):
      found.append(layer)
    stack.extend(getattr(layer, "layers", None) or [])
  return found


def set_kl_weight(model: keras.layers.Layer, weight: float) -> int:
  """Sets the KL weight (annealing factor) of every variational layer of a model.

  Args:
    model: A Keras model.
    weight: The factor, >= 0 (1: the plain ELBO's KL term).

  Returns:
    How many layers were set.

  Raises:
    ValueError: a negative or non-finite weight.
  """
  weight = float(weight)
  if not 0.0 <= weight < math.inf:
    raise ValueError(f"KL weight must be >= 0 and finite, got {weight!r}")
  layers = variational_layers(model)
  for layer in layers:
    layer.kl_weight.assign(weight)
  return len(layers)
