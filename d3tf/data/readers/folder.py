"""A plain folder of RGB images with depth maps, paired by file name.

Naming rule: the image ``<image_dir>/<stem><image suffix>`` pairs with the
depth map ``<depth_dir>/<stem><depth suffix>``. Two layouts are covered:

* two sub-folders with the same stems: ``rgb/0001.jpg`` + ``depth/0001.png``
  (``FolderReader("rgb", "depth")``);
* one folder with suffixes: ``0001_colors.png`` + ``0001_depth.png``
  (``FolderReader(d, image_suffixes=("_colors.png",), depth_suffixes=("_depth.png",))``).

Depth is either an integer PNG (16-bit grey) times ``depth_scale`` metres per
unit (``0.001`` for millimetres), or a ``.npy`` array in metres. Suffixes match
case-insensitively (``.JPG`` = ``.jpg``).
"""

from __future__ import annotations

import os
from typing import Sequence

from absl import logging
import numpy as np

from d3tf.data.readers import common
from d3tf.data.validation import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEPTH_SUFFIXES = (".png", ".npy")
#: Suffixes of the one-folder layout of :func:`folder_reader_for`.
FLAT_IMAGE_SUFFIXES = ("_colors.png", "_rgb.png", "_image.png", ".jpg", ".jpeg")
FLAT_DEPTH_SUFFIXES = ("_depth.png", "_depth.npy")
LAYOUTS_HELP = ("rgb/ + depth/ sub-folders with the same file stems (rgb/0001.jpg + "
                "depth/0001.png), or one folder of <stem>_colors.png|_rgb.png|_image.png|.jpg "
                "images with <stem>_depth.png|_depth.npy depth maps")


def _match_suffix(filename: str, suffixes: Sequence[str]) -> str | None:
  """Returns the longest suffix of ``suffixes`` that ``filename`` ends with (any case)."""
  lower = filename.lower()
  best = None
  for suffix in suffixes:
    if lower.endswith(suffix.lower()) and len(filename) > len(suffix):
      if best is None or len(suffix) > len(best):
        best = suffix
  return best


class FolderReader(common.DepthReader):
  """Reads RGB + depth pairs from one or two folders (see the module docstring).

  Args:
    image_dir: Folder of the images.
    depth_dir: Folder of the depth maps; default ``image_dir``.
    image_suffixes: File-name endings of the images.
    depth_suffixes: File-name endings of the depth maps, in order of
      preference when a stem has several.
    depth_scale: Metres per unit of integer (PNG) depth, e.g. 0.001.
    npy_scale: Metres per unit of ``.npy`` depth (1.0: already metres).
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``: see
      :class:`~d3tf.data.readers.common.DepthReader`.

  Raises:
    ValueError: a folder does not exist, or one folder with overlapping
      image and depth suffixes (the pairing would be ambiguous).
  """

  source = "folder"

  def __init__(self, image_dir: common.PathLike, depth_dir: common.PathLike | None = None, *,
               image_suffixes: Sequence[str] = IMAGE_SUFFIXES,
               depth_suffixes: Sequence[str] = DEPTH_SUFFIXES,
               depth_scale: float = 0.001, npy_scale: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.image_dir = os.fspath(image_dir)
    self.depth_dir = os.fspath(depth_dir) if depth_dir is not None else self.image_dir
    for d in {self.image_dir, self.depth_dir}:
      if not os.path.isdir(d):
        raise ValueError(f"{d}: not a folder")
    if isinstance(image_suffixes, str) or isinstance(depth_suffixes, str):
      raise ValueError("image_suffixes and depth_suffixes must be sequences of strings")
    self.image_suffixes = tuple(image_suffixes)
    self.depth_suffixes = tuple(depth_suffixes)
    self._same_dir = os.path.realpath(self.image_dir) == os.path.realpath(self.depth_dir)
    if self._same_dir and {s.lower() for s in self.image_suffixes} & {
        s.lower() for s in self.depth_suffixes}:
      raise ValueError(
          f"{self.image_dir}: images and depth maps share one folder, so their suffixes must "
          f"differ, got image_suffixes={self.image_suffixes}, "
          f"depth_suffixes={self.depth_suffixes}")
    if not (depth_scale > 0 and np.isfinite(depth_scale)):
      raise ValueError(f"depth_scale must be positive, got {depth_scale!r}")
    self.depth_scale = float(depth_scale)
    self.npy_scale = float(npy_scale)

  def _list(self) -> list[common.Sample]:
    images = {}
    depths = {}
    for name in sorted(os.listdir(self.depth_dir)):
      suffix = _match_suffix(name, self.depth_suffixes)
      if suffix is not None:
        depths.setdefault(name[:-len(suffix)], []).append(
            (self.depth_suffixes.index(suffix), name))
    for name in sorted(os.listdir(self.image_dir)):
      if self._same_dir and _match_suffix(name, self.depth_suffixes) is not None:
        continue  # A depth map (e.g. x_depth.png beside x_colors.png), not an image.
      suffix = _match_suffix(name, self.image_suffixes)
      if suffix is not None:
        images[name[:-len(suffix)]] = name
    samples = []
    for stem in sorted(images):
      image_path = os.path.join(self.image_dir, images[stem])
      if stem not in depths:
        expected = " or ".join(os.path.join(self.depth_dir, stem + s) for s in self.depth_suffixes)
        self._policy.handle(DataError(
            image_path, f"missing depth map for this image (looked for {expected})"))
        continue
      depth_name = min(depths[stem])[1]
      samples.append(common.Sample(
          name=stem, image_path=image_path, depth_path=os.path.join(self.depth_dir, depth_name)))
    orphans = sorted(set(depths) - set(images))
    if orphans:
      logging.warning("%s: %d depth maps in %s have no image, ignored: %s", self.source,
                      len(orphans), self.depth_dir,
                      ", ".join(min(depths[s])[1] for s in orphans[:5]) +
                      (", ..." if len(orphans) > 5 else ""))
    return samples

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    image = common.read_image(sample.image_path)
    depth = common.read_depth_file(sample.depth_path, self.depth_scale, self.npy_scale)
    return image, depth


def folder_reader_for(path: common.PathLike, depth_scale: float = 0.001, *,
                      depth_dir: common.PathLike | None = None, **kwargs) -> FolderReader:
  """The FolderReader of a ``--dataset=folder`` path; train and evaluate share it.

  Layouts, in order: ``depth_dir`` given (images in ``path``, depth there,
  same stems); ``path`` holding ``rgb/`` and ``depth/`` sub-folders; else one
  folder with suffixes (:data:`FLAT_IMAGE_SUFFIXES` images,
  :data:`FLAT_DEPTH_SUFFIXES` depth maps).

  Args:
    path: The dataset folder.
    depth_scale: Metres per unit of depth PNGs (0.001: millimetres).
    depth_dir: Depth maps in another folder.
    **kwargs: ``on_error``, ``max_depth_m``, ... of :class:`FolderReader`.

  Raises:
    ValueError: ``path`` (or ``depth_dir``) is not a folder, naming the
      layouts accepted.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise ValueError(f"{path}: not a folder; a folder dataset is {LAYOUTS_HELP}")
  if depth_dir is not None:
    return FolderReader(path, depth_dir, depth_scale=depth_scale, **kwargs)
  rgb, depth = os.path.join(path, "rgb"), os.path.join(path, "depth")
  if os.path.isdir(rgb) and os.path.isdir(depth):
    return FolderReader(rgb, depth, depth_scale=depth_scale, **kwargs)
  if os.path.isdir(rgb) or os.path.isdir(depth):
    raise ValueError(f"{path}: has {'rgb/' if os.path.isdir(rgb) else 'depth/'} but not "
                     f"{'depth/' if os.path.isdir(rgb) else 'rgb/'}; a folder dataset is "
                     f"{LAYOUTS_HELP}")
  return FolderReader(path, image_suffixes=FLAT_IMAGE_SUFFIXES,
                      depth_suffixes=FLAT_DEPTH_SUFFIXES, depth_scale=depth_scale, **kwargs)
