"""What an exported d3tf model takes and returns, and client-side input checks.

Every export (SavedModel for TF Serving, TFLite) has the same interface:

* signature ``serving_default``: input ``images``, uint8 ``[batch, height,
  width, 3]`` RGB of any size (padded by reflection to a multiple of 32 inside
  the graph and cropped back); outputs ``depth`` (float32 ``[batch, height,
  width]``, metres) and, for a model exported with Monte-Carlo samples or an
  aleatoric head, ``depth_std`` (plus ``epistemic_std`` / ``aleatoric_std``
  when the model has an aleatoric head);
* signature ``predict_encoded`` (SavedModel only): input ``image_bytes``,
  tf.string ``[batch]`` of encoded JPEG/PNG/GIF/BMP images, all of one size;
  the same outputs.

This module imports neither TensorFlow nor gRPC: the REST client needs only
NumPy, Pillow and the standard library.
"""

from __future__ import annotations

import io
from typing import Iterable

import numpy as np

#: Signature names.
SERVING_SIGNATURE = "serving_default"
ENCODED_SIGNATURE = "predict_encoded"
SIGNATURES = (SERVING_SIGNATURE, ENCODED_SIGNATURE)
#: Input names of the two signatures.
IMAGES_INPUT = "images"
ENCODED_INPUT = "image_bytes"
INPUT_OF_SIGNATURE = {SERVING_SIGNATURE: IMAGES_INPUT, ENCODED_SIGNATURE: ENCODED_INPUT}
#: Output names, in the order they are listed.
DEPTH = "depth"
DEPTH_STD = "depth_std"
EPISTEMIC_STD = "epistemic_std"
ALEATORIC_STD = "aleatoric_std"
OUTPUTS = (DEPTH, DEPTH_STD, EPISTEMIC_STD, ALEATORIC_STD)

# Leading bytes of the formats tf.io.decode_image reads.
_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"),
          (b"GIF89a", "GIF"), (b"BM", "BMP"))


class ServingError(RuntimeError):
  """A request that the server (or a local export) refused or could not run.

  The message names the server or file and carries the server's own error
  message.
  """


def as_uint8_images(images, what: str = "images") -> tuple[np.ndarray, bool]:
  """Checks and converts images to the exports' input: uint8 ``[B, H, W, 3]``.

  Args:
    images: uint8 (0-255) or float (0-1) RGB, ``[B, H, W, 3]`` or one
      ``[H, W, 3]`` image. Float images are rounded to 8 bits.
    what: Name of the argument, for messages.

  Returns:
    ``(uint8 array [B, H, W, 3], whether a single image was given)``.

  Raises:
    ValueError: wrong rank, channel count, dtype, value range, or an empty
      image, with the offending shape / dtype / values in the message.
  """
  array = np.asarray(images)
  if array.dtype == object:
    raise ValueError(f"{what} must be a numeric array [B, H, W, 3] (images of one size), got "
                     f"an object array of shape {array.shape}")
  single = array.ndim == 3
  if single:
    array = array[None]
  if array.ndim != 4 or array.shape[-1] != 3:
    raise ValueError(f"{what} must be RGB [B, H, W, 3] or [H, W, 3], got shape "
                     f"{np.shape(images)}")
  if min(array.shape[:3]) == 0:
    raise ValueError(f"{what} must not be empty, got shape {array.shape}")
  if array.dtype == np.uint8:
    return np.ascontiguousarray(array), single
  if not np.issubdtype(array.dtype, np.floating):
    raise ValueError(f"{what} must be uint8 (0-255) or float (0-1), got dtype {array.dtype}")
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{what} contain NaN or infinite values")
  low, high = float(array.min()), float(array.max())
  if low < -1e-3 or high > 1.0 + 1e-3:
    raise ValueError(f"float {what} must lie in [0, 1], got values in [{low:g}, {high:g}] (pass "
                     "uint8 for 0-255 images)")
  return np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8), single


def image_format(data: bytes) -> str | None:
  """``"JPEG"``, ``"PNG"``, ``"GIF"`` or ``"BMP"`` from the leading bytes, else None."""
  for magic, name in _MAGIC:
    if data.startswith(magic):
      return name
  return None


def check_encoded_images(encoded: bytes | Iterable[bytes]) -> list[bytes]:
  """Checks encoded images before they are sent: real images, all of one size.

  Args:
    encoded: One encoded image (bytes) or a sequence of them (JPEG, PNG, GIF
      or BMP file contents).

  Returns:
    The images as a list of bytes.

  Raises:
    ValueError: an empty list, an item that is not bytes or not an image
      (naming its index), an image Pillow cannot read, or images of different
      sizes (naming both sizes).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  items = [encoded] if isinstance(encoded, (bytes, bytearray)) else list(encoded)
  if not items:
    raise ValueError("no encoded images given")
  sizes = []
  for index, data in enumerate(items):
    if not isinstance(data, (bytes, bytearray)):
      raise ValueError(f"encoded image {index} must be bytes (a JPEG/PNG file's contents), got "
                       f"{type(data).__name__}")
    kind = image_format(bytes(data))
    if kind is None:
      raise ValueError(f"encoded image {index} is not a JPEG, PNG, GIF or BMP image (first bytes "
                       f"{bytes(data[:8])!r}, {len(data)} bytes)")
    try:
      with Image.open(io.BytesIO(data)) as image:
        sizes.append(image.size)
    except Exception as e:  # pylint: disable=broad-except  # Pillow raises many kinds.
      raise ValueError(f"encoded image {index} ({kind}) cannot be read: {e}") from None
  for index, size in enumerate(sizes):
    if size != sizes[0]:
      raise ValueError(f"all encoded images of one request must have the same size: image 0 is "
                       f"{sizes[0][1]}x{sizes[0][0]}, image {index} is {size[1]}x{size[0]} "
                       "(height x width)")
  return [bytes(item) for item in items]

