r"""Depth accuracy of a trained model's TFLite exports: float32, float16, int8 against Keras.

bench_export.py measures how far the export formats of a randomly initialised
D3-Net drift from the SavedModel; this script asks the question a user has
before deploying a trained model: how much depth accuracy does quantisation
cost? For ``--model`` (a model_dir of ``d3tf.train``) it converts TFLite
models of one fixed input size (deterministic, ``samples=1``; int8 calibrated
on ``--calibration_examples`` procedural training scenes rendered with the
model's camera), runs them and the Keras model on the same ``--images``
procedural test scenes (rendered with the model's camera, quantised to uint8
as a camera delivers them; for a camera-aware model each calibration and test
scene is rendered by its own camera drawn from the model's training range, and
that camera is fed with it), and reports per variant: rel, rms, delta<1.25
against the ground truth (per-image mean, ``d3tf.metrics``), and the mean and
max absolute depth difference to the Keras model.

Usage (from the repository root)::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_quantization_accuracy.py \
      --model=runs/procedural480_focus2m_bandpass \
      --output=benchmarks/results/quantization_accuracy.md
  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_quantization_accuracy.py \
      --model=runs/nyu_real_anycamera_average/model.keras --images=24 --height=240 \
      --width=320 --output=benchmarks/results/quantization_accuracy_anycamera.md
"""

from __future__ import annotations

import datetime
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from d3tf import inference

_MODEL = flags.DEFINE_string("model", None, "A trained model: model_dir of d3tf.train or .keras.")
flags.mark_flag_as_required("model")
_IMAGES = flags.DEFINE_integer("images", 50, "Procedural test scenes scored.", lower_bound=1)
_HEIGHT = flags.DEFINE_integer("height", 480, "Scene and TFLite input rows (multiple of 32).")
_WIDTH = flags.DEFINE_integer("width", 640, "Scene and TFLite input columns (multiple of 32).")
_CALIBRATION = flags.DEFINE_integer("calibration_examples", 16, "Scenes that calibrate int8.",
                                    lower_bound=1)
_VARIANTS = flags.DEFINE_list("variants", ["float32", "float16", "int8"],
                              "TFLite quantisations to measure.")
# The test scenes' camera draws of a camera-aware model: not the calibration's (seed 0).
_TEST_SEED = 1
_OUTPUT = flags.DEFINE_string("output", "", "Markdown file for the results ('' to only log).")

_METRICS = ("rel", "rms", "delta1")


def _score(name: str, predictions: np.ndarray, depths: np.ndarray, reference: np.ndarray | None
           ) -> dict:
  from d3tf import metrics  # pylint: disable=g-import-not-at-top
  accumulator = metrics.MetricsAccumulator()
  for truth, depth in zip(depths, predictions):
    accumulator.update(truth[None], depth[None])
  scores = {key: accumulator.per_image_mean()[key] for key in _METRICS}
  if reference is not None:
    diff = np.abs(predictions - reference)
    scores.update(mean_diff=float(diff.mean()), max_diff=float(diff.max()))
  logging.info("%-16s %s", name, {k: round(v, 5) for k, v in scores.items()})
  return scores


def main(argv):
  del argv
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  from d3tf.data import calibration  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top

  started = datetime.datetime.now()
  size = (_HEIGHT.value, _WIDTH.value)
  predictor = inference.load_predictor(_MODEL.value)
  metadata = predictor.metadata
  logging.info("Model %s: %s", predictor.path, metadata.describe())
  render_kwargs = metadata.render_kwargs()
  camera_aware = predictor.camera_aware
  if camera_aware:  # Each scene by its own camera from the training range (docs/any_camera.md).
    images, depths, cameras = calibration.procedural_scenes_with_cameras(
        metadata.camera, size, _IMAGES.value, camera_range=metadata.camera_range,
        seed=_TEST_SEED, split="test", **render_kwargs)
  else:
    images, depths = calibration.procedural_scenes(metadata.camera, size, _IMAGES.value,
                                                   split="test", **render_kwargs)
    cameras = None
  calibration_images, calibration_cameras, _ = calibration.model_calibration(
      metadata.camera, size, _CALIBRATION.value, camera_aware=camera_aware,
      camera_range=metadata.camera_range, **render_kwargs)
  # One camera row per image (None: the model's own camera, or none).
  camera_of = lambda i: None if cameras is None else cameras[i:i + 1]
  keras_depth = np.concatenate([predictor.predict(image[None], camera=camera_of(i))["depth"]
                                for i, image in enumerate(images)])
  rows = {"Keras (float32)": (None, _score("Keras", keras_depth, depths, None))}
  for quantize in _VARIANTS.value:
    flatbuffer, _ = exporter.convert_to_tflite(predictor.model, metadata, 1, quantize=quantize,
                                               input_size=size,
                                               calibration_images=calibration_images,
                                               calibration_cameras=calibration_cameras)
    runner = Interpreter(model_content=flatbuffer,
                         num_threads=os.cpu_count()).get_signature_runner("serving_default")
    outputs = np.concatenate([
        runner(images=image[None])["depth"] if cameras is None
        else runner(images=image[None], camera=camera_of(i))["depth"]
        for i, image in enumerate(images)])
    outputs = outputs.reshape(keras_depth.shape)
    rows[f"TFLite {quantize}"] = (len(flatbuffer),
                                  _score(quantize, outputs, depths, keras_depth))
  if not _OUTPUT.value:
    return
  minutes = (datetime.datetime.now() - started).total_seconds() / 60
  lines = [
      "# Depth accuracy of a trained model's TFLite exports",
      "",
      f"Date: {started.strftime('%Y-%m-%d %H:%M')} ({minutes:.0f} min)  ",
      f"Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python {' '.join(sys.argv)}`  ",
      f"Model: `{predictor.path}` ({metadata.describe()}).  ",
      f"Data: the first {_IMAGES.value} procedural test scenes at {size[0]}x{size[1]}, defocused "
      + (f"each by its own camera drawn from the model's range {camera_range.name} (draw seed "
         f"{_TEST_SEED}), that camera given to the model" if camera_aware and camera_range
         else "with the model's camera") +
      ", as uint8; TFLite of that fixed size, deterministic; int8 "
      f"calibrated on {_CALIBRATION.value} procedural training scenes"
      + (" (cameras drawn with seed 0; the camera branch and thin-lens head kept in float)"
         if camera_aware else "") + ". Metrics: per-image mean "
      "against the ground truth (0 < depth <= 10 m); differences: depth in metres against the "
      "Keras model on the same inputs.",
      "",
      "| variant | file size | rel | rms (m) | d<1.25 | mean abs diff to Keras (m) | "
      "max abs diff to Keras (m) |",
      "|---|---:|---:|---:|---:|---:|---:|",
  ]
  for name, (nbytes, scores) in rows.items():
    size_text = "-" if nbytes is None else f"{nbytes / 1e6:.2f} MB"
    diffs = ("-", "-") if "mean_diff" not in scores else (f"{scores['mean_diff']:.1e}",
                                                          f"{scores['max_diff']:.1e}")
    lines.append(f"| {name} | {size_text} | {scores['rel']:.4f} | {scores['rms']:.4f} | "
                 f"{scores['delta1']:.4f} | {diffs[0]} | {diffs[1]} |")
  lines.append("")
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    f.write("\n".join(lines))
  logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
