"""Poisson-Gaussian sensor noise, drawn with stateless (seeded) TF random ops."""

from __future__ import annotations

import tensorflow as tf


def add_sensor_noise(images: tf.Tensor, shot_gain: float, read_std: float,
                     seed: tf.Tensor) -> tf.Tensor:
  """Adds heteroscedastic Poisson-Gaussian noise to linear-light images.

  The noisy value is ``x + sqrt(shot_gain * x + read_std**2) * n`` with ``n``
  standard normal: the usual Gaussian approximation of photon shot noise
  (variance proportional to the signal) plus read noise. ``shot_gain`` is the
  reciprocal of the number of photo-electrons at full white (1/1000 is a
  well-lit small sensor). The result is clipped to [0, 1].

  Args:
    images: Linear-light float32 images in [0, 1], any shape.
    shot_gain: Variance per unit of signal, >= 0.
    read_std: Standard deviation of the signal-independent noise, >= 0.
    seed: Shape-[2] int tensor for ``tf.random.stateless_normal``.

  Returns:
    Noisy images, same shape and dtype.
  """
  if shot_gain < 0 or read_std < 0:
    raise ValueError(
        f"noise parameters must be >= 0, got shot_gain={shot_gain!r}, read_std={read_std!r}")
  variance = shot_gain * tf.maximum(images, 0.0) + read_std ** 2
  normal = tf.random.stateless_normal(tf.shape(images), seed=seed, dtype=images.dtype)
  return tf.clip_by_value(images + tf.sqrt(variance) * normal, 0.0, 1.0)
