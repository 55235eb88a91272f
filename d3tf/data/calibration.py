"""Procedural scenes as a trained model sees them: int8 calibration and accuracy checks.

``d3tf.export`` calibrates int8 TFLite exports on :func:`calibration_images`;
``benchmarks/bench_quantization_accuracy.py`` measures exports on
:func:`procedural_scenes` of the test split. Both render the scenes with the
model's camera, PSF and render options (pass
``**metadata.render_kwargs()`` of its :class:`d3tf.artifacts.Metadata`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera
from d3tf.sizes import round_up

#: Default number of procedural scenes that calibrate int8 quantisation.
DEFAULT_CALIBRATION_EXAMPLES = 16


def procedural_scenes(camera: Camera | None, size: tuple[int, int], count: int, *,
                      seed: int = 0, split: str = "train", psf: str = psf_lib.DEFAULT_PSF,
                      **render_options: Any) -> tuple[np.ndarray, np.ndarray]:
  """Procedural scenes defocused by ``camera``, as that camera delivers them, and their depth.

  Scenes of the procedural ``split``, defocused by ``camera`` with ``psf``
  and ``render_options`` (sharp for ``camera=None``: an all-in-focus model),
  rendered at ``size`` rounded up to a multiple of 32, centre-cropped to
  ``size`` and quantised to uint8.

  Args:
    camera: The model's camera, or None.
    size: ``(height, width)``.
    count: Number of scenes, >= 1.
    seed: Seed of the scenes and their rendering.
    split: The procedural split (``"train"``, ``"validation"``, ``"test"``).
    psf: The PSF name.
    **render_options: :class:`d3tf.optics.RenderOptions` fields.

  Returns:
    uint8 images ``[count, height, width, 3]`` and depth in metres ``[count,
    height, width]``.

  Raises:
    ValueError: a bad ``count`` (echoed).
  """
  from d3tf.data.pipeline import make_dataset  # pylint: disable=g-import-not-at-top
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"the number of scenes must be an integer >= 1, got {count!r}")
  height, width = size
  padded = (round_up(height), round_up(width))
  dataset = make_dataset("procedural", batch_size=1, crop_size=padded, camera=camera, psf=psf,
                         render_options=render_options or None, augment=False, seed=seed,
                         repeat=False, split=split,
                         procedural_options={"num_scenes": int(count)}, deterministic=True)
  top, left = (padded[0] - height) // 2, (padded[1] - width) // 2
  crop = lambda x: np.asarray(x)[0, top:top + height, left:left + width]
  images, depths = zip(*((crop(inputs), crop(depth)[..., 0])
                         for inputs, depth in dataset.as_numpy_iterator()))
  return (np.round(np.clip(np.stack(images), 0.0, 1.0) * 255.0).astype(np.uint8),
          np.stack(depths))


def calibration_images(camera: Camera | None, size: tuple[int, int],
                       count: int = DEFAULT_CALIBRATION_EXAMPLES, *, seed: int = 0,
                       psf: str = psf_lib.DEFAULT_PSF, **render_options: Any) -> np.ndarray:
  """Representative inputs for int8 calibration: procedural training scenes.

  See :func:`procedural_scenes` (split ``"train"``).

  Returns:
    uint8 ``[count, height, width, 3]``.
  """
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"calibration examples must be an integer >= 1, got {count!r}")
  return procedural_scenes(camera, size, count, seed=seed, split="train", psf=psf,
                           **render_options)[0]
