"""Dataset registry: one name -> reader factory, shared by training and evaluation.

Every dense dataset d3tf reads from files has one entry here, and train,
evaluate and the experiment library look readers up by name, so a name
means the same files everywhere::

  from d3tf.data import registry
  reader = registry.make_reader("folder", "data/mine", split="test")

``procedural`` (the generated scenes) is registered too, without a reader
(it is a ``tf.data`` source of its own), and ``diw`` (ordinal pairs, not
dense depth) with its own reader type. A new dataset needs one
:func:`register_dataset` call.

The ``folder`` layout (train and evaluate alike) is
:func:`d3tf.data.readers.folder.folder_reader_for`'s.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from absl import logging


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """What d3tf knows about one dataset name.

  Attributes:
    name: The registry name (``--dataset``).
    factory: ``factory(path, split, **options) -> reader``; None for
      procedural scenes (no reader).
    needs_path: Whether the dataset is read from ``path``.
    splits: The split names it knows; empty: no splits (the whole folder).
    real_defocus: Its photos are already defocused by a real camera (nothing
      is rendered on them).
    sized: Its readers know their length (TFRecord shards do not).
    dense: Dense depth maps (False: DIW's ordinal pairs).
    description: One line for help texts.
  """

  name: str
  factory: Callable[..., Any] | None
  needs_path: bool = True
  splits: tuple[str, ...] = ()
  real_defocus: bool = False
  sized: bool = True
  dense: bool = True
  description: str = ""


_REGISTRY: dict[str, DatasetSpec] = {}


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
  """Adds ``spec`` to the registry (a name may be registered once)."""
  if spec.name in _REGISTRY:
    raise ValueError(f"dataset {spec.name!r} is already registered")
  _REGISTRY[spec.name] = spec
  return spec


def dataset_names(dense_only: bool = False) -> tuple[str, ...]:
  """The registered names, in registration order."""
  return tuple(n for n, s in _REGISTRY.items() if s.dense or not dense_only)


def get_dataset(name: str) -> DatasetSpec:
  """The spec of ``name``; ValueError naming the known ones otherwise."""
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(_REGISTRY)}") from None


def make_reader(name: str, path: str, split: str = "train", **options):
  """A reader of dataset ``name`` at ``path`` for ``split``.

  Args:
    name: A registered dataset name.
    path: Its file, folder or glob.
    split: The split to read (ignored by datasets without splits).
    **options: Dataset-specific options: ``splits_path`` (NYU),
      ``missing_splits`` (nyu_png without splits.mat: "error" or "all"),
      ``aperture`` and ``val_views`` (dfd), ``depth_dir`` and ``depth_scale`` (folder),
      ``val_scenes`` and ``frame_stride`` (nyu_densedepth), and
      the readers' ``on_error``.

  Raises:
    ValueError: unknown name, a dataset without a reader, or a bad path.
  """
  spec = get_dataset(name)
  if spec.factory is None:
    raise ValueError(f"dataset {name!r} has no file reader")
  if spec.needs_path and not path:
    raise ValueError(f"dataset {name!r} needs a path (--data_path)")
  return spec.factory(path, split, **options)


def _reader_kwargs(options: dict[str, Any]) -> dict[str, Any]:
  return {k: options[k] for k in ("on_error",) if options.get(k) is not None}


def _nyu_png(path, split, *, splits_path=None, missing_splits="error", **options):
  from d3tf.data.readers import nyu  # pylint: disable=g-import-not-at-top
  if splits_path is None and split != "all":
    beside = os.path.join(path, "splits.mat")
    if os.path.isfile(beside) or missing_splits == "error":
      splits_path = beside
    else:
      logging.warning("nyu_png: no splits.mat in %s and no splits_path: reading every image "
                      "in the folder (as split 'all')", path)
      split = "all"
  return nyu.NyuPngReader(path, split=split, splits_path=splits_path, **_reader_kwargs(options))


def _nyu_mat(path, split, *, splits_path=None, **options):
  from d3tf.data.readers import nyu  # pylint: disable=g-import-not-at-top
  return nyu.NyuMatReader(path, split=split, splits_path=splits_path, **_reader_kwargs(options))


def _nyu_densedepth(path, split, *, val_scenes=None, frame_stride=1, **options):
  """Split by scene: "train" (all but ``val_scenes``), "validation" (those), "all", or a
  comma-separated list of scenes; "test" reads the validation scenes."""
  from d3tf.data.readers import densedepth  # pylint: disable=g-import-not-at-top
  kwargs = dict(frame_stride=frame_stride, **_reader_kwargs(options))
  if val_scenes is not None:
    kwargs["val_scenes"] = tuple(val_scenes)
  if split == "test":
    split = "validation"
  if split not in ("train", "validation", "all"):
    return densedepth.NyuDenseDepthReader(path, split="all", scenes=split.split(","), **kwargs)
  return densedepth.NyuDenseDepthReader(path, split=split, **kwargs)


def _dfd(path, split, *, aperture="N2_8", val_views=0, **options):
  """"validation": the last ``val_views`` views of the train folder by time; "test": its folder."""
  from d3tf.data.readers import dfd  # pylint: disable=g-import-not-at-top
  return dfd.DfdReader(path, aperture=aperture, split=split, val_views=val_views,
                       **_reader_kwargs(options))


def _folder(path, split, *, depth_dir=None, depth_scale=0.001, **options):
  """rgb/ + depth/ sub-folders, an explicit depth_dir, or the suffix layout."""
  del split  # A folder has no splits: give each split its own folder.
  from d3tf.data.readers import folder  # pylint: disable=g-import-not-at-top
  return folder.folder_reader_for(path, depth_scale, depth_dir=depth_dir,
                                  **_reader_kwargs(options))


def _middlebury(path, split, **options):
  del split
  from d3tf.data.readers import middlebury  # pylint: disable=g-import-not-at-top
  return middlebury.MiddleburyReader(path, **_reader_kwargs(options))


def _tfrecord(path, split, **options):
  del split  # Shards of one split per glob.
  from d3tf.data.readers import tfrecord  # pylint: disable=g-import-not-at-top
  return tfrecord.TFRecordReader(path, **_reader_kwargs(options))


def _diw(path, split, **options):
  del split, options
  from d3tf.data.readers import diw  # pylint: disable=g-import-not-at-top
  return diw.DiwReader(path)


register_dataset(DatasetSpec(
    "procedural", None, needs_path=False, splits=("train", "validation", "test"), sized=False,
    description="generated scenes, nothing to download"))
register_dataset(DatasetSpec(
    "nyu_mat", _nyu_mat, splits=("train", "test", "all"),
    description="nyu_depth_v2_labeled.mat (+ splits.mat beside it)"))
register_dataset(DatasetSpec(
    "nyu_png", _nyu_png, splits=("train", "test", "all"),
    description="a folder of NNNNN_colors.png / NNNNN_depth.png (+ splits.mat)"))
register_dataset(DatasetSpec(
    "nyu_densedepth", _nyu_densedepth, splits=("train", "validation", "all"),
    description="NYU video frames in DenseDepth's <scene>_out/<n>.jpg + <n>.png layout, split "
    "by scene (data.val_scenes)"))
register_dataset(DatasetSpec(
    "dfd", _dfd, splits=("train", "validation", "test"), real_defocus=True,
    description="the real DSLR DFD dataset (its f/2.8 photos are already defocused; "
    "--dfd_val_views holds out the latest views of its train folder)"))
register_dataset(DatasetSpec(
    "folder", _folder,
    description="rgb/ + depth/ sub-folders, or NAME_colors.png + NAME_depth.png in one folder"))
register_dataset(DatasetSpec(
    "middlebury", _middlebury, description="the Middlebury 2014 scenes folder"))
register_dataset(DatasetSpec(
    "tfrecord", _tfrecord, sized=False,
    description="shards written by d3tf.data.write_tfrecords (a glob)"))
register_dataset(DatasetSpec(
    "diw", _diw, dense=False, description="Depth in the Wild ordinal pairs (a DIW CSV)"))
