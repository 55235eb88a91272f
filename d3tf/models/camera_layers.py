"""Layers of the camera-aware D3-Net: camera features, FiLM, and the thin-lens head.

A camera-aware D3-Net (``D3NetConfig.camera_aware``) takes a second input,
the camera vector ``[B, 4]`` = (focal length mm, f-number, pixel pitch um,
focus distance m), and

* predicts the *signed blur diameter* ``c`` in pixels of every pixel
  (negative in front of the focal plane): what the image shows, whatever
  the camera;
* converts it to metres with the thin-lens formula
  (:class:`ThinLensDepth`): ``c = K (1/d_f - 1/d)`` with ``K = f^2 d_f /
  (N (d_f - f) p)``, so ``d = 1 / (1/d_f - c/K)``;
* tells the decoder which camera took the image (:class:`CameraFeatures`,
  then a FiLM scale and shift of each decoder block's channels,
  :class:`FiLM`), so that context can resolve the near/far ambiguity of
  ``|c|`` around the focal plane and the scale of a camera with little blur.

All three layers are parameter-free (the FiLM weights are ordinary Dense
layers of the model) and registered with Keras, with complete ``get_config``.
This module implements the thin-lens formula itself (models sit below optics
in the layering); ``d3tf.optics.camera_range.blur_scale_px`` is the same.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_PACKAGE = "d3tf"
#: Depths (m) at which the camera's blur-per-depth curve is sampled for the decoder.
CURVE_DEPTHS_M = (0.5, 1.0, 2.0, 4.0, 8.0)


def _blur_scale_px(camera):
  """``K`` (pixels per 1/m) of camera vectors ``[B, 4]``, and the focus distance ``[B]``."""
  camera = ops.cast(camera, "float32")
  f = camera[:, 0] * 1e-3
  n = camera[:, 1]
  p = camera[:, 2] * 1e-6
  s = camera[:, 3]
  return f * f * s / (n * (s - f) * p), s


def _asinh(x):
  """``asinh(x)`` as ``sign(x) log(|x| + sqrt(x^2 + 1))``: TFLite builtin ops only.

  TFLite has no ``ASINH`` builtin (a camera-aware model's TFLite export would
  need a Flex op); the odd form avoids the cancellation of ``x + sqrt(x^2 +
  1)`` for large negative ``x`` and equals ``tf.math.asinh`` to float32
  rounding.
  """
  magnitude = ops.abs(x)
  return ops.sign(x) * ops.log(magnitude + ops.sqrt(magnitude * magnitude + 1.0))


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CameraFeatures(keras.layers.Layer):
  """Camera vector ``[B, 4]`` -> normalised features ``[B, len(depths) + 2]``.

  The features are the camera's blur-per-depth curve, ``asinh(c(d_i) / 2)``
  at the depths ``d_i`` (signed, pixels), then ``log(K) / 4`` and
  ``1 / d_f`` (1/m): everything the thin-lens blur depends on, at a scale
  near 1.

  Args:
    depths_m: The depths of the curve, metres.
  """

  def __init__(self, depths_m=CURVE_DEPTHS_M, **kwargs):
    super().__init__(**kwargs)
    self.depths_m = tuple(float(d) for d in depths_m)
    if not self.depths_m or any(not d > 0 for d in self.depths_m):
      raise ValueError(f"CameraFeatures.depths_m must be positive depths, got {depths_m!r}")

  def call(self, camera):
    scale, focus = _blur_scale_px(camera)
    inverse_depths = ops.convert_to_tensor([1.0 / d for d in self.depths_m], "float32")
    curve = scale[:, None] * (1.0 / focus[:, None] - inverse_depths[None, :])
    return ops.concatenate([_asinh(curve / 2.0), ops.log(scale)[:, None] / 4.0,
                            (1.0 / focus)[:, None]], axis=-1)

  def compute_output_shape(self, input_shape):
    return (input_shape[0], len(self.depths_m) + 2)

  def get_config(self) -> dict[str, Any]:
    return {**super().get_config(), "depths_m": list(self.depths_m)}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FiLM(keras.layers.Layer):
  """Feature-wise linear modulation: ``x * (1 + gamma) + beta``.

  Inputs ``[x [B, H, W, C], gamma_beta [B, 2C]]`` (gamma first); a zero
  ``gamma_beta`` leaves ``x`` unchanged.
  """

  def call(self, inputs):
    x, gamma_beta = inputs
    gamma, beta = ops.split(ops.cast(gamma_beta, x.dtype), 2, axis=-1)
    return x * (1.0 + gamma[:, None, None, :]) + beta[:, None, None, :]

  def compute_output_shape(self, input_shape):
    return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ThinLensDepth(keras.layers.Layer):
  """Signed blur (pixels) and camera -> depth (metres), by the thin-lens formula.

  ``d = 1 / (1/d_f - c/K)``, the inverse depth clamped to ``[1/max_depth_m,
  1/min_depth_m]``: a blur beyond what the far end of the range (or
  infinity, where ``1/d_f - c/K <= 0``) gives is read as ``max_depth_m``, a
  blur beyond the near end as ``min_depth_m``. The clamp is exact in the
  forward pass; its gradient leaks with slope ``leak`` outside the range so
  that a pixel driven out of range can come back.

  Inputs ``[signed_blur [B, H, W, 1], camera [B, 4]]``; output ``[B, H, W, 1]``.

  Args:
    min_depth_m, max_depth_m: The depth range, metres.
    leak: Gradient slope outside the range (0: a plain clamp).
  """

  def __init__(self, min_depth_m: float = 0.1, max_depth_m: float = 10.0, leak: float = 0.01,
               **kwargs):
    super().__init__(**kwargs)
    if not 0 < float(min_depth_m) < float(max_depth_m):
      raise ValueError(f"ThinLensDepth needs 0 < min_depth_m < max_depth_m, got "
                       f"{min_depth_m!r}, {max_depth_m!r}")
    if not 0 <= float(leak) < 1:
      raise ValueError(f"ThinLensDepth.leak must be in [0, 1), got {leak!r}")
    self.min_depth_m = float(min_depth_m)
    self.max_depth_m = float(max_depth_m)
    self.leak = float(leak)

  def call(self, inputs):
    signed_blur, camera = inputs
    scale, focus = _blur_scale_px(camera)
    inverse = (1.0 / focus)[:, None, None, None] - ops.cast(
        signed_blur, "float32") / scale[:, None, None, None]
    clamped = ops.clip(inverse, 1.0 / self.max_depth_m, 1.0 / self.min_depth_m)
    outside = ops.not_equal(clamped, inverse)
    leaked = ops.where(outside, clamped + self.leak * (inverse - ops.stop_gradient(inverse)),
                       clamped)
    return 1.0 / leaked

  def compute_output_shape(self, input_shape):
    return input_shape[0]

  def get_config(self) -> dict[str, Any]:
    return {**super().get_config(), "min_depth_m": self.min_depth_m,
            "max_depth_m": self.max_depth_m, "leak": self.leak}


def signed_blur_px(depth, camera):
  """The inverse of :class:`ThinLensDepth` (no clamp): ``c = K (1/d_f - 1/d)``.

  Args:
    depth: ``[B, H, W, 1]`` metres.
    camera: ``[B, 4]`` camera vectors.
  """
  scale, focus = _blur_scale_px(camera)
  return scale[:, None, None, None] * ((1.0 / focus)[:, None, None, None] - 1.0 / depth)
