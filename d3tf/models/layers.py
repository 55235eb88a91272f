"""Custom Keras layers of D3-Net: Monte-Carlo dropout, an input-size check, the log-scale head.

Every layer here is registered with Keras (package ``d3tf``) and has a
``get_config``, so ``keras.models.load_model("model.keras")`` needs no
``custom_objects`` once :mod:`d3tf.models` has been imported.

Random draws use ``tf.random`` ops (through :func:`tf.nn.dropout`), not
``keras.random``: the stateless ops of the latter cannot run in TFLite.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

_PACKAGE = "d3tf"


class MonteCarloLayer:
  """Mixin of the layers that can keep sampling at prediction time.

  :class:`MCDropout` and the variational convolutions of
  :mod:`d3tf.models.variational` have an ``mc_enabled`` switch, read when
  the call is traced: False (the default) makes them deterministic at
  prediction time; True makes them draw a new random sample on every call.
  :func:`set_mc_sampling` switches all of them in a model.
  """

  mc_enabled: bool = False


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MCDropout(MonteCarloLayer, keras.layers.Dropout):
  """Dropout that can stay active at prediction time (Monte-Carlo dropout).

  In training (``training=True``) it is plain dropout. At prediction time it
  is the identity, unless :attr:`mc_enabled` is True: then it keeps dropping
  units, so repeated predictions sample the approximate posterior of the
  network (Gal and Ghahramani, 2016), as the D3-Net paper does for its
  uncertainty maps. Only this layer changes: BatchNormalization and every
  other layer stay in inference mode.

  :attr:`mc_enabled` is read when the call is traced. Switch it with
  :func:`set_mc_dropout` (or :func:`set_mc_sampling`, which also switches
  variational layers); both also drop the model's cached
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


def sampling_layers(model: keras.layers.Layer) -> list[keras.layers.Layer]:
  """The layers of a model that can sample at prediction time (nested models too).

  Every layer with an ``mc_enabled`` switch: :class:`MonteCarloLayer`
  subclasses (:class:`MCDropout`, the variational convolutions) and any other
  layer that follows the same protocol.
  """
  return [layer for layer in _walk_layers(model) if hasattr(layer, "mc_enabled")]


def stochastic_kind(model: keras.layers.Layer) -> str | None:
  """Where a model's randomness at prediction time comes from, or None (deterministic).

  The one definition that predictors and exports use to decide whether
  Monte-Carlo sampling applies: ``"mc_dropout"``, ``"variational"`` or
  ``"mc_dropout+variational"``, from the model's sampling layers.
  """
  layers = sampling_layers(model)
  kinds = []
  if any(isinstance(layer, MCDropout) for layer in layers):
    kinds.append("mc_dropout")
  if any(not isinstance(layer, MCDropout) for layer in layers):
    kinds.append("variational")
  return "+".join(kinds) or None


def shares_sample_in_batch(model: keras.layers.Layer) -> bool:
  """Whether a sampling layer draws one sample for a whole batch (one pass per sample)."""
  return any(getattr(layer, "shares_sample_in_batch", False) for layer in sampling_layers(model))


def _switch(model: keras.layers.Layer, kind: type | None, enabled: bool) -> int:
  """Sets ``mc_enabled`` of the sampling layers of ``kind`` (None: all of them)."""
  count = 0
  for layer in sampling_layers(model):
    if kind is None or isinstance(layer, kind):
      layer.mc_enabled = bool(enabled)
      count += 1
  # model.predict / evaluate cache a traced function that read the old value.
  for attribute in ("predict_function", "test_function"):
    if getattr(model, attribute, None) is not None:
      setattr(model, attribute, None)
  return count


def set_mc_dropout(model: keras.layers.Layer, enabled: bool) -> int:
  """Turns Monte-Carlo dropout on or off in every :class:`MCDropout` of a model.

  Variational layers are left as they are; :func:`set_mc_sampling` switches
  both kinds.

  Args:
    model: A Keras model (nested models are searched too).
    enabled: True to keep dropout active at prediction time.

  Returns:
    How many :class:`MCDropout` layers were switched (0 if the model has none).
  """
  return _switch(model, MCDropout, enabled)


def set_mc_sampling(model: keras.layers.Layer, enabled: bool) -> int:
  """Turns Monte-Carlo sampling on or off in every sampling layer of a model.

  Switches MC dropout (:class:`MCDropout`) and the weight sampling of the
  variational convolutions (:mod:`d3tf.models.variational`) together: with
  ``enabled`` each prediction is one draw from the approximate posterior;
  without, dropout is the identity and variational layers use their
  posterior mean. BatchNormalization stays in inference mode either way.

  Args:
    model: A Keras model (nested models are searched too).
    enabled: True to sample at prediction time.

  Returns:
    How many layers were switched (0 if the model has none).
  """
  return _switch(model, None, enabled)


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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LogScale(keras.layers.Layer):
  """Maps unconstrained values ``z`` to a log-scale, ``log(softplus(z) + min_scale)``.

  The aleatoric head's activation: the predicted scale (Gaussian standard
  deviation or Laplace ``b``, metres) is ``softplus(z) + min_scale``, so it
  never falls below ``min_scale`` (a negative log-likelihood could otherwise
  push it towards 0 on pixels that are fitted exactly, and overflow), and
  grows about linearly for large ``z``. ``z = log(expm1(1))`` gives a scale
  of about 1 m.

  Args:
    min_scale: Smallest scale, metres (> 0).
  """

  def __init__(self, min_scale: float = 1e-3, **kwargs):
    super().__init__(**kwargs)
    if not 0.0 < float(min_scale) < float("inf"):
      raise ValueError(f"LogScale.min_scale must be positive and finite, got {min_scale!r}")
    self.min_scale = float(min_scale)

  def call(self, inputs):
    return tf.math.log(tf.nn.softplus(inputs) + self.min_scale)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config["min_scale"] = self.min_scale
    return config


_GREY_LEVELS = 255.0


def _check_odd_window(name: str, value) -> None:
  """Raises ValueError naming ``name`` unless ``value`` is an odd integer >= 3 (a pooling window)."""
  if isinstance(value, bool) or int(value) != value or value < 3 or value % 2 == 0:
    raise ValueError(f"{name} must be an odd integer >= 3, got {value!r}")


def _check_floor(name: str, value) -> None:
  """Raises ValueError naming ``name`` unless ``value`` is in (0, 1)."""
  if not 0.0 < float(value) < 1.0:
    raise ValueError(f"{name} must be in (0, 1), got {value!r}")


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BandPassSharpness(keras.layers.Layer):
  """Three fixed, contrast-normalised band-pass maps of RGB images: a sharpness input.

  Defocus blur removes fine detail before coarse detail, so the ratio of a
  fine to a middle spatial-frequency band tells how blurred a patch is,
  whatever the contrast of its texture. A network trained from scratch on RGB
  is slow to build that ratio (see ``benchmarks/diag_blur_learnability.py``);
  this layer computes it, with no weights, from the grey image ``g``:

  * fine band ``f = g - box_fine(g)``, middle band ``m = box_fine(g) -
    box_middle(g)`` (``box_n``: the n x n box mean, borders averaging only
    pixels inside the image);
  * local RMS of both bands over ``rms_window`` x ``rms_window``, each at
    least ``floor`` (``sqrt(mean(b^2) + floor^2)``);
  * outputs ``f / (rms_m + floor)``, ``m / (rms_m + floor)`` and
    ``log(rms_f / (rms_m + floor / 10))``.

  ``floor`` must sit below the fine band of the textures to be read: the
  procedural scenes' fine band has an RMS of 0.002-0.006 (on a [0, 1] scale),
  which a floor of 1e-3 hides once blurred; the default 1e-4 does not.

  Pure ``tf.nn.avg_pool2d``, log and sqrt ops: TFLite builtins.

  Args:
    fine_window: Side of the box whose residual is the fine band (odd, >= 3).
    middle_window: Side of the coarser box of the middle band (odd, >
      ``fine_window``).
    rms_window: Side of the window of the local RMS (odd, >= 3).
    floor: Smallest band RMS, on the [0, 1] intensity scale (> 0).

  Input: float RGB ``[B, H, W, 3]`` in [0, 1]. Output: ``[B, H, W, 3]``.
  """

  def __init__(self, fine_window: int = 3, middle_window: int = 9, rms_window: int = 15,
               floor: float = 1e-4, **kwargs):
    super().__init__(**kwargs)
    windows = {"fine_window": fine_window, "middle_window": middle_window,
               "rms_window": rms_window}
    for name, value in windows.items():
      _check_odd_window(f"BandPassSharpness.{name}", value)
    if middle_window <= fine_window:
      raise ValueError(f"BandPassSharpness.middle_window must exceed fine_window "
                       f"({fine_window}), got {middle_window!r}")
    _check_floor("BandPassSharpness.floor", floor)
    self.floor = float(floor)
    self.fine_window = int(fine_window)
    self.middle_window = int(middle_window)
    self.rms_window = int(rms_window)

  def call(self, inputs):
    box = lambda x, size: tf.nn.avg_pool2d(x, size, 1, "SAME")
    # In grey levels (x 255), so that the floor's constants (floor^2 = 1e-8 on
    # a [0, 1] scale) survive a float16 export; the maps are scale-free.
    grey = tf.reduce_mean(tf.cast(inputs, tf.float32), axis=-1, keepdims=True) * _GREY_LEVELS
    fine_mean = box(grey, self.fine_window)
    fine = grey - fine_mean
    middle = fine_mean - box(grey, self.middle_window)
    floor = self.floor * _GREY_LEVELS
    fine_rms = tf.sqrt(box(fine * fine, self.rms_window) + floor * floor)
    middle_rms = tf.sqrt(box(middle * middle, self.rms_window) + floor * floor)
    return tf.concat([fine / (middle_rms + floor), middle / (middle_rms + floor),
                      tf.math.log(fine_rms / (middle_rms + 0.1 * floor))], axis=-1)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (3,)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(fine_window=self.fine_window, middle_window=self.middle_window,
                  rms_window=self.rms_window, floor=self.floor)
    return config


def _gaussian_taps(sigma: float) -> list[float]:
  """Normalised 1-D Gaussian taps of standard deviation ``sigma``, radius ceil(3 sigma)."""
  radius = max(1, int(math.ceil(3.0 * sigma)))
  taps = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-radius, radius + 1)]
  total = sum(taps)
  return [t / total for t in taps]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReblurRatios(keras.layers.Layer):
  """Multi-scale re-blur ratios of RGB images: contrast-invariant estimates of the blur size.

  Re-blurring an image that is already blurred changes it little; re-blurring
  a sharp one changes it a lot (the re-blur principle of Zhuo & Sim 2011). At
  an edge of contrast ``A`` blurred by a Gaussian of size ``s``, the gradient
  energy after a further Gaussian re-blur of ``sigma`` scales as ``A^2 /
  sqrt(s^2 + sigma^2)``: the ratio of the energies at two re-blur levels
  depends on ``s`` and the two sigmas, not on ``A``. This layer computes, with
  no weights, from the grey image ``g``:

  * ``g_0 = g`` and ``g_k = G(sigma_k) * g``, ``k = 1..K`` (separable
    Gaussians, borders mirrored);
  * gradient energies ``e_k = box(|grad g_k|^2)``, a local mean over
    ``energy_window`` x ``energy_window`` (central differences);
  * outputs ``log((e_{k-1} + f^2) / (e_k + f^2))``, ``k = 1..K``, with ``f =
    floor``: one channel per re-blur level, large where the image is sharp at
    that scale, near 0 where it is already blurred beyond it (or flat). Larger
    sigmas read larger blur, so the channels together span blur sizes from
    about ``sigmas[0] / 2`` to ``sigmas[-1]`` pixels.

  Contrast cancels in each ratio (exactly, up to the floor), so a dark
  low-contrast texture and a bright high-contrast one of equal blur give the
  same maps. ``floor`` (gradient per pixel on the [0, 1] intensity scale) keeps
  flat regions finite (their maps are 0) and must sit well below the gradients
  of the textures to be read after the largest re-blur: with 1e-4, a texture of
  contrast 0.04 already reads 0.3 lower in the ``sigma = 4`` channel; the
  default 1e-5 keeps that under 0.004 (a 0.1 grey-level step, below 8-bit
  quantisation and sensor noise, which then dominate the floor).

  Pure ``MirrorPad``, ``Conv2D`` (constant kernels), ``AveragePool2D``, ``Log``
  and arithmetic: TFLite builtins.

  Args:
    sigmas: Increasing re-blur standard deviations, pixels (> 0).
    energy_window: Side of the local-mean window of the gradient energy (odd, >= 3).
    floor: Smallest gradient magnitude, on the [0, 1] intensity scale, in (0, 1).

  Input: float RGB ``[B, H, W, 3]`` in [0, 1], ``H`` and ``W`` above
  ``3 * sigmas[-1]``. Output: ``[B, H, W, len(sigmas)]``.
  """

  def __init__(self, sigmas=(1.0, 2.0, 4.0), energy_window: int = 15, floor: float = 1e-5,
               **kwargs):
    super().__init__(**kwargs)
    try:
      values = [float(s) for s in sigmas]
    except (TypeError, ValueError):
      values = []
    if not values or any(not 0.0 < s < 64.0 for s in values) or any(
        b <= a for a, b in zip(values, values[1:])):
      raise ValueError(f"ReblurRatios.sigmas must be increasing values in (0, 64) pixels, got "
                       f"{sigmas!r}")
    _check_odd_window("ReblurRatios.energy_window", energy_window)
    _check_floor("ReblurRatios.floor", floor)
    self.sigmas = tuple(values)
    self.energy_window = int(energy_window)
    self.floor = float(floor)

  @staticmethod
  def _blur(x, sigma: float):
    taps = _gaussian_taps(sigma)
    radius = len(taps) // 2
    kernel = tf.constant(taps, tf.float32)
    x = tf.pad(x, [[0, 0], [radius, radius], [0, 0], [0, 0]], mode="REFLECT")
    x = tf.nn.conv2d(x, tf.reshape(kernel, [-1, 1, 1, 1]), 1, "VALID")
    x = tf.pad(x, [[0, 0], [0, 0], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.conv2d(x, tf.reshape(kernel, [1, -1, 1, 1]), 1, "VALID")

  def _energy(self, x):
    padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    diff = tf.constant([-0.5, 0.0, 0.5], tf.float32)
    gy = tf.nn.conv2d(padded[:, :, 1:-1, :], tf.reshape(diff, [3, 1, 1, 1]), 1, "VALID")
    gx = tf.nn.conv2d(padded[:, 1:-1, :, :], tf.reshape(diff, [1, 3, 1, 1]), 1, "VALID")
    return tf.nn.avg_pool2d(gx * gx + gy * gy, self.energy_window, 1, "SAME")

  def call(self, inputs):
    # In grey levels (x 255), so that the floor's square survives a float16 export.
    grey = tf.reduce_mean(tf.cast(inputs, tf.float32), axis=-1, keepdims=True) * _GREY_LEVELS
    floor_sq = (self.floor * _GREY_LEVELS) ** 2
    energies = [self._energy(grey)] + [self._energy(self._blur(grey, s)) for s in self.sigmas]
    return tf.concat([tf.math.log((fine + floor_sq) / (coarse + floor_sq))
                      for fine, coarse in zip(energies[:-1], energies[1:])], axis=-1)

  def compute_output_shape(self, input_shape):
    return tuple(input_shape[:-1]) + (len(self.sigmas),)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(sigmas=list(self.sigmas), energy_window=self.energy_window, floor=self.floor)
    return config
