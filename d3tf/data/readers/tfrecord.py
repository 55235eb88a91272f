"""TFRecord shards of RGB-D samples, for datasets too large to decode from folders each epoch.

Each record is a ``tf.train.Example`` with the features:

==================  ======  ===================================================
``name``            bytes   the sample's name
``height``          int64   H
``width``           int64   W
``image/png``       bytes   the image, PNG-encoded RGB (lossless)
``depth/format``    bytes   ``"float32"`` or ``"png16"``
``depth/scale``     float   metres per stored unit (``png16``); 1.0 for float32
``depth/data``      bytes   ``float32`` little-endian raw ``[H, W]`` metres, or a
                            16-bit grey PNG of ``round(depth / scale)``
==================  ======  ===================================================

Shards are named ``<prefix>-00000-of-00004.tfrecord``. Reading decodes and
validates in Python like every other reader, so a bad record gives an error
naming its shard and sample.
"""

from __future__ import annotations

import glob
import io
import os
from typing import Iterable, Iterator, Sequence

from absl import logging
import numpy as np
from PIL import Image
import tensorflow as tf

from d3tf.data import validation
from d3tf.data.readers import common
from d3tf.data.validation import DataError

DEPTH_FORMATS = ("float32", "png16")

_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "image/png": tf.io.FixedLenFeature([], tf.string),
    "depth/format": tf.io.FixedLenFeature([], tf.string),
    "depth/scale": tf.io.FixedLenFeature([], tf.float32),
    "depth/data": tf.io.FixedLenFeature([], tf.string),
}


def _png_bytes(array: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()


def encode_example(name: str, image: np.ndarray, depth: np.ndarray, *,
                   depth_format: str = "float32", depth_scale: float = 0.001) -> bytes:
  """Serialises one validated sample to a ``tf.train.Example``.

  Args:
    name: The sample's name.
    image: ``uint8 [H, W, 3]``.
    depth: ``float32 [H, W]`` metres, 0 = invalid.
    depth_format: ``"float32"`` (exact) or ``"png16"`` (``depth_scale``
      metres per unit; smaller files, quantised).
    depth_scale: Metres per unit for ``png16`` (0.001: millimetres, up to
      65.535 m).

  Returns:
    The serialised example.

  Raises:
    DataError: the sample fails validation, or a depth does not fit 16 bits
      at this scale.
  """
  if depth_format not in DEPTH_FORMATS:
    raise ValueError(f"depth_format must be one of {DEPTH_FORMATS}, got {depth_format!r}")
  image, depth = validation.validate_sample(image, depth, image_path=name)
  height, width = depth.shape
  if depth_format == "float32":
    data, scale = depth.astype("<f4").tobytes(), 1.0
  else:
    units = np.round(depth.astype(np.float64) / depth_scale)
    if units.max() > 65535:
      raise DataError(name, f"depth up to {depth.max():g} m does not fit a 16-bit PNG at "
                      f"{depth_scale:g} m per unit (max {65535 * depth_scale:g} m)")
    data, scale = _png_bytes(units.astype(np.uint16)), float(depth_scale)

  def bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

  def int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

  example = tf.train.Example(features=tf.train.Features(feature={
      "name": bytes_feature(name.encode()),
      "height": int_feature(height),
      "width": int_feature(width),
      "image/png": bytes_feature(_png_bytes(image)),
      "depth/format": bytes_feature(depth_format.encode()),
      "depth/scale": tf.train.Feature(float_list=tf.train.FloatList(value=[scale])),
      "depth/data": bytes_feature(data),
  }))
  return example.SerializeToString()


def write_tfrecords(samples: Iterable[tuple[str, np.ndarray, np.ndarray]] | common.DepthReader,
                    output_prefix: common.PathLike, *, samples_per_shard: int = 256,
                    depth_format: str = "float32", depth_scale: float = 0.001) -> list[str]:
  """Writes samples into TFRecord shards.

  Args:
    samples: ``(name, image, depth)`` tuples, or a reader (its
      ``iter_samples()``, which follows the reader's ``on_error``).
    output_prefix: Path prefix of the shards (its folder is created).
    samples_per_shard: Records per shard.
    depth_format: ``"float32"`` or ``"png16"``, see :func:`encode_example`.
    depth_scale: Metres per unit for ``png16``.

  Returns:
    The shard paths, ``<prefix>-NNNNN-of-MMMMM.tfrecord``.

  Raises:
    DataError: a sample is bad (nothing half-written is left behind).
  """
  if samples_per_shard < 1:
    raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}")
  if isinstance(samples, common.DepthReader):
    samples = ((s.name, image, depth) for s, image, depth in samples.iter_samples())
  prefix = os.fspath(output_prefix)
  os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
  temp_paths: list[str] = []
  writer = None
  count = 0
  try:
    for name, image, depth in samples:
      if count % samples_per_shard == 0:
        if writer is not None:
          writer.close()
        temp_paths.append(f"{prefix}-{len(temp_paths):05d}.tfrecord.tmp")
        writer = tf.io.TFRecordWriter(temp_paths[-1])
      writer.write(encode_example(name, image, depth, depth_format=depth_format,
                                  depth_scale=depth_scale))
      count += 1
  except BaseException:
    if writer is not None:
      writer.close()
    for path in temp_paths:
      if os.path.exists(path):
        os.remove(path)
    raise
  if writer is not None:
    writer.close()
  paths = []
  for k, temp in enumerate(temp_paths):
    final = f"{prefix}-{k:05d}-of-{len(temp_paths):05d}.tfrecord"
    os.replace(temp, final)
    paths.append(final)
  logging.info("Wrote %d samples into %d shards %s-*", count, len(paths), prefix)
  return paths


def decode_record(shard: str, name: str, height: int, width: int, image_png: bytes,
                  depth_format: str, depth_scale: float, depth_data: bytes
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Decodes the parsed features of one record (see :data:`_FEATURES`); raises DataError."""
  where = f"{shard} (record {name!r})"
  image = np.asarray(common.decode_pil(image_png, where).convert("RGB"), dtype=np.uint8)
  if image.shape[:2] != (height, width):
    raise DataError(where, f"image is {image.shape[0]}x{image.shape[1]}, record says "
                    f"{height}x{width}")
  if depth_format == "float32":
    if len(depth_data) != 4 * height * width:
      raise DataError(where, f"float32 depth has {len(depth_data)} bytes, expected "
                      f"{4 * height * width} for {height}x{width}")
    depth = np.frombuffer(depth_data, dtype="<f4").reshape(height, width).astype(np.float32)
  elif depth_format == "png16":
    units = np.asarray(common.decode_pil(depth_data, where))
    depth = (units.astype(np.float64) * depth_scale).astype(np.float32)
  else:
    raise DataError(where, f"unknown depth/format {depth_format!r}, expected {DEPTH_FORMATS}")
  return image, depth


class TFRecordReader:
  """Reads shards written by :func:`write_tfrecords`.

  Args:
    files: A glob pattern (``"out/train-*.tfrecord"``) or a list of shards.
    on_error: ``"raise"`` or ``"skip"`` (bad records logged and counted).
    max_depth_m: See :func:`~d3tf.data.validation.validate_depth`.
    non_finite: See :func:`~d3tf.data.validation.validate_depth`.

  Raises:
    ValueError: no shard matches.
  """

  source = "tfrecord"

  def __init__(self, files: str | os.PathLike | Sequence[str], *, on_error: str = "raise",
               max_depth_m: float | None = validation.DEFAULT_MAX_DEPTH_M,
               non_finite: str = "zero"):
    if isinstance(files, (str, os.PathLike)):
      pattern = os.fspath(files)
      self.files = sorted(glob.glob(pattern))
      if not self.files:
        raise ValueError(f"no TFRecord shard matches {pattern!r}")
    else:
      self.files = [os.fspath(f) for f in files]
      if not self.files:
        raise ValueError("no TFRecord shards given")
    self._policy = validation.ErrorPolicy(on_error, self.source)
    self.max_depth_m = max_depth_m
    self.non_finite = non_finite

  @property
  def skipped(self) -> int:
    """How many records were skipped so far."""
    return self._policy.skipped

  def error_report(self, max_listed: int = 20) -> dict:
    """The skipped records so far: see :meth:`~d3tf.data.validation.ErrorPolicy.report`."""
    return self._policy.report(max_listed)

  def _decode_py(self, shard, name, height, width, image_png, depth_format, depth_scale,
                 depth_data):
    shard, name = shard.decode(), name.decode()
    try:
      image, depth = decode_record(shard, name, int(height), int(width), image_png,
                                   depth_format.decode(), float(depth_scale), depth_data)
      where = f"{shard} (record {name!r})"
      image, depth = validation.validate_sample(
          image, depth, image_path=where, max_depth_m=self.max_depth_m,
          non_finite=self.non_finite)
    except DataError as e:
      message = b""
      if self._policy.on_error == "raise":  # Raised by the graph (see common.samples_dataset).
        message = common.stream_error_message(e)
      else:
        self._policy.handle(e)
      return np.zeros((0, 0, 3), np.uint8), np.zeros((0, 0), np.float32), False, message
    return image, depth, True, b""

  def as_dataset(self, *, shuffle_files: bool = False, seed: int | None = None,
                 num_parallel_calls: int | None = None) -> tf.data.Dataset:
    """A dataset of ``{"image" uint8 [H,W,3], "depth" float32 [H,W], "name" string}``.

    Args:
      shuffle_files: Shuffle the shard order (records within a shard keep
        their order; shuffle elements downstream).
      seed: Seed of the shard shuffle.
      num_parallel_calls: Parallel decodes (default AUTOTUNE); the order is
        deterministic.
    """
    files = tf.data.Dataset.from_tensor_slices(self.files)
    if shuffle_files:
      files = files.shuffle(len(self.files), seed=seed, reshuffle_each_iteration=True)
    do_not_convert = tf.autograph.experimental.do_not_convert

    def records(shard):
      return tf.data.TFRecordDataset(shard).map(lambda r: (shard, r))

    def decode(shard, record):
      f = tf.io.parse_single_example(record, _FEATURES)
      image, depth, ok, message = tf.numpy_function(
          self._decode_py,
          [shard, f["name"], f["height"], f["width"], f["image/png"], f["depth/format"],
           f["depth/scale"], f["depth/data"]], [tf.uint8, tf.float32, tf.bool, tf.string],
          stateful=False)
      if self._policy.on_error == "raise":
        with tf.control_dependencies([tf.debugging.Assert(ok, [message], summarize=1)]):
          ok = tf.identity(ok)
      image.set_shape([None, None, 3])
      depth.set_shape([None, None])
      ok.set_shape([])
      return {"image": image, "depth": depth, "name": f["name"]}, ok

    ds = files.flat_map(do_not_convert(records))
    ds = ds.map(do_not_convert(decode), num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
                deterministic=True)
    return ds.filter(do_not_convert(common.is_ok)).map(do_not_convert(common.drop_ok))

  def verify_shards(self) -> int:
    """Reads every shard once (records only, no decoding) to find truncated or corrupt shards.

    ``as_dataset()`` meets a truncated shard as a ``tf.errors.DataLossError``
    that does not name the file; this pre-flight check does. With
    ``on_error="skip"`` a bad shard is logged, counted in :attr:`skipped`
    and dropped from :attr:`files`.

    Returns:
      The number of records in the good shards.

    Raises:
      DataError: a shard is truncated or corrupt (``on_error="raise"``).
    """
    good, total = [], 0
    for path in self.files:
      count = 0
      try:
        for _ in tf.data.TFRecordDataset(path):
          count += 1
      except (tf.errors.DataLossError, tf.errors.NotFoundError) as e:
        self._policy.handle(DataError(path, f"truncated or corrupt TFRecord shard after "
                                      f"{count} records ({e.message.strip()})"))
        continue
      good.append(path)
      total += count
    self.files = good
    return total

  def iter_samples(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yields ``(name, image, depth)`` NumPy triples, in shard order."""
    for element in self.as_dataset().as_numpy_iterator():
      yield element["name"].decode(), element["image"], element["depth"]
