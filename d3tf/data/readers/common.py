"""What every dataset reader shares: file decoding and the reader base class.

Decoding functions turn any failure (missing file, corrupt or truncated data,
wrong pixel format) into a :class:`~d3tf.data.validation.DataError` that names
the file. :class:`DepthReader` gives each dataset the same two faces:

1. Python: ``reader.samples()`` lists :class:`Sample` records (names and
   paths), ``reader.load(sample)`` returns ``(image uint8 [H, W, 3], depth
   float32 [H, W] metres, 0 = invalid)``, ``reader.iter_samples()`` walks them
   all under the reader's ``on_error`` policy.
2. TensorFlow: ``reader.as_dataset()`` is a ``tf.data.Dataset`` of dicts
   ``{"image": uint8 [H, W, 3], "depth": float32 [H, W], "name": string}``.
"""

from __future__ import annotations

import abc
import dataclasses
import io
import os
from typing import Any, Callable, Iterator, Mapping, Sequence

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageFile

from d3tf.data import validation
from d3tf.data.validation import DataError

PathLike = str | os.PathLike


# ------------------------------------------------------------------- decoding
def read_bytes(path: PathLike) -> bytes:
  """Reads a whole file, raising DataError (naming it) if it is missing or unreadable."""
  try:
    with open(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(str(path), "file not found") from None
  except OSError as e:
    raise DataError(str(path), f"cannot read file ({e})") from None


def decode_pil(data: bytes, path: PathLike) -> Image.Image:
  """Fully decodes image bytes with Pillow; a truncated or corrupt file raises DataError.

  Pillow only detects a truncated file when it decodes the pixels and
  ``ImageFile.LOAD_TRUNCATED_IMAGES`` is false (its default); we refuse to
  decode if some other code has switched it on, rather than return a partly
  grey image.
  """
  if ImageFile.LOAD_TRUNCATED_IMAGES:
    raise DataError(
        str(path), "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True, so a truncated image "
        "would load silently; set it back to False")
  if not data:
    raise DataError(str(path), "file is empty (0 bytes)")
  try:
    img = Image.open(io.BytesIO(data))
    img.load()
  except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
    raise DataError(str(path), f"corrupt or truncated image ({type(e).__name__}: {e})") from None
  return img


def read_image(path: PathLike) -> np.ndarray:
  """Reads an image file (JPEG, PNG, ...) as ``uint8 [H, W, 3]`` RGB.

  Grey-scale and palette images are converted to RGB; an alpha channel is
  dropped. EXIF orientation is *not* applied: depth maps are registered to
  the stored pixel grid.

  Args:
    path: The image file.

  Returns:
    The RGB image.

  Raises:
    DataError: missing, empty, corrupt or truncated file, or a pixel format
      that is not an image (e.g. a 16-bit single-channel depth PNG).
  """
  img = decode_pil(read_bytes(path), path)
  if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
    raise DataError(
        str(path), f"expected an 8-bit colour image, got pixel mode {img.mode!r} "
        "(a depth map?)")
  if img.mode != "RGB":
    img = img.convert("RGB")
  return np.asarray(img, dtype=np.uint8)


def read_depth_png(path: PathLike, scale: float) -> np.ndarray:
  """Reads a single-channel integer depth PNG and multiplies it by ``scale``.

  Args:
    path: A 16-bit (or 8-bit) grey PNG.
    scale: Metres per stored unit, e.g. ``0.001`` for millimetres.

  Returns:
    ``float32 [H, W]`` depth in metres (0 stays 0 = invalid).

  Raises:
    DataError: missing, corrupt or truncated file, or a colour PNG.
  """
  img = decode_pil(read_bytes(path), path)
  if img.mode not in ("I", "I;16", "I;16B", "I;16L", "L"):
    raise DataError(
        str(path), f"depth PNG must have one integer channel (16-bit grey), got pixel mode "
        f"{img.mode!r}")
  raw = np.asarray(img)
  return (raw.astype(np.float64) * scale).astype(np.float32)


def read_depth_npy(path: PathLike, scale: float = 1.0) -> np.ndarray:
  """Reads a ``.npy`` depth map (by default in metres) without pickle.

  Raises:
    DataError: missing, truncated or corrupt file, or an object array.
  """
  data = read_bytes(path)
  try:
    array = np.load(io.BytesIO(data), allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise DataError(str(path), f"corrupt or truncated .npy file ({e})") from None
  if not isinstance(array, np.ndarray):
    raise DataError(str(path), f"expected one array in the .npy file, got {type(array).__name__}")
  if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
    raise DataError(str(path), f"depth array dtype must be numeric, got {array.dtype}")
  if scale != 1.0:
    return (array.astype(np.float64) * scale).astype(np.float32)
  return array.astype(np.float32)


def read_depth_file(path: PathLike, png_scale: float, npy_scale: float = 1.0) -> np.ndarray:
  """Reads depth from a ``.png`` (times ``png_scale``) or ``.npy`` (times ``npy_scale``)."""
  suffix = os.path.splitext(str(path))[1].lower()
  if suffix == ".png":
    return read_depth_png(path, png_scale)
  if suffix == ".npy":
    return read_depth_npy(path, npy_scale)
  raise DataError(str(path), f"unsupported depth file type {suffix!r}; use .png or .npy")


# ----------------------------------------------------------------- the readers
@dataclasses.dataclass(frozen=True)
class Sample:
  """One RGB-D sample of a dataset, before loading.

  Attributes:
    name: A short unique name (file stem, scene or index).
    image_path: The image file (or the container file, e.g. NYU's .mat).
    depth_path: The depth file, or ``None`` when it lives in ``image_path``.
    index: Position inside a container file, if any.
    meta: Anything else a reader needs (timestamps, calibration, ...).
  """

  name: str
  image_path: str
  depth_path: str | None = None
  index: int | None = None
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False)

  @property
  def paths(self) -> tuple[str, ...]:
    """The files this sample is read from."""
    return tuple(p for p in (self.image_path, self.depth_path) if p)


class DepthReader(abc.ABC):
  """Base class of the RGB-D dataset readers.

  Subclasses implement :meth:`_list` (build the sample list; may report
  listing problems such as a missing partner file through
  ``self._policy.handle``) and :meth:`_read` (decode one sample to raw
  arrays, depth already in metres). Validation and the ``on_error`` policy
  are applied here.

  Args:
    on_error: ``"raise"``: a bad sample raises DataError naming the file.
      ``"skip"``: it is logged (absl.logging WARNING), counted in
      :attr:`skipped` and left out, both when listing and when loading.
    max_depth_m: Depth above this raises (millimetres taken for metres).
    non_finite: ``"zero"`` (NaN, inf and negative depth become 0 = invalid)
      or ``"raise"``.
  """

  #: Name of the data source in log lines.
  source = "data"

  def __init__(self, *, on_error: str = "raise",
               max_depth_m: float | None = validation.DEFAULT_MAX_DEPTH_M,
               non_finite: str = "zero"):
    self._policy = validation.ErrorPolicy(on_error, self.source)
    self.max_depth_m = max_depth_m
    self.non_finite = non_finite
    self._samples: list[Sample] | None = None

  # -- to implement
  @abc.abstractmethod
  def _list(self) -> list[Sample]:
    """Returns the samples, in a deterministic order."""

  @abc.abstractmethod
  def _read(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
    """Decodes one sample to ``(image, depth in metres)`` without validating."""

  # -- public API
  @property
  def on_error(self) -> str:
    """``"raise"`` or ``"skip"``."""
    return self._policy.on_error

  @property
  def skipped(self) -> int:
    """How many samples were skipped (listing and loading) so far."""
    return self._policy.skipped

  def error_report(self, max_listed: int = 20) -> dict:
    """The skipped samples so far: see :meth:`~d3tf.data.validation.ErrorPolicy.report`."""
    return self._policy.report(max_listed)

  def samples(self) -> list[Sample]:
    """The dataset's samples (listed once, then cached)."""
    if self._samples is None:
      self._samples = list(self._list())
      logging.info("%s: %d samples", self.source, len(self._samples))
    return self._samples

  def __len__(self) -> int:
    return len(self.samples())

  def load(self, sample: Sample | int) -> tuple[np.ndarray, np.ndarray]:
    """Loads and validates one sample.

    Args:
      sample: A :class:`Sample` from :meth:`samples`, or its position.

    Returns:
      ``(image uint8 [H, W, 3], depth float32 [H, W])``, depth in metres,
      ``0`` = invalid.

    Raises:
      DataError: the sample is bad (always, whatever ``on_error`` says:
        skipping applies to iteration and datasets).
    """
    if isinstance(sample, (int, np.integer)):
      sample = self.samples()[int(sample)]
    image, depth = self._read(sample)
    return validation.validate_sample(
        image, depth, image_path=sample.image_path, depth_path=sample.depth_path,
        max_depth_m=self.max_depth_m, non_finite=self.non_finite)

  def iter_samples(self) -> Iterator[tuple[Sample, np.ndarray, np.ndarray]]:
    """Yields ``(sample, image, depth)`` for every sample, under ``on_error``."""
    samples = self.samples()
    skipped_before = self.skipped
    for sample in samples:
      try:
        image, depth = self.load(sample)
      except DataError as e:
        self._policy.handle(e)
        continue
      yield sample, image, depth
    n_skipped = self.skipped - skipped_before
    if n_skipped:
      logging.warning("%s: skipped %d of %d samples while loading", self.source, n_skipped,
                      len(samples))

  def as_dataset(self, *, shuffle: bool = False, seed: int | None = None,
                 num_parallel_calls: int | None = None,
                 indices: "tf.data.Dataset | None" = None) -> "tf.data.Dataset":
    """A ``tf.data.Dataset`` of ``{"image", "depth", "name"}`` dicts, one per sample.

    Files are decoded in Python (``tf.numpy_function``) so that bad-input
    errors are the same DataError messages, naming the file; with
    ``on_error="raise"`` iteration stops with a ``tf.errors.InvalidArgumentError``
    carrying that message, with ``"skip"`` the sample is logged, counted and
    left out.

    Args:
      shuffle: Shuffle the sample order (cheaply, before loading).
      seed: Seed of the shuffle.
      num_parallel_calls: Parallel loads (default ``tf.data.AUTOTUNE``);
        order stays deterministic.
      indices: Optional ``tf.data.Dataset`` of int64 positions in
        :meth:`samples` to load, in that order (may repeat, may be endless;
        see :func:`d3tf.data.mixing.reader_stream`). Default: each sample once.

    Returns:
      The dataset; shapes ``image [None, None, 3] uint8``, ``depth [None,
      None] float32``, ``name [] string``.
    """
    return samples_dataset(self.samples(), self.load, self._policy, shuffle=shuffle,
                           seed=seed, num_parallel_calls=num_parallel_calls, indices=indices)


def samples_dataset(samples: Sequence[Sample],
                    load: Callable[[Sample], tuple[np.ndarray, np.ndarray]],
                    policy: validation.ErrorPolicy,
                    *,
                    shuffle: bool = False,
                    seed: int | None = None,
                    num_parallel_calls: int | None = None,
                    indices: "tf.data.Dataset | None" = None) -> "tf.data.Dataset":
  """Builds the element-contract dataset from a sample list and a load function.

  See :meth:`DepthReader.as_dataset` for the arguments. ``indices``, if
  given, is a ``tf.data.Dataset`` of int64 sample positions to load, in that
  order (e.g. an endless, seeded stream of shuffled epochs); ``shuffle`` then
  does not apply.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  samples = list(samples)
  names_t = tf.constant([s.name for s in samples] or [""], dtype=tf.string)
  if num_parallel_calls is None:
    num_parallel_calls = tf.data.AUTOTUNE

  def load_py(index):
    sample = samples[int(index)]
    try:
      image, depth = load(sample)
    except DataError as e:
      # Not raised here: TensorFlow would log the Python traceback of an exception raised
      # inside the numpy_function; the graph raises it below, with the message alone.
      message = b""
      if policy.on_error == "raise":
        message = stream_error_message(e)
      else:
        policy.handle(e)
      return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32), False, message
    return image, depth, True, b""

  def load_tf(index):
    image, depth, ok, message = tf.numpy_function(
        load_py, [index], [tf.uint8, tf.float32, tf.bool, tf.string], stateful=False)
    if policy.on_error == "raise":  # InvalidArgumentError "... DataError: <file>: <problem>".
      with tf.control_dependencies([tf.debugging.Assert(ok, [message], summarize=1)]):
        ok = tf.identity(ok)
    image.set_shape([None, None, 3])
    depth.set_shape([None, None])
    ok.set_shape([])
    return {"image": image, "depth": depth, "name": tf.gather(names_t, index)}, ok

  if indices is not None:
    if shuffle:
      raise ValueError("shuffle does not apply when indices are given: shuffle the indices")
    ds = indices
  else:
    ds = tf.data.Dataset.range(len(samples))
  if shuffle:
    ds = ds.shuffle(max(len(samples), 1), seed=seed, reshuffle_each_iteration=True)
  ds = ds.map(tf.autograph.experimental.do_not_convert(load_tf),
              num_parallel_calls=num_parallel_calls, deterministic=True)
  ds = ds.filter(tf.autograph.experimental.do_not_convert(is_ok))
  return ds.map(tf.autograph.experimental.do_not_convert(drop_ok))


def stream_error_message(error: DataError) -> bytes:
  """The text a tf.data stream fails with for ``error``; see :mod:`d3tf.data.stream_errors`."""
  return f"DataError: {error}\n".encode("utf-8", "replace")


def is_ok(element, ok):
  """``Dataset.filter`` predicate for ``(element, ok)`` pairs: keeps loaded samples."""
  del element
  return ok


def drop_ok(element, ok):
  """``Dataset.map`` function for ``(element, ok)`` pairs: drops the flag."""
  del ok
  return element
