"""Export as a library: a trained model to TF Serving's or LiteRT's layout; no flags read.

``python -m d3tf.export`` calls :func:`run_export`.
"""

from __future__ import annotations

import os

from absl import logging


def run_export(model: str, name: str, *, export_dir: str = "savedmodels",
               fmt: str = "saved_model", version: int | None = None, samples: int | None = None,
               quantize: str = "float32", input_size: tuple[int, int] | None = None,
               checkpoint: str = "auto", calibration_examples: int | None = None) -> str:
  """Loads a trained model, makes int8 calibration scenes if asked, and exports it.

  Args:
    model: A model_dir of d3tf.train or a ``.keras`` file with its metadata.
    name: The export's name (``export_dir/name/<version>``).
    export_dir: The exports' folder.
    fmt: "saved_model" or "tflite".
    version: The version to write (default: the next free one; an existing
      one is refused before any work).
    samples: Monte-Carlo samples per prediction (default: 20 for a
      stochastic model, else 1).
    quantize: TFLite: "float32", "float16" or "int8".
    input_size: TFLite: (height, width) of a fixed input, or None (any).
    checkpoint: "auto", "final" or "best" of a model_dir.
    calibration_examples: int8: procedural scenes that calibrate it.

  A camera-aware model (``docs/any_camera.md``) is exported with the camera as
  an input, its metadata's camera as the default (:mod:`d3tf.serving.graph`);
  its int8 calibration scenes are each rendered by a camera drawn from the
  model's training range (its metadata's ``camera_range``; the default camera
  for a model fine-tuned at one camera), and the camera is fed with each.

  Returns:
    The path of the export's version folder (or ``.tflite`` file).
  """
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.data import calibration as calibration_lib  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top
  base = artifacts.exports.base_dir(export_dir, name, fmt)  # Checks the name.
  if version is not None:  # Refuse an existing version before any work.
    artifacts.exports.version_dir(base, version, name)
  keras_model, path = inference.load_model(model, checkpoint)
  metadata = artifacts.read_metadata(path)
  logging.info("Exporting %s: %s", path, metadata.describe())
  calibration, cameras, source = None, None, "procedural train scenes"
  if fmt == "tflite":
    exporter.check_quantization(quantize)  # Before the calibration renders.
  if fmt == "tflite" and quantize == "int8":
    size = input_size or exporter.DEFAULT_CALIBRATION_SIZE
    count = calibration_examples or calibration_lib.DEFAULT_CALIBRATION_EXAMPLES
    calibration, cameras, source = calibration_lib.model_calibration(
        metadata.camera, size, count, camera_aware=graph.is_camera_aware(keras_model),
        camera_range=metadata.camera_range, **metadata.render_kwargs())
  return exporter.export_model(
      keras_model, metadata, name, export_dir=export_dir, fmt=fmt, version=version,
      samples=samples, quantize=quantize, input_size=input_size, calibration_images=calibration,
      calibration_cameras=cameras, calibration_source=source, source=os.path.abspath(path))
