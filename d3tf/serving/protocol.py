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

A camera-aware model (``docs/any_camera.md``) takes each image's camera too:

* SavedModel: ``serving_default`` and ``predict_encoded`` use the model's
  default camera (its metadata's), and two more signatures take it as a
  second input ``camera``, float32 ``[batch, 4]`` (:data:`CAMERA_FIELDS`, in
  that order and those units): ``serving_camera`` (``images`` + ``camera``)
  and ``predict_encoded_camera`` (``image_bytes`` + ``camera``). TF Serving
  has no optional inputs (a request must feed every input of its signature),
  hence a signature per case;
* TFLite: ``serving_default`` has two inputs, ``images`` and ``camera``
  (float32 ``[batch, 4]``, ``[1, 4]`` for a fixed input size); the caller
  fills in the default camera (the export's metadata) when it has none.

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
#: Camera-aware exports: the camera input, its signatures, and the vector's fields and units
#: (d3tf.optics.camera_range.VECTOR_FIELDS, checked equal by the tests).
CAMERA_INPUT = "camera"
CAMERA_SIGNATURE = "serving_camera"
ENCODED_CAMERA_SIGNATURE = "predict_encoded_camera"
#: The signature taking the camera, for each signature using the default camera.
CAMERA_SIGNATURE_OF = {SERVING_SIGNATURE: CAMERA_SIGNATURE,
                       ENCODED_SIGNATURE: ENCODED_CAMERA_SIGNATURE}
CAMERA_FIELDS = ("focal_length_mm", "f_number", "pixel_pitch_um", "focus_distance_m")
CAMERA_UNITS = ("mm (real focal length)", "-", "um, of the image the model sees",
                "m")
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



def refuse_camera(camera, model: str) -> None:
  """Raises ValueError if a camera is given to a one-camera model (which takes none).

  Args:
    camera: What the caller passed as ``camera=`` (None: nothing).
    model: The model, for the message (e.g. its path).
  """
  if camera is not None:
    raise ValueError(f"{model} does not take a camera (a one-camera model, trained on its "
                     f"metadata's camera); predict without camera=, got camera={camera!r}")


def as_camera_vectors(camera, batch: int, what: str = "camera") -> np.ndarray:
  """Checks and converts a camera to the exports' camera input: float32 ``[batch, 4]``.

  Args:
    camera: A :class:`d3tf.optics.Camera` (anything with ``focal_length_m``,
      ``f_number``, ``pixel_pitch_m`` and ``focus_distance_m``), a ``[4]``
      vector of :data:`CAMERA_FIELDS` (focal length mm, f-number, pixel pitch
      um, focus distance m; repeated for every image) or ``[batch, 4]``, one
      per image.
    batch: The number of images.
    what: Name of the argument, for messages.

  Returns:
    float32 ``[batch, 4]``.

  Raises:
    ValueError: a wrong shape, a non-finite or non-positive value, or a focus
      distance not beyond the focal length (naming the row and the values).
  """
  if all(hasattr(camera, name) for name in ("focal_length_m", "f_number", "pixel_pitch_m",
                                            "focus_distance_m")):
    camera = [camera.focal_length_m * 1e3, camera.f_number, camera.pixel_pitch_m * 1e6,
              camera.focus_distance_m]
  try:
    vectors = np.asarray(camera, np.float32)
  except (TypeError, ValueError):
    raise ValueError(f"{what} must be a Camera, a [4] vector or [{batch}, 4] vectors "
                     f"({', '.join(CAMERA_FIELDS)}), got {camera!r}") from None
  if vectors.ndim == 1 and vectors.shape[0] == 4:
    vectors = np.broadcast_to(vectors, (batch, 4))
  if vectors.shape != (batch, 4):
    raise ValueError(f"{what} must be a Camera, a [4] vector or one per image [{batch}, 4] "
                     f"({', '.join(CAMERA_FIELDS)}), got shape {vectors.shape}")
  for row, vector in enumerate(vectors):
    values = dict(zip(CAMERA_FIELDS, vector.tolist()))
    if not np.all(np.isfinite(vector)) or np.any(vector <= 0):
      raise ValueError(f"{what} {row}: every value must be finite and positive, got {values}")
    if vector[3] <= vector[0] * 1e-3:
      raise ValueError(f"{what} {row}: the focus distance ({vector[3]:g} m) must lie beyond the "
                       f"focal length ({vector[0]:g} mm), got {values}")
  return np.ascontiguousarray(vectors)
