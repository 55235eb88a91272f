"""Flip test-time averaging: depth from an image and its mirror image, averaged.

A network's errors on an image and on its left-right mirror image are partly
independent, so the mean of the two predictions (the second mirrored back) is
usually a little better than either; DenseDepth (Alhashim and Wonka 2018)
scores its models this way. For defocus the mirror image is a photo the same
camera could take: the thin-lens blur disc (and the Gaussian stand-in) is
symmetric, so the mirror of a defocused image is the defocused mirror scene,
and the camera (a camera-aware model's input) is unchanged. It costs a second
forward pass.

:class:`FlipAveragingPredictor` wraps any predictor of
:mod:`d3tf.inference` (Keras model, SavedModel, TFLite) and has the same
``predict``; ``load_predictor(..., flip_average=True)``, ``d3tf.evaluate
--flip_average`` and ``d3tf.predict --flip_average`` use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Outputs that are standard deviations: averaged as variances.
_STD_KEYS = ("epistemic_std", "aleatoric_std", "depth_std")


def _mirror(images):
  """The left-right mirror of ``[B, H, W, C]`` or ``[H, W, C]`` images (width axis -2)."""
  return np.ascontiguousarray(np.flip(np.asarray(images), axis=-2))


def average_with_mirror(outputs: dict[str, np.ndarray],
                        mirrored_outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Combines a prediction and the prediction of the mirror image into one.

  Args:
    outputs: ``predict``'s outputs for the images: float32 ``[B, H, W]``
      arrays.
    mirrored_outputs: ``predict``'s outputs for the mirrored images, same keys
      and shapes (still mirrored: this function mirrors them back).

  Returns:
    The same keys: ``depth`` the mean of the two depths; a standard deviation
    (``*_std``) the square root of the mean of the two variances; any other
    output the mean.

  Raises:
    ValueError: the two have different keys or shapes (naming them).
  """
  if set(outputs) != set(mirrored_outputs):
    raise ValueError(f"the image and its mirror gave different outputs: {sorted(outputs)} vs "
                     f"{sorted(mirrored_outputs)}")
  result = {}
  for key, value in outputs.items():
    value = np.asarray(value)
    back = np.flip(np.asarray(mirrored_outputs[key]), axis=-1)
    if back.shape != value.shape:
      raise ValueError(f"output {key!r} has shape {value.shape} for the image and {back.shape} "
                       "for its mirror")
    if key in _STD_KEYS:
      combined = np.sqrt((np.square(value.astype(np.float64)) +
                          np.square(back.astype(np.float64))) / 2.0)
    else:
      combined = (value.astype(np.float64) + back) / 2.0
    result[key] = combined.astype(value.dtype)
  return result


class FlipAveragingPredictor:
  """A predictor whose ``predict`` averages the images' and their mirrors' depth.

  Args:
    predictor: Any d3tf predictor (``predict(images, samples=..., camera=...)``
      returning float32 ``[B, H, W]`` arrays). Its attributes (``metadata``,
      ``camera``, ``camera_aware``, ...) are this object's too.
  """

  def __init__(self, predictor):
    if not callable(getattr(predictor, "predict", None)):
      raise ValueError(f"FlipAveragingPredictor needs a predictor with predict(), got "
                       f"{type(predictor).__name__}")
    self.predictor = predictor

  def __getattr__(self, name: str) -> Any:
    # Only called for attributes this object lacks: the wrapped predictor's.
    if name == "predictor":
      raise AttributeError(name)
    return getattr(self.predictor, name)

  def __repr__(self) -> str:
    return f"FlipAveragingPredictor({self.predictor!r})"

  def predict(self, images, **kwargs) -> dict[str, np.ndarray]:
    """``predictor.predict`` on the images and on their mirrors, averaged.

    Args:
      images: As the wrapped predictor takes them (``[B, H, W, 3]`` or one
        ``[H, W, 3]``).
      **kwargs: Passed to both calls (``samples``, ``camera``): a camera
        holds for an image and its mirror alike.

    Returns:
      The wrapped predictor's outputs, combined by
      :func:`average_with_mirror`.
    """
    outputs = self.predictor.predict(images, **kwargs)
    mirrored = self.predictor.predict(_mirror(images), **kwargs)
    return average_with_mirror(outputs, mirrored)
