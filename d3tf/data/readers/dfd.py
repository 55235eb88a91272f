"""The real DSLR "DFD" indoor dataset of Carvalho et al. (2018).

Layout (``root`` = ``dfd_indoor``)::

  <aperture>/rgb/<split>/<timestamp>.JPG     Nikon D200, 35 mm, 645 x 432
  <aperture>/depth/<split>/<timestamp>.png   uint16 millimetres, registered

with ``aperture`` ``N2_8`` (f/2.8, visible defocus) or ``N8`` (f/8, nearly all
in focus). File names are ISO capture timestamps with colons, e.g.
``2018-04-26T16:38:31.689710.JPG``. Photo and depth map were captured by two
devices, so their timestamps differ slightly: each photo is paired with the
depth map of nearest timestamp, within ``max_time_delta_s`` (0.5 s). Sorted
lists must not be zipped: in the full test split one photo has no depth map
and one depth map has no photo.

Splits: ``"test"`` reads the ``test`` folder. With ``val_views`` = N > 0 the
``train`` folder is split by capture time: its last N views (the photos of
latest timestamp) are ``"validation"``, the others ``"train"``; never at
random, since neighbouring views are near-duplicates. With ``val_views`` = 0
``"train"`` is the whole ``train`` folder and there is no ``"validation"``.
"""

from __future__ import annotations

import bisect
import datetime
import os
from typing import Sequence

from absl import logging
import numpy as np

from d3tf.data.readers import common
from d3tf.data.validation import DataError

#: Aperture folder -> f-number of its photos.
APERTURES = {"N2_8": 2.8, "N8": 8.0}
#: Split names -> the folder they are read from.
SPLIT_FOLDERS = {"train": "train", "validation": "train", "test": "test"}
PHOTO_SUFFIXES = (".jpg", ".jpeg")
DEPTH_SUFFIXES = (".png",)


def parse_timestamp(filename: str) -> float:
  """Seconds since the epoch (naive local time read as UTC) of a DFD file name.

  Args:
    filename: E.g. ``2018-04-26T16:38:31.689710.JPG`` (directory and
      extension are ignored).

  Raises:
    DataError: the stem is not an ISO date-time.
  """
  stem = os.path.splitext(os.path.basename(filename))[0]
  try:
    moment = datetime.datetime.fromisoformat(stem)
  except ValueError:
    raise DataError(filename, f"file name {stem!r} is not an ISO timestamp "
                    "(expected e.g. 2018-04-26T16:38:31.689710)") from None
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return moment.timestamp()


def pair_by_timestamp(photo_times: Sequence[float], depth_times: Sequence[float],
                      max_delta_s: float) -> tuple[dict[int, int], list[int], list[int]]:
  """Pairs photos with depth maps by nearest timestamp, one-to-one.

  Each photo takes its nearest depth map if within ``max_delta_s``; when two
  photos want the same depth map, the nearer photo keeps it.

  Args:
    photo_times: Photo timestamps, seconds.
    depth_times: Depth-map timestamps, seconds.
    max_delta_s: Largest accepted time difference.

  Returns:
    ``(pairs, lonely_photos, lonely_depths)``: ``pairs`` maps photo index
    to depth index; the two lists hold the indices left without partner.
  """
  order = sorted(range(len(depth_times)), key=lambda j: depth_times[j])
  sorted_times = [depth_times[j] for j in order]
  best: dict[int, tuple[float, int]] = {}  # depth index -> (delta, photo index)
  for i, t in enumerate(photo_times):
    k = bisect.bisect_left(sorted_times, t)
    candidates = [c for c in (k - 1, k) if 0 <= c < len(sorted_times)]
    if not candidates:
      continue
    c = min(candidates, key=lambda c: abs(sorted_times[c] - t))
    delta = abs(sorted_times[c] - t)
    if delta > max_delta_s:
      continue
    j = order[c]
    if j not in best or delta < best[j][0]:
      best[j] = (delta, i)
  pairs = {i: j for j, (_, i) in best.items()}
  lonely_photos = [i for i in range(len(photo_times)) if i not in pairs]
  lonely_depths = [j for j in range(len(depth_times)) if j not in best]
  return pairs, lonely_photos, lonely_depths


def camera_for_aperture(aperture: str):
  """The dataset's camera (Nikon D200, 35 mm, x6 downsampled, focus 1.7 m) at ``aperture``.

  Args:
    aperture: ``"N2_8"`` or ``"N8"``.

  Raises:
    ValueError: an unknown aperture, naming it.
  """
  if aperture not in APERTURES:
    raise ValueError(f"dfd aperture must be one of {sorted(APERTURES)}, got {aperture!r}")
  from d3tf.optics import camera  # pylint: disable=g-import-not-at-top
  return camera.Camera.dslr_d200_35mm(f_number=APERTURES[aperture])


def split_by_time(samples: Sequence[common.Sample], val_views: int, split: str,
                  where: str = "") -> list[common.Sample]:
  """The ``split`` part of ``samples`` when the last ``val_views`` by time are held out.

  Args:
    samples: Paired views, each with ``meta["photo_time_s"]``.
    val_views: How many of the latest views are "validation" (0: none).
    split: "train" (all but the latest ``val_views``) or "validation".
    where: The folder, for the error message.

  Returns:
    The views of ``split``, in capture order.

  Raises:
    ValueError: ``val_views`` negative, or not below the number of views
      (nothing would be left to train on), naming ``--dfd_val_views``.
  """
  if val_views < 0 or val_views >= max(len(samples), 1):
    raise ValueError(f"--dfd_val_views={val_views} (data.dfd_val_views) must be between 0 "
                     f"and {max(len(samples) - 1, 0)}: {where or 'the train folder'} has "
                     f"{len(samples)} views, and training needs at least one")
  ordered = sorted(samples, key=lambda s: s.meta["photo_time_s"])
  cut = len(ordered) - val_views
  return ordered[cut:] if split == "validation" else ordered[:cut]


def _list_files(directory: str, suffixes: Sequence[str]) -> list[str]:
  if not os.path.isdir(directory):
    raise DataError(directory, "folder not found")
  return sorted(n for n in os.listdir(directory)
                if os.path.splitext(n)[1].lower() in suffixes and not n.startswith("."))


class DfdReader(common.DepthReader):
  """Reads one aperture of the real DFD dataset, photos paired by timestamp.

  Args:
    root: The dataset folder (holding ``N2_8/`` and ``N8/``).
    aperture: ``"N2_8"`` (f/2.8, defocused) or ``"N8"`` (f/8, all in focus).
    split: ``"train"``, ``"validation"`` (the last ``val_views`` views of
      the ``train`` folder by capture time; needs ``val_views`` > 0) or
      ``"test"`` (the ``test`` folder).
    val_views: How many of the ``train`` folder's latest views are held out
      as ``"validation"`` (0: none, ``"train"`` is the whole folder).
    max_time_delta_s: Largest photo/depth timestamp difference for a pair.
    depth_scale: Metres per depth PNG unit (0.001: millimetres).
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``: see
      :class:`~d3tf.data.readers.common.DepthReader`. A photo with no depth
      map within ``max_time_delta_s`` is an error (or skipped); a depth map
      with no photo is only logged.
  """

  source = "dfd"

  def __init__(self, root: common.PathLike, *, aperture: str = "N2_8", split: str = "train",
               val_views: int = 0, max_time_delta_s: float = 0.5, depth_scale: float = 0.001,
               **kwargs):
    super().__init__(**kwargs)
    if aperture not in APERTURES:
      raise ValueError(f"aperture must be one of {sorted(APERTURES)}, got {aperture!r}")
    if split not in SPLIT_FOLDERS:
      raise ValueError(f"dfd split must be one of {', '.join(SPLIT_FOLDERS)}, got {split!r}")
    if isinstance(val_views, bool) or not isinstance(val_views, int) or val_views < 0:
      raise ValueError(f"--dfd_val_views={val_views!r} (data.dfd_val_views) must be an "
                       "integer >= 0 (0: no held-out views)")
    if split == "validation" and not val_views:
      raise ValueError("dfd split 'validation' is the last --dfd_val_views views of the train "
                       "folder by capture time: give --dfd_val_views > 0 (e.g. 16), or use "
                       "--split=test for a test folder")
    self.root = os.fspath(root)
    self.aperture = aperture
    self.split = split
    self.val_views = val_views
    self.max_time_delta_s = float(max_time_delta_s)
    self.depth_scale = float(depth_scale)
    folder = SPLIT_FOLDERS[split]
    self.rgb_dir = os.path.join(self.root, aperture, "rgb", folder)
    self.depth_dir = os.path.join(self.root, aperture, "depth", folder)

  @property
  def f_number(self) -> float:
    """The f-number of this aperture's photos."""
    return APERTURES[self.aperture]

  def camera(self):
    """The dataset's camera (Nikon D200, 35 mm, x6 downsampled) at this aperture."""
    return camera_for_aperture(self.aperture)

  def _timed(self, directory: str, names: list[str]) -> tuple[list[str], list[float]]:
    kept, times = [], []
    for name in names:
      try:
        times.append(parse_timestamp(os.path.join(directory, name)))
      except DataError as e:
        self._policy.handle(e)
        continue
      kept.append(name)
    return kept, times

  def _list(self) -> list[common.Sample]:
    photos, photo_times = self._timed(self.rgb_dir, _list_files(self.rgb_dir, PHOTO_SUFFIXES))
    depths, depth_times = self._timed(self.depth_dir, _list_files(self.depth_dir, DEPTH_SUFFIXES))
    pairs, lonely_photos, lonely_depths = pair_by_timestamp(
        photo_times, depth_times, self.max_time_delta_s)
    for i in lonely_photos:
      deltas = [abs(t - photo_times[i]) for t in depth_times]
      nearest = (f"nearest is {depths[int(np.argmin(deltas))]}, {min(deltas):.3f} s away"
                 if deltas else "no depth maps at all")
      self._policy.handle(DataError(
          os.path.join(self.rgb_dir, photos[i]),
          f"missing depth map: none within {self.max_time_delta_s} s of this photo "
          f"({nearest}) in {self.depth_dir}"))
    if lonely_depths:
      logging.warning("%s: %d depth maps without a photo within %g s, ignored: %s", self.source,
                      len(lonely_depths), self.max_time_delta_s,
                      ", ".join(depths[j] for j in lonely_depths[:5]))
    samples = []
    for i in sorted(pairs):
      j = pairs[i]
      samples.append(common.Sample(
          name=os.path.splitext(photos[i])[0],
          image_path=os.path.join(self.rgb_dir, photos[i]),
          depth_path=os.path.join(self.depth_dir, depths[j]),
          meta={"time_delta_s": abs(photo_times[i] - depth_times[j]),
                "photo_time_s": photo_times[i], "f_number": self.f_number}))
    if SPLIT_FOLDERS[self.split] == "train" and self.val_views:
      samples = split_by_time(samples, self.val_views, self.split, self.rgb_dir)
    return samples

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    return (common.read_image(sample.image_path),
            common.read_depth_png(sample.depth_path, self.depth_scale))
