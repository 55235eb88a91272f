"""NYU Depth v2, labelled set (Silberman et al., ECCV 2012).

Two forms are read:

* the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5), with
  :class:`NyuMatReader`. MATLAB stores arrays column-major, so h5py sees
  ``images`` as ``(N, 3, W, H)`` uint8 and ``depths`` as ``(N, W, H)`` float32
  metres (1449 x 480 x 640 in MATLAB's own order); the reader transposes them
  back to ``[H, W, 3]`` / ``[H, W]``. The official train/test split (795 / 654
  images) comes from ``splits.mat`` (an old-style MATLAB file, read with
  scipy), whose ``trainNdxs`` / ``testNdxs`` are 1-based.
* the common PNG export ``NNNNN_colors.png`` + ``NNNNN_depth.png`` (uint16
  millimetres), ``NNNNN`` the 0-based index in the labelled set, with
  :class:`NyuPngReader`.

Evaluation on NYU uses the Eigen crop (rows 45:471, columns 41:601 of the
480 x 640 frame), which removes the white border of the frames: see
:func:`eigen_crop` and :func:`eigen_crop_mask`, or ``eigen_crop=True``.
"""

from __future__ import annotations

import os
import re
import threading
from absl import logging
import numpy as np

from d3tf.data.readers import common
from d3tf.data.readers import folder
from d3tf.data.validation import DataError

NYU_HEIGHT = 480
NYU_WIDTH = 640
NUM_LABELED = 1449
NUM_TRAIN = 795
NUM_TEST = 654
#: The Eigen crop on the 480 x 640 frame: rows [45, 471), columns [41, 601).
EIGEN_CROP = (45, 471, 41, 601)
#: Kinect RGB intrinsics (pixels) of the 480 x 640 frames.
INTRINSICS = {"fx": 518.86, "fy": 519.47, "cx": 325.58, "cy": 253.74}

SPLITS = ("train", "test", "all")


def eigen_crop_box(height: int = NYU_HEIGHT, width: int = NYU_WIDTH) -> tuple[int, int, int, int]:
  """The Eigen crop ``(top, bottom, left, right)`` (end-exclusive) for a frame size.

  Exact for 480 x 640; for other sizes (a resized NYU frame) the box is
  scaled proportionally and rounded.
  """
  top, bottom, left, right = EIGEN_CROP
  if (height, width) == (NYU_HEIGHT, NYU_WIDTH):
    return EIGEN_CROP
  sy, sx = height / NYU_HEIGHT, width / NYU_WIDTH
  return (int(round(top * sy)), int(round(bottom * sy)), int(round(left * sx)),
          int(round(right * sx)))


def eigen_crop(array: np.ndarray) -> np.ndarray:
  """Crops an ``[H, W, ...]`` NYU array (image, depth, prediction) to the Eigen crop."""
  top, bottom, left, right = eigen_crop_box(array.shape[0], array.shape[1])
  return array[top:bottom, left:right]


def eigen_crop_mask(height: int = NYU_HEIGHT, width: int = NYU_WIDTH) -> np.ndarray:
  """Boolean ``[H, W]`` mask, True inside the Eigen crop (for masked metrics)."""
  top, bottom, left, right = eigen_crop_box(height, width)
  mask = np.zeros((height, width), dtype=bool)
  mask[top:bottom, left:right] = True
  return mask


def read_splits(path: common.PathLike,
                num_images: int | None = NUM_LABELED) -> dict[str, np.ndarray]:
  """Reads the official ``splits.mat``: 0-based ``{"train": ..., "test": ...}`` indices.

  Args:
    path: ``splits.mat`` with 1-based ``trainNdxs`` and ``testNdxs``.
    num_images: Size of the labelled set, to check the index range (None: no
      check).

  Returns:
    Sorted 0-based ``int64`` index arrays.

  Raises:
    DataError: unreadable file, missing variables, non-integer, out-of-range
      or overlapping indices.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top

  path = os.fspath(path)
  common.read_bytes(path)  # Missing / unreadable file -> DataError.
  try:
    mat = scipy.io.loadmat(path)
  except Exception as e:  # scipy raises several types on bad files.
    raise DataError(path, f"cannot read as a MATLAB .mat file ({type(e).__name__}: {e})") from None
  splits = {}
  for split, key in (("train", "trainNdxs"), ("test", "testNdxs")):
    if key not in mat:
      found = sorted(k for k in mat if not k.startswith("__"))
      raise DataError(path, f"no variable {key!r} (found {found})")
    raw = np.asarray(mat[key]).ravel()
    if raw.size == 0 or not np.all(np.isfinite(raw)) or not np.all(raw == np.round(raw)):
      raise DataError(path, f"{key} must hold whole 1-based indices, got {raw[:5]!r}...")
    idx = raw.astype(np.int64)
    if idx.min() < 1 or (num_images is not None and idx.max() > num_images):
      raise DataError(
          path, f"{key} indices must lie in [1, {num_images}] (1-based), got range "
          f"[{idx.min()}, {idx.max()}]")
    splits[split] = np.sort(idx - 1)
  overlap = np.intersect1d(splits["train"], splits["test"])
  if overlap.size:
    raise DataError(
        path, f"{overlap.size} indices are in both splits, e.g. {overlap[:5] + 1} (1-based)")
  if num_images == NUM_LABELED and (splits["train"].size, splits["test"].size) != (NUM_TRAIN,
                                                                                   NUM_TEST):
    logging.warning("%s: %d train / %d test images, expected the official %d / %d", path,
                    splits["train"].size, splits["test"].size, NUM_TRAIN, NUM_TEST)
  return splits


def _check_split(split: str) -> str:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return split


def _split_indices(split: str, splits_path: str | None, num_images: int) -> np.ndarray | None:
  """Indices of ``split``, or None for all."""
  if split == "all":
    return None
  if splits_path is None:
    raise ValueError(f"split={split!r} needs splits_path (the official splits.mat)")
  return read_splits(splits_path, num_images)[split]


class NyuMatReader(common.DepthReader):
  """Reads ``nyu_depth_v2_labeled.mat`` (HDF5) with h5py, one image at a time.

  Args:
    mat_path: ``nyu_depth_v2_labeled.mat``.
    split: ``"train"`` (795), ``"test"`` (654) or ``"all"`` (1449).
    splits_path: ``splits.mat``; default: ``splits.mat`` beside ``mat_path``.
    eigen_crop: Crop image and depth to the Eigen crop (evaluation).
    depth_key: ``"depths"`` (filled, no holes) or ``"rawDepths"`` (raw
      Kinect depth, 0 = missing).
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``: see
      :class:`~d3tf.data.readers.common.DepthReader`.

  The file is opened lazily and kept open; call :meth:`close` (or use the
  reader as a context manager) to release it.
  """

  source = "nyu_mat"

  def __init__(self, mat_path: common.PathLike, *, split: str = "all",
               splits_path: common.PathLike | None = None, eigen_crop: bool = False,
               depth_key: str = "depths", **kwargs):
    super().__init__(**kwargs)
    self.mat_path = os.fspath(mat_path)
    self.split = _check_split(split)
    if splits_path is None and split != "all":
      splits_path = os.path.join(os.path.dirname(self.mat_path), "splits.mat")
    self.splits_path = os.fspath(splits_path) if splits_path is not None else None
    self.eigen_crop = eigen_crop
    self.depth_key = depth_key
    self._file = None
    self._lock = threading.Lock()

  def _h5(self):
    """The open HDF5 file, with its layout checked."""
    with self._lock:
      if self._file is None:
        import h5py  # pylint: disable=g-import-not-at-top

        if not os.path.exists(self.mat_path):
          raise DataError(self.mat_path, "file not found")
        try:
          f = h5py.File(self.mat_path, "r")
        except OSError as e:
          raise DataError(self.mat_path, "cannot open as HDF5 (a MATLAB v7.3 .mat file is "
                          f"expected; save with -v7.3): {e}") from None
        try:
          self._check_layout(f)
        except DataError:
          f.close()
          raise
        self._file = f
      return self._file

  def _check_layout(self, f) -> None:
    """Raises DataError unless ``f`` holds the labelled set's datasets, transposed."""
    for key in ("images", self.depth_key):
      if key not in f:
        raise DataError(self.mat_path, f"no dataset {key!r} (found {sorted(f.keys())})")
    images, depths = f["images"], f[self.depth_key]
    if images.ndim != 4 or images.shape[1] != 3 or depths.ndim != 3 or (
        images.shape[0], images.shape[2], images.shape[3]) != depths.shape:
      raise DataError(
          self.mat_path, f"expected h5py shapes images (N, 3, W, H) and {self.depth_key} "
          f"(N, W, H) (MATLAB column-major), got {images.shape} and {depths.shape}")

  def close(self) -> None:
    """Closes the HDF5 file (it reopens on the next load)."""
    with self._lock:
      if self._file is not None:
        self._file.close()
        self._file = None

  def __enter__(self) -> "NyuMatReader":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def _list(self) -> list[common.Sample]:
    num_images = self._h5()["images"].shape[0]
    indices = _split_indices(self.split, self.splits_path, num_images)
    if indices is None:
      indices = np.arange(num_images)
    elif indices.size and indices.max() >= num_images:
      raise DataError((self.splits_path, self.mat_path),
                      f"split index {indices.max() + 1} (1-based) beyond the {num_images} images")
    return [common.Sample(name=f"{i:05d}", image_path=self.mat_path, index=int(i))
            for i in indices]

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    f = self._h5()
    try:
      with self._lock:
        image = np.asarray(f["images"][sample.index])  # (3, W, H)
        depth = np.asarray(f[self.depth_key][sample.index])  # (W, H)
    except (OSError, ValueError, KeyError) as e:
      raise DataError(self.mat_path, f"cannot read image {sample.index}: {e}") from None
    image = np.ascontiguousarray(image.transpose(2, 1, 0))  # -> (H, W, 3)
    depth = np.ascontiguousarray(depth.T)  # -> (H, W)
    if self.eigen_crop:
      image, depth = eigen_crop(image), eigen_crop(depth)
    return image, depth


_PNG_NAME = re.compile(r"^(\d+)$")


class NyuPngReader(folder.FolderReader):
  """Reads the PNG export: ``NNNNN_colors.png`` + ``NNNNN_depth.png`` (uint16 mm).

  Args:
    png_dir: The folder of the PNG pairs.
    split: ``"train"``, ``"test"`` or ``"all"`` (the files present). With
      train/test, only the files whose index is in that split are read.
    splits_path: ``splits.mat``, needed for train/test.
    eigen_crop: Crop image and depth to the Eigen crop (evaluation).
    depth_scale: Metres per PNG unit (0.001: millimetres).
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``.
  """

  source = "nyu_png"

  def __init__(self, png_dir: common.PathLike, *, split: str = "all",
               splits_path: common.PathLike | None = None, eigen_crop: bool = False,
               depth_scale: float = 0.001, **kwargs):
    super().__init__(png_dir, image_suffixes=("_colors.png",), depth_suffixes=("_depth.png",),
                     depth_scale=depth_scale, **kwargs)
    self.split = _check_split(split)
    self.splits_path = os.fspath(splits_path) if splits_path is not None else None
    self.eigen_crop = eigen_crop

  def _list(self) -> list[common.Sample]:
    samples = super()._list()
    indices = _split_indices(self.split, self.splits_path, NUM_LABELED)
    wanted = None if indices is None else set(indices.tolist())
    out = []
    for sample in samples:
      match = _PNG_NAME.match(sample.name)
      if not match:
        self._policy.handle(DataError(
            sample.image_path, "NYU PNG names must be NNNNN_colors.png (NNNNN = index in the "
            "labelled set)"))
        continue
      index = int(match.group(1))
      if wanted is not None and index not in wanted:
        continue
      out.append(common.Sample(name=sample.name, image_path=sample.image_path,
                               depth_path=sample.depth_path, index=index))
    return out

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    image, depth = super()._read(sample)
    if self.eigen_crop:
      if image.shape[:2] != depth.shape:
        return image, depth  # Let validation report the size mismatch.
      image, depth = eigen_crop(image), eigen_crop(depth)
    return image, depth
