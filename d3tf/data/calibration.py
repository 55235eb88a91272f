"""Procedural scenes as a trained model sees them: int8 calibration and accuracy checks.

``d3tf.export`` calibrates int8 TFLite exports on :func:`calibration_images`
(a camera-aware model's on :func:`calibration_examples_with_cameras`: cameras
drawn from its training range, each scene rendered by its own);
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
  images, depths, _ = _render_scenes(camera, size, count, seed=seed, split=split, psf=psf,
                                     camera_range=None, with_cameras=False,
                                     render_options=render_options)
  return images, depths


def procedural_scenes_with_cameras(camera: Camera, size: tuple[int, int], count: int, *,
                                   camera_range=None, seed: int = 0, split: str = "train",
                                   psf: str = psf_lib.DEFAULT_PSF, **render_options: Any
                                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Procedural scenes as a camera-aware model sees them: images, depth and camera vectors.

  With ``camera_range`` (a :class:`d3tf.optics.camera_range.CameraRange`, as
  in a camera-aware model's metadata) each scene is rendered by its own camera,
  drawn from the range as training draws them (:func:`d3tf.optics.camera_range.
  sample_camera_vector`, the blur bound included); without, every scene by
  ``camera``. Otherwise as :func:`procedural_scenes`.

  Returns:
    uint8 images ``[count, height, width, 3]``, depth in metres ``[count,
    height, width]`` and float32 camera vectors ``[count, 4]`` (focal length
    mm, f-number, pixel pitch um, focus distance m).

  Raises:
    ValueError: a bad ``count`` (echoed), or neither a camera nor a range.
  """
  if camera is None and camera_range is None:
    raise ValueError("a camera-aware model's scenes need a camera or a camera_range, got neither")
  return _render_scenes(camera, size, count, seed=seed, split=split, psf=psf,
                        camera_range=camera_range, with_cameras=True,
                        render_options=render_options)


def _render_scenes(camera, size, count, *, seed, split, psf, camera_range, with_cameras,
                   render_options):
  """(images, depths, camera vectors or None) of :func:`procedural_scenes_with_cameras`."""
  from d3tf.data.pipeline import make_dataset  # pylint: disable=g-import-not-at-top
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"the number of scenes must be an integer >= 1, got {count!r}")
  height, width = size
  padded = (round_up(height), round_up(width))
  dataset = make_dataset("procedural", batch_size=1, crop_size=padded, camera=camera, psf=psf,
                         render_options=render_options or None, augment=False, seed=seed,
                         repeat=False, split=split,
                         procedural_options={"num_scenes": int(count)}, deterministic=True,
                         camera_range=camera_range, camera_input=with_cameras)
  top, left = (padded[0] - height) // 2, (padded[1] - width) // 2
  crop = lambda x: np.asarray(x)[0, top:top + height, left:left + width]
  images, depths, vectors = [], [], []
  for inputs, depth in dataset.as_numpy_iterator():
    if with_cameras:
      vectors.append(np.asarray(inputs["camera"], np.float32)[0])
      inputs = inputs["image"]
    images.append(crop(inputs))
    depths.append(crop(depth)[..., 0])
  return (np.round(np.clip(np.stack(images), 0.0, 1.0) * 255.0).astype(np.uint8),
          np.stack(depths), np.stack(vectors) if with_cameras else None)


def calibration_images(camera: Camera | None, size: tuple[int, int],
                       count: int = DEFAULT_CALIBRATION_EXAMPLES, *, seed: int = 0,
                       psf: str = psf_lib.DEFAULT_PSF, **render_options: Any) -> np.ndarray:
  """Representative inputs for int8 calibration: procedural training scenes.

  See :func:`procedural_scenes` (split ``"train"``).

  Returns:
    uint8 ``[count, height, width, 3]``.
  """
  _check_calibration_count(count)
  return procedural_scenes(camera, size, count, seed=seed, split="train", psf=psf,
                           **render_options)[0]


def calibration_examples_with_cameras(camera: Camera, size: tuple[int, int],
                                      count: int = DEFAULT_CALIBRATION_EXAMPLES, *,
                                      camera_range=None, seed: int = 0,
                                      psf: str = psf_lib.DEFAULT_PSF, **render_options: Any
                                      ) -> tuple[np.ndarray, np.ndarray]:
  """Representative inputs of a camera-aware model for int8 calibration: images and cameras.

  Procedural training scenes, each rendered by a camera drawn from
  ``camera_range`` (the model's training range), so that the calibration
  sees the blur and the camera values the model serves; without a range, by
  ``camera`` (a model fine-tuned at one camera). See
  :func:`procedural_scenes_with_cameras`.

  Returns:
    uint8 images ``[count, height, width, 3]`` and float32 camera vectors ``[count, 4]``.
  """
  _check_calibration_count(count)
  images, _, vectors = procedural_scenes_with_cameras(
      camera, size, count, camera_range=camera_range, seed=seed, split="train", psf=psf,
      **render_options)
  return images, vectors


def model_calibration(camera: Camera | None, size: tuple[int, int],
                      count: int = DEFAULT_CALIBRATION_EXAMPLES, *, camera_aware: bool,
                      camera_range=None, **render_options: Any
                      ) -> tuple[np.ndarray, np.ndarray | None, str]:
  """A model's int8 calibration: images, cameras (camera-aware only) and what they are.

  The one place that chooses between :func:`calibration_examples_with_cameras`
  (a camera-aware model: each scene by a camera drawn from ``camera_range``,
  or by ``camera`` without a range) and :func:`calibration_images` (a model
  of one camera, or of all-in-focus input).

  Args:
    camera: The model's camera (its metadata's; None: all-in-focus input).
    size: ``(height, width)``.
    count: Number of scenes, >= 1.
    camera_aware: Whether the model takes a camera input.
    camera_range: A camera-aware model's training range, or None.
    **render_options: The model's render settings (``Metadata.render_kwargs()``).

  Returns:
    uint8 images ``[count, height, width, 3]``, float32 cameras ``[count, 4]``
    (None for a model without a camera input) and a description for the
    export's metadata.
  """
  source = "procedural train scenes"
  if not camera_aware:
    return calibration_images(camera, size, count, **render_options), None, source
  images, cameras = calibration_examples_with_cameras(camera, size, count,
                                                      camera_range=camera_range,
                                                      **render_options)
  source += (f", each by a camera drawn from range {camera_range.name}" if camera_range
             else ", rendered and fed with the default camera")
  return images, cameras, source


def _check_calibration_count(count) -> None:
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"calibration examples must be an integer >= 1, got {count!r}")
