"""sRGB transfer function (IEC 61966-2-1), so that blur can be computed in linear light.

The one definition in d3tf: the renderer, its references, the procedural
scenes and the textures all use it. Both functions take a ``tf.Tensor`` or
NumPy data (arrays, scalars, numbers) and return the same kind (NumPy keeps
the input's float dtype); TensorFlow is imported only for tensors.
"""

from __future__ import annotations

import numpy as np


def _ops(x):
  """NumPy's functions for arrays, NumPy scalars and numbers; TF's for tensors."""
  if isinstance(x, (np.ndarray, np.generic, float, int)):
    return np.clip, np.where, np.power
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.clip_by_value, tf.where, _tf_power


def _tf_power(base, exponent: float):
  """``base ** exponent`` for positive (or zero) ``base`` as ``exp(exponent * log(base))``.

  Within 3e-7 of ``tf.pow``, and about 6x cheaper under XLA on a CPU, whose
  ``pow`` is not vectorised (the sRGB round trip of the compiled renderers
  took a sixth of their time). Zero gives zero.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.exp(exponent * tf.math.log(base))


def srgb_to_linear(images):
  """Decodes sRGB values in [0, 1] to linear light (IEC 61966-2-1).

  Args:
    images: Float tensor or array of sRGB values; values outside [0, 1] are
      clipped.

  Returns:
    Linear-light values in [0, 1], same shape, dtype and kind.
  """
  clip, where, power = _ops(images)
  x = clip(images, 0.0, 1.0)
  return where(x <= 0.04045, x / 12.92, power((x + 0.055) / 1.055, 2.4))


def linear_to_srgb(images):
  """Encodes linear-light values in [0, 1] as sRGB (inverse of :func:`srgb_to_linear`)."""
  clip, where, power = _ops(images)
  x = clip(images, 0.0, 1.0)
  return where(x <= 0.0031308, x * 12.92, 1.055 * power(x, 1.0 / 2.4) - 0.055)
