"""Depth in the Wild (DIW, Chen et al., NIPS 2016): images with one relative-depth pair each.

DIW has **no dense depth**: each image carries one pair of points and which
of the two is farther. It serves the WKDR metric (the fraction of pairs whose
predicted depth order disagrees with the human label), not L1 training.

CSV format of ``DIW_train.csv`` / ``DIW_val.csv`` / ``DIW_test.csv`` (no
header), two lines per image, as parsed by the authors' own loaders
(``princeton-vl/relative_depth``, ``DataLoader_DIW.lua`` and
``test_model_on_DIW.lua``)::

  <image path>
  y_A,x_A,y_B,x_B,<ordinal>,<width>,<height>

* coordinates are **1-based** pixel indices, row (y) before column (x), in
  the image of size ``width`` x ``height`` (the authors index the
  ``[height, width]`` output with them directly, in 1-based Lua);
* ``ordinal`` is ``>`` or ``<``, meaning depth(A) > depth(B) (A farther)
  or depth(A) < depth(B): the authors count a prediction ``z`` correct when
  ``(z_A - z_B) * (+1 for '>', -1 for '<') > 0``. ``=`` does not occur.

:class:`DiwReader` returns coordinates **0-based** ``(row, col)``, rescaled to
the decoded image's size if it differs from the CSV's (as the authors' loader
does, through normalised coordinates).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from typing import Iterator

from absl import logging
import numpy as np

from d3tf.data import validation
from d3tf.data.readers import common
from d3tf.data.validation import DataError

ORDINALS = {">": 1, "<": -1}


@dataclasses.dataclass(frozen=True)
class DiwSample:
  """One annotated DIW image, coordinates as in the CSV converted to 0-based.

  Attributes:
    name: The image's file stem.
    image_path: The image file, resolved.
    point_a: ``(row, col)`` of point A, 0-based, in the CSV's image size.
    point_b: ``(row, col)`` of point B.
    ordinal: ``+1`` if depth(A) > depth(B) (``>``), ``-1`` if smaller (``<``).
    width: Image width stated in the CSV.
    height: Image height stated in the CSV.
    line: The CSV line of the coordinates (1-based), for messages.
  """

  name: str
  image_path: str
  point_a: tuple[int, int]
  point_b: tuple[int, int]
  ordinal: int
  width: int
  height: int
  line: int


def _rescale(index: int, size_csv: int, size_image: int) -> int:
  """Maps a 0-based pixel index from a ``size_csv`` grid to a ``size_image`` grid."""
  if size_csv == size_image:
    return index
  return min(size_image - 1, int(math.floor(index * size_image / size_csv)))


class DiwReader:
  """Reads a DIW CSV and its images.

  Args:
    csv_path: ``DIW_test.csv`` (or train / val), format in the module
      docstring.
    image_root: Folder that relative image paths in the CSV start from;
      default: the CSV's folder. Absolute paths are used as they are.
    on_error: ``"raise"``: a malformed CSV record or a bad image raises
      DataError naming the file (and CSV line); ``"skip"``: it is logged
      and counted in :attr:`skipped`.
  """

  source = "diw"

  def __init__(self, csv_path: common.PathLike, *, image_root: common.PathLike | None = None,
               on_error: str = "raise"):
    self.csv_path = os.fspath(csv_path)
    self.image_root = os.fspath(image_root) if image_root is not None else os.path.dirname(
        os.path.abspath(self.csv_path))
    self._policy = validation.ErrorPolicy(on_error, self.source)
    self._samples: list[DiwSample] | None = None

  @property
  def skipped(self) -> int:
    """How many samples were skipped so far."""
    return self._policy.skipped

  def _parse(self) -> Iterator[DiwSample]:
    text = common.read_bytes(self.csv_path).decode("utf-8-sig", errors="replace")
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), 1)
            if any(field.strip() for field in row)]
    if len(rows) % 2:
      self._policy.handle(DataError(
          self.csv_path, f"line {rows[-1][0]}: odd number of non-empty lines ({len(rows)}); "
          "expected an image line followed by a coordinate line per image"))
      rows = rows[:-1]
    for k in range(0, len(rows), 2):
      (_, image_row), (number, coords) = rows[k], rows[k + 1]
      try:
        yield self._parse_record(image_row, number, coords)
      except DataError as e:
        self._policy.handle(e)

  def _parse_record(self, image_row: list[str], number: int, coords: list[str]) -> DiwSample:
    where = f"line {number}"
    image_field = image_row[0].strip()
    path = image_field if os.path.isabs(image_field) else os.path.join(self.image_root,
                                                                       image_field)
    fields = [f.strip() for f in coords]
    while fields and not fields[-1]:
      fields.pop()
    if len(fields) != 7:
      raise DataError(self.csv_path, f"{where}: expected 7 fields y_A,x_A,y_B,x_B,ordinal,width,"
                      f"height for image {image_field!r}, got {len(fields)}: {coords!r}")
    try:
      y_a, x_a, y_b, x_b, width, height = (int(float(fields[i])) for i in (0, 1, 2, 3, 5, 6))
    except ValueError:
      raise DataError(self.csv_path,
                      f"{where}: non-numeric coordinates or size {coords!r}") from None
    symbol = fields[4][:1]
    if symbol not in ORDINALS:
      raise DataError(self.csv_path, f"{where}: ordinal relation must be '>' or '<', got "
                      f"{fields[4]!r}")
    if width <= 0 or height <= 0:
      raise DataError(self.csv_path, f"{where}: bad image size {width}x{height}")
    for label, y, x in (("A", y_a, x_a), ("B", y_b, x_b)):
      if not (1 <= y <= height and 1 <= x <= width):
        raise DataError(self.csv_path, f"{where}: point {label} (y={y}, x={x}) outside the "
                        f"1-based {width}x{height} image")
    if (y_a, x_a) == (y_b, x_b):
      raise DataError(self.csv_path, f"{where}: points A and B coincide at (y={y_a}, x={x_a})")
    return DiwSample(
        name=os.path.splitext(os.path.basename(image_field))[0], image_path=path,
        point_a=(y_a - 1, x_a - 1), point_b=(y_b - 1, x_b - 1), ordinal=ORDINALS[symbol],
        width=width, height=height, line=number)

  def samples(self) -> list[DiwSample]:
    """The annotated images (parsed once, then cached)."""
    if self._samples is None:
      self._samples = list(self._parse())
      logging.info("%s: %d samples in %s", self.source, len(self._samples), self.csv_path)
    return self._samples

  def __len__(self) -> int:
    return len(self.samples())

  def load(self, sample: DiwSample | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Loads one image and its point pair in the image's pixel grid.

    Args:
      sample: A :class:`DiwSample` or its position in :meth:`samples`.

    Returns:
      ``(image uint8 [H, W, 3], pairs int32 [1, 4], ordinal int32 [1])`` with
      ``pairs[0] = (row_A, col_A, row_B, col_B)``, 0-based.

    Raises:
      DataError: missing, corrupt or truncated image.
    """
    if isinstance(sample, (int, np.integer)):
      sample = self.samples()[int(sample)]
    image = validation.validate_image(common.read_image(sample.image_path), sample.image_path)
    height, width = image.shape[:2]
    if (height, width) != (sample.height, sample.width):
      logging.log_first_n(
          logging.INFO, "%s: image is %dx%d, CSV says %dx%d: points rescaled", 5,
          sample.image_path, width, height, sample.width, sample.height)
    pairs = np.array([[_rescale(sample.point_a[0], sample.height, height),
                       _rescale(sample.point_a[1], sample.width, width),
                       _rescale(sample.point_b[0], sample.height, height),
                       _rescale(sample.point_b[1], sample.width, width)]], dtype=np.int32)
    return image, pairs, np.array([sample.ordinal], dtype=np.int32)

  def as_dataset(self, *, num_parallel_calls: int | None = None) -> "tf.data.Dataset":
    """A dataset of ``{"image", "pairs", "ordinal", "name"}`` dicts (no ``"depth"``).

    ``image`` uint8 ``[H, W, 3]``, ``pairs`` int32 ``[1, 4]`` (0-based
    ``row_A, col_A, row_B, col_B``), ``ordinal`` int32 ``[1]``, ``name``
    string. Bad images raise (with the file's name) or are skipped and
    counted, as ``on_error`` says.
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    samples = self.samples()
    names = tf.constant([s.name for s in samples] or [""], dtype=tf.string)
    policy = self._policy

    def load_py(index):
      try:
        image, pairs, ordinal = self.load(samples[int(index)])
      except DataError as e:
        policy.handle(e)
        return (np.zeros((0, 0, 3), np.uint8), np.zeros((1, 4), np.int32),
                np.zeros((1,), np.int32), False)
      return image, pairs, ordinal, True

    def load_tf(index):
      image, pairs, ordinal, ok = tf.numpy_function(
          load_py, [index], [tf.uint8, tf.int32, tf.int32, tf.bool], stateful=False)
      image.set_shape([None, None, 3])
      pairs.set_shape([1, 4])
      ordinal.set_shape([1])
      ok.set_shape([])
      return {"image": image, "pairs": pairs, "ordinal": ordinal,
              "name": tf.gather(names, index)}, ok

    do_not_convert = tf.autograph.experimental.do_not_convert
    ds = tf.data.Dataset.range(len(samples)).map(
        do_not_convert(load_tf), num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
        deterministic=True)
    return ds.filter(do_not_convert(common.is_ok)).map(do_not_convert(common.drop_ok))


def write_diw_csv(path: common.PathLike,
                  records: list[tuple[str, int, int, int, int, str, int, int]]) -> None:
  """Writes a DIW-format CSV (for tests and tools).

  Args:
    path: The CSV to write.
    records: ``(image_path, y_A, x_A, y_B, x_B, ordinal, width, height)``
      tuples, coordinates **1-based** as in the real files.
  """
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    for image_path, y_a, x_a, y_b, x_b, ordinal, width, height in records:
      writer.writerow([image_path])
      writer.writerow([y_a, x_a, y_b, x_b, ordinal, width, height])
