"""Middlebury stereo (MiddEval3 layout): left view + ground-truth disparity to metric depth.

Per scene folder: ``im0.png`` (left view), ``disp0GT.pfm`` (float32 disparity
in pixels, ``inf`` = unknown), ``calib.txt`` and optionally ``mask0nocc.png``
(255 = not occluded, 128 = occluded, 0 = no ground truth). Depth is::

  depth_mm = baseline * f / (disparity + doffs)

with ``f = cam0[0, 0]`` (pixels), ``baseline`` (mm) and ``doffs`` (pixels, the
x-difference of the principal points) from ``calib.txt``. Unknown (``inf``)
disparity gives depth 0 (invalid).

PFM: a text header ``PF`` (3 channels) or ``Pf`` (1 channel), ``width
height``, and a scale whose sign gives the byte order (negative = little
endian), then float32 rows stored **bottom to top**.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from absl import logging
import numpy as np

from d3tf.data.readers import common
from d3tf.data.validation import DataError

IMAGE_NAME = "im0.png"
DISPARITY_NAME = "disp0GT.pfm"
CALIB_NAME = "calib.txt"
MASK_NAME = "mask0nocc.png"


def read_pfm(path: common.PathLike) -> np.ndarray:
  """Reads a PFM file, rows top to bottom.

  Returns:
    ``float32 [H, W]`` (``Pf``) or ``[H, W, 3]`` (``PF``), native byte order.

  Raises:
    DataError: missing file, bad header, truncated data.
  """
  path = os.fspath(path)
  data = common.read_bytes(path)
  tokens = []
  pos = 0
  while len(tokens) < 4:
    while pos < len(data) and data[pos:pos + 1].isspace():
      pos += 1
    start = pos
    while pos < len(data) and not data[pos:pos + 1].isspace():
      pos += 1
    if start == pos:
      raise DataError(path, f"truncated PFM header (read {tokens!r})")
    tokens.append(data[start:pos])
  pos += 1  # The single whitespace byte that ends the header.
  kind = tokens[0]
  if kind not in (b"PF", b"Pf"):
    raise DataError(
        path, f"not a PFM file: header starts with {kind[:8]!r}, expected b'PF' or b'Pf'")
  try:
    width, height, scale = int(tokens[1]), int(tokens[2]), float(tokens[3])
  except ValueError:
    raise DataError(path, f"bad PFM header {b' '.join(tokens)!r}") from None
  if width <= 0 or height <= 0 or scale == 0 or not np.isfinite(scale):
    raise DataError(path, f"bad PFM header: size {width}x{height}, scale {scale}")
  channels = 3 if kind == b"PF" else 1
  count = width * height * channels
  payload = data[pos:]
  if len(payload) < 4 * count:
    raise DataError(path, f"truncated PFM: {len(payload)} data bytes, expected {4 * count} "
                    f"for {width}x{height}x{channels} float32")
  if len(payload) > 4 * count:
    logging.warning("%s: %d extra bytes after the PFM data ignored", path, len(payload) - 4 * count)
  dtype = np.dtype("<f4" if scale < 0 else ">f4")
  array = np.frombuffer(payload, dtype=dtype, count=count).astype(np.float32)
  shape = (height, width, 3) if channels == 3 else (height, width)
  return np.ascontiguousarray(array.reshape(shape)[::-1])


def write_pfm(path: common.PathLike, array: np.ndarray) -> None:
  """Writes a ``[H, W]`` or ``[H, W, 3]`` float array as little-endian PFM (rows bottom-up)."""
  array = np.asarray(array, dtype="<f4")
  if array.ndim == 3 and array.shape[2] == 3:
    kind = b"PF"
  elif array.ndim == 2:
    kind = b"Pf"
  else:
    raise ValueError(f"PFM holds [H, W] or [H, W, 3] arrays, got shape {array.shape}")
  height, width = array.shape[:2]
  with open(path, "wb") as f:
    f.write(kind + b"\n" + f"{width} {height}\n-1.0\n".encode())
    f.write(np.ascontiguousarray(array[::-1]).tobytes())


_MATRIX = re.compile(r"^\[(.*)\]$")


def read_calib(path: common.PathLike) -> dict[str, float | np.ndarray]:
  """Reads a Middlebury ``calib.txt`` (``key=value`` lines, any spacing).

  Returns:
    Scalars as floats; ``cam0``/``cam1`` as 3x3 float arrays.

  Raises:
    DataError: missing file, unparsable line, or no ``cam0``, ``doffs`` or
      ``baseline``.
  """
  path = os.fspath(path)
  text = common.read_bytes(path).decode("utf-8", errors="replace")
  calib: dict[str, float | np.ndarray] = {}
  for number, line in enumerate(text.splitlines(), 1):
    line = line.strip()
    if not line:
      continue
    key, sep, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not key:
      raise DataError(path, f"line {number}: expected key=value, got {line!r}")
    try:
      match = _MATRIX.match(value)
      if match:
        rows = [r.split() for r in match.group(1).split(";")]
        calib[key] = np.array(rows, dtype=np.float64)
      else:
        calib[key] = float(value)
    except ValueError:
      raise DataError(path, f"line {number}: cannot parse {key} = {value!r}") from None
  for key in ("cam0", "doffs", "baseline"):
    if key not in calib:
      raise DataError(path, f"no {key!r} entry (found {sorted(calib)})")
  cam0 = calib["cam0"]
  if not isinstance(cam0, np.ndarray) or cam0.shape != (3, 3):
    raise DataError(path, f"cam0 must be a 3x3 matrix, got {cam0!r}")
  return calib


def disparity_to_depth(disparity: np.ndarray, *, focal_px: float, baseline_mm: float,
                       doffs: float) -> np.ndarray:
  """Converts disparity (pixels) to depth in metres; unknown disparity gives 0.

  ``depth_m = baseline_mm * focal_px / (disparity + doffs) / 1000``; pixels
  whose disparity is not finite, or whose ``disparity + doffs <= 0``, get 0.
  """
  disparity = np.asarray(disparity, dtype=np.float64)
  denominator = disparity + doffs
  with np.errstate(invalid="ignore"):
    valid = np.isfinite(denominator) & (denominator > 0)
  depth = np.zeros(disparity.shape, dtype=np.float64)
  depth[valid] = baseline_mm * focal_px / denominator[valid] / 1000.0
  return depth.astype(np.float32)


class MiddleburyReader(common.DepthReader):
  """Reads Middlebury scenes: left image and metric depth from its disparity.

  Args:
    root: Folder holding one sub-folder per scene.
    scenes: Scene names to read (default: every sub-folder that has an
      ``im0.png``).
    occluded_invalid: Also mark occluded pixels (``mask0nocc.png`` != 255)
      invalid.
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``: see
      :class:`~d3tf.data.readers.common.DepthReader`.
  """

  source = "middlebury"

  def __init__(self, root: common.PathLike, *, scenes: Sequence[str] | None = None,
               occluded_invalid: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise ValueError(f"{self.root}: not a folder")
    self.scenes = None if scenes is None else list(scenes)
    self.occluded_invalid = occluded_invalid

  def _list(self) -> list[common.Sample]:
    if self.scenes is None:
      scenes = sorted(d for d in os.listdir(self.root)
                      if os.path.isfile(os.path.join(self.root, d, IMAGE_NAME)))
    else:
      scenes = self.scenes
    samples = []
    for scene in scenes:
      folder = os.path.join(self.root, scene)
      missing = [n for n in (IMAGE_NAME, DISPARITY_NAME, CALIB_NAME)
                 if not os.path.isfile(os.path.join(folder, n))]
      if missing:
        self._policy.handle(DataError(
            [os.path.join(folder, n) for n in missing], "missing file of the scene"))
        continue
      samples.append(common.Sample(
          name=scene, image_path=os.path.join(folder, IMAGE_NAME),
          depth_path=os.path.join(folder, DISPARITY_NAME),
          meta={"calib_path": os.path.join(folder, CALIB_NAME),
                "mask_path": os.path.join(folder, MASK_NAME)}))
    return samples

  def read_depth(self, sample: common.Sample) -> np.ndarray:
    """Metric depth of a scene (metres, 0 = unknown), before validation."""
    disparity = read_pfm(sample.depth_path)
    if disparity.ndim != 2:
      raise DataError(sample.depth_path,
                      f"expected a 1-channel disparity PFM, got {disparity.shape}")
    calib_path = sample.meta["calib_path"]
    calib = read_calib(calib_path)
    for key, size in (("width", disparity.shape[1]), ("height", disparity.shape[0])):
      if key in calib and int(calib[key]) != size:
        raise DataError(
            (calib_path, sample.depth_path), f"calibration {key} {int(calib[key])} differs from "
            f"the disparity's {size}: calibration of another resolution?")
    depth = disparity_to_depth(disparity, focal_px=float(calib["cam0"][0, 0]),
                               baseline_mm=float(calib["baseline"]), doffs=float(calib["doffs"]))
    if self.occluded_invalid:
      mask_path = sample.meta["mask_path"]
      mask = np.asarray(common.decode_pil(common.read_bytes(mask_path), mask_path).convert("L"))
      if mask.shape != depth.shape:
        raise DataError((mask_path, sample.depth_path),
                        f"mask size {mask.shape} differs from disparity size {depth.shape}")
      depth[mask != 255] = 0.0
    return depth

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    return common.read_image(sample.image_path), self.read_depth(sample)
