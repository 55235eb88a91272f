"""NYU Depth v2 training frames in DenseDepth's layout (Alhashim & Wonka, 2018).

Layout (``root`` = e.g. ``nyuv2_train``)::

  <scene>_out/<n>.jpg    640 x 480 RGB video frame (no white border)
  <scene>_out/<n>.png    640 x 480 uint8 depth, metres = value / 255 * 10

``n`` is the frame number within the scene; frames are listed in numerical
order (``2.jpg`` before ``10.jpg``). The depth maps are hole-filled (no
zeros) and quantised to 10 / 255 m (3.9 cm) steps.

Neighbouring frames of one scene are near-duplicates, so the dataset is split
**by scene**, never by frame: ``split="train"`` reads every scene except
``val_scenes``, ``split="validation"`` only those (default ``office_0011``:
an office is a room type that none of the three other scenes shows, so its
score measures generalisation to an unseen room rather than to a neighbour
frame).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from absl import logging
import numpy as np

from d3tf.data.readers import common
from d3tf.data.validation import DataError

#: Metres per unit of DenseDepth's uint8 depth PNGs.
DEPTH_SCALE = 10.0 / 255.0
#: Default validation scene(s) of the four-scene copy.
DEFAULT_VAL_SCENES = ("office_0011",)
SPLITS = ("train", "validation", "all")
SCENE_SUFFIX = "_out"
_FRAME_NAME = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def list_scenes(root: common.PathLike) -> list[str]:
  """The scene names (folder names without ``_out``) under ``root``, sorted.

  Raises:
    ValueError: ``root`` is not a folder or holds no ``<scene>_out`` folder.
  """
  root = os.fspath(root)
  if not os.path.isdir(root):
    raise ValueError(f"{root}: not a folder")
  scenes = sorted(name[:-len(SCENE_SUFFIX)] for name in os.listdir(root)
                  if name.endswith(SCENE_SUFFIX) and len(name) > len(SCENE_SUFFIX)
                  and os.path.isdir(os.path.join(root, name)))
  if not scenes:
    raise ValueError(f"{root}: no <scene>{SCENE_SUFFIX}/ folders (DenseDepth's NYU layout)")
  return scenes


def split_scenes(all_scenes: Sequence[str], split: str,
                 val_scenes: Sequence[str]) -> list[str]:
  """The scenes of ``split``: every scene but ``val_scenes`` for train, those for validation.

  ``"all"`` returns every scene (``val_scenes`` unused).

  Raises:
    ValueError: unknown split, or (train / validation) a validation scene that
      is not in ``all_scenes``.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  if split == "all":
    return list(all_scenes)
  if isinstance(val_scenes, str):
    val_scenes = [s for s in val_scenes.split(",") if s]
  missing = sorted(set(val_scenes) - set(all_scenes))
  if missing:
    raise ValueError(f"val_scenes {missing} not among the scenes {list(all_scenes)}")
  if split == "validation":
    return [s for s in all_scenes if s in val_scenes]
  train = [s for s in all_scenes if s not in val_scenes]
  if not train:
    raise ValueError(f"no training scene left: val_scenes {list(val_scenes)} are all the scenes")
  return train


class NyuDenseDepthReader(common.DepthReader):
  """Reads NYU frames in DenseDepth's ``<scene>_out/<n>.jpg`` + ``<n>.png`` layout.

  Args:
    root: The folder holding the ``<scene>_out/`` folders.
    split: ``"train"`` (all scenes but ``val_scenes``), ``"validation"``
      (``val_scenes``) or ``"all"``. Ignored when ``scenes`` is given.
    scenes: Read exactly these scenes (names without ``_out``), in this order.
    val_scenes: The validation scene(s) (a sequence, or a comma-separated string).
    frame_stride: Keep every ``frame_stride``-th frame of each scene (after
      numerical sorting): consecutive frames are near-duplicates, so a
      validation set of every 8th frame covers a scene at an eighth of the cost.
    depth_scale: Metres per depth PNG unit (DenseDepth: 10 / 255).
    **kwargs: ``on_error``, ``max_depth_m``, ``non_finite``: see
      :class:`~d3tf.data.readers.common.DepthReader`. A frame without its
      depth PNG is an error (or skipped); a depth PNG without frame is logged.

  Raises:
    ValueError: ``root`` is not DenseDepth's layout, a named scene is absent,
      or a bad ``split`` / ``frame_stride`` / ``depth_scale``.
  """

  source = "nyu_densedepth"

  def __init__(self, root: common.PathLike, *, split: str = "all",
               scenes: Sequence[str] | None = None,
               val_scenes: Sequence[str] | str = DEFAULT_VAL_SCENES, frame_stride: int = 1,
               depth_scale: float = DEPTH_SCALE, **kwargs):
    super().__init__(**kwargs)
    self.root = os.fspath(root)
    available = list_scenes(self.root)
    if isinstance(val_scenes, str):
      val_scenes = [s for s in val_scenes.split(",") if s]
    self.val_scenes = tuple(val_scenes)
    if scenes is not None:
      if isinstance(scenes, str):
        scenes = [s for s in scenes.split(",") if s]
      missing = [s for s in scenes if s not in available]
      if missing:
        raise ValueError(f"{self.root}: scenes {missing} not found (have {available})")
      self.split = None
      self.scenes = tuple(scenes)
    else:
      self.split = split
      self.scenes = tuple(split_scenes(available, split, self.val_scenes))
    if isinstance(frame_stride, bool) or not isinstance(frame_stride, (int, np.integer)) or (
        frame_stride < 1):
      raise ValueError(f"frame_stride must be an integer >= 1, got {frame_stride!r}")
    self.frame_stride = int(frame_stride)
    if not (depth_scale > 0 and np.isfinite(depth_scale)):
      raise ValueError(f"depth_scale must be positive, got {depth_scale!r}")
    self.depth_scale = float(depth_scale)

  def _list_scene(self, scene: str) -> list[common.Sample]:
    directory = os.path.join(self.root, scene + SCENE_SUFFIX)
    images, depths = {}, {}
    for name in os.listdir(directory):
      if name.startswith("."):
        continue
      match = _FRAME_NAME.match(name)
      if not match:
        if os.path.splitext(name)[1].lower() in (".jpg", ".jpeg", ".png"):
          self._policy.handle(DataError(
              os.path.join(directory, name), "frame files must be named <n>.jpg / <n>.png "
              "with <n> a frame number (DenseDepth's layout)"))
        continue
      number = int(match.group(1))
      if match.group(2).lower() == "png":
        depths[number] = name
      else:
        images[number] = name
    samples = []
    for number in sorted(images):
      image_path = os.path.join(directory, images[number])
      if number not in depths:
        self._policy.handle(DataError(
            image_path, f"missing depth map for this frame (looked for "
            f"{os.path.join(directory, f'{number}.png')})"))
        continue
      samples.append(common.Sample(
          name=f"{scene}/{number}", image_path=image_path,
          depth_path=os.path.join(directory, depths[number]), index=number,
          meta={"scene": scene}))
    orphans = sorted(set(depths) - set(images))
    if orphans:
      logging.warning("%s: %d depth maps in %s have no frame, ignored: %s", self.source,
                      len(orphans), directory,
                      ", ".join(depths[n] for n in orphans[:5]) + (", ..." if len(orphans) > 5
                                                                  else ""))
    return samples[::self.frame_stride]

  def _list(self) -> list[common.Sample]:
    samples = []
    for scene in self.scenes:
      samples.extend(self._list_scene(scene))
    return samples

  def _read(self, sample: common.Sample) -> tuple[np.ndarray, np.ndarray]:
    image = common.read_image(sample.image_path)
    png = common.decode_pil(common.read_bytes(sample.depth_path), sample.depth_path)
    if png.mode != "L":
      raise DataError(
          sample.depth_path, f"DenseDepth depth PNGs are 8-bit grey (metres = value / 255 * 10), "
          f"got pixel mode {png.mode!r}")
    depth = (np.asarray(png).astype(np.float64) * self.depth_scale).astype(np.float32)
    return image, depth
