"""sRGB transfer function, so that blur can be computed in linear light."""

from __future__ import annotations

import tensorflow as tf


def srgb_to_linear(images: tf.Tensor) -> tf.Tensor:
  """Decodes sRGB values in [0, 1] to linear light (IEC 61966-2-1).

  Args:
    images: Float tensor of sRGB values; values outside [0, 1] are clipped.

  Returns:
    Linear-light values in [0, 1], same shape and dtype.
  """
  x = tf.clip_by_value(images, 0.0, 1.0)
  return tf.where(x <= 0.04045, x / 12.92, tf.pow((x + 0.055) / 1.055, 2.4))


def linear_to_srgb(images: tf.Tensor) -> tf.Tensor:
  """Encodes linear-light values in [0, 1] as sRGB (inverse of :func:`srgb_to_linear`)."""
  x = tf.clip_by_value(images, 0.0, 1.0)
  return tf.where(x <= 0.0031308, x * 12.92, 1.055 * tf.pow(x, 1.0 / 2.4) - 0.055)
