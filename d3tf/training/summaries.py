"""TensorBoard event writing with TensorFlow alone.

``tf.summary.scalar`` and ``tf.summary.image`` are implemented by the
``tensorboard`` package, which d3tf does not require. These helpers write the
same events with TensorFlow's core ``tf.summary.write`` and the plugin
metadata TensorBoard's scalar and image dashboards read, so logs written here
open in any TensorBoard (``tensorboard --logdir MODEL_DIR/tensorboard``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin_name: str) -> summary_pb2.SummaryMetadata:
  return summary_pb2.SummaryMetadata(
      plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name))


def write_scalar(name: str, value, step: int) -> None:
  """Writes one scalar to the default summary writer (as ``tf.summary.scalar``)."""
  tf.summary.write(name, tf.constant(float(value), tf.float32), step=int(step),
                   metadata=_metadata("scalars"))


def write_images(name: str, images: np.ndarray, step: int) -> None:
  """Writes a batch of images to the default summary writer (as ``tf.summary.image``).

  Args:
    name: Tag.
    images: uint8 [N, H, W, 3] (or float in [0, 1], or [N, H, W, 1] grey).
    step: Global step.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
    raise ValueError(f"images must be [N, H, W, 1|3|4], got shape {images.shape}")
  if images.dtype != np.uint8:
    images = np.clip(np.round(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)
  pngs = [tf.io.encode_png(image) for image in images]
  tensor = tf.stack([tf.constant(str(images.shape[2])), tf.constant(str(images.shape[1]))]
                    + pngs)
  tf.summary.write(name, tensor, step=int(step), metadata=_metadata("images"))


def colorize(values: np.ndarray, vmin: float, vmax: float, cmap: str = "magma_r") -> np.ndarray:
  """Maps [N, H, W] (or [N, H, W, 1]) values to uint8 RGB with a matplotlib colour map.

  Non-finite values, and depth 0 (invalid) when ``vmin > 0``, are drawn black.
  """
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float32)
  if values.ndim == 4:
    values = values[..., 0]
  lut = (colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255.0).astype(np.uint8)
  scaled = (values - vmin) / max(vmax - vmin, 1e-12)
  codes = np.clip(np.nan_to_num(scaled * 255.0, nan=0.0), 0, 255).astype(np.int32)
  rgb = lut[codes]
  invalid = ~np.isfinite(values)
  if vmin > 0:
    invalid |= values <= 0
  rgb[invalid] = 0
  return rgb
