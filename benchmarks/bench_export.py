r"""Latency, size and accuracy of the export formats: Keras, SavedModel, TFLite fp32/fp16/int8.

For each D3-Net configuration (``small`` at 256x256 and 480x640, and the full
DenseNet-121 D3-Net at ``--full_sizes``), randomly initialised (seed 0; no
training: latency and agreement between formats do not depend on the
weights), all in one run:

* per-image latency (batch 1, median and minimum of ``--runs`` timed calls
  after 2 warm-up calls) of the Keras model through :class:`d3tf.inference.Predictor`,
  the SavedModel's ``serving_default`` signature (``tf.saved_model.load``),
  and TFLite float32 / float16 / int8 models of that fixed input size run by
  the LiteRT interpreter (all CPU threads); plus TFLite float32 with dynamic
  shapes (``--input_size=any``);
* file sizes (the ``.keras`` file, the SavedModel folder, the ``.tflite``
  files);
* the max and mean absolute depth difference of each variant to the
  SavedModel's output, in metres, on ``--images`` procedural scenes (seed 1)
  defocused by the NYU camera at focus 2 m;
* Monte-Carlo dropout with 8 samples per image (one batched pass) for the
  small model at 256x256: latency only (the draws are random).

Every export is deterministic (``samples=1``) unless stated. int8 is
calibrated on 16 procedural training scenes rendered with the same camera.

Usage::

  python benchmarks/bench_export.py --output=benchmarks/results/export.md
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/export.md",
                              "Markdown file for the results ('' to only log them).")
_RUNS = flags.DEFINE_integer("runs", 10, "Timed calls per variant (after 2 warm-up calls).")
_IMAGES = flags.DEFINE_integer("images", 4, "Procedural scenes that measure the differences.")
_CALIBRATION = flags.DEFINE_integer("calibration_examples", 16, "Scenes that calibrate int8.")
_SMALL_SIZES = flags.DEFINE_list("small_sizes", ["256x256", "480x640"],
                                 "Input sizes (HxW) for D3NetConfig.small().")
_FULL_SIZES = flags.DEFINE_list("full_sizes", ["256x256"], "Input sizes (HxW) for the full "
                                "D3-Net (D3NetConfig.full()); empty to skip it.")
_MC_SAMPLES = flags.DEFINE_integer("mc_samples", 8, "Samples of the MC-dropout rows (0: none).")


def _folder_bytes(path: str) -> int:
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def _latency_ms(function, image: np.ndarray, runs: int) -> tuple[float, float]:
  """``(median, min)`` wall time of ``function(image)`` in ms, after 2 warm-up calls."""
  for _ in range(2):
    function(image)
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    function(image)
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times), 1e3 * min(times)


def _size(text: str) -> tuple[int, int]:
  height, width = text.lower().split("x")
  return int(height), int(width)


def _bench_config(name: str, config, sizes, metadata, workdir: str, rows: list,
                  mc_samples: int) -> None:
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.data import calibration  # pylint: disable=g-import-not-at-top
  from d3tf.models import build_d3net  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = build_d3net(config)
  keras_path = os.path.join(workdir, f"{name}.keras")
  model.save(keras_path)
  predictor = inference.Predictor(model, metadata)
  saved = exporter.export_saved_model(model, metadata, os.path.join(workdir, name), samples=1)
  signature = tf.saved_model.load(saved).signatures["serving_default"]
  saved_bytes = _folder_bytes(saved)
  runs = _RUNS.value
  threads = os.cpu_count()

  def serve(image):
    return signature(images=tf.constant(image))["depth"].numpy()

  for height, width in sizes:
    size = f"{height}x{width}"
    render_kwargs = metadata.render_kwargs()
    images = calibration.calibration_images(metadata.camera, (height, width), _IMAGES.value,
                                            seed=1, **render_kwargs)
    calibration_images = calibration.calibration_images(metadata.camera, (height, width),
                                                        _CALIBRATION.value, **render_kwargs)
    reference = np.concatenate([serve(image[None]) for image in images])

    def record(variant, nbytes, function, outputs=None):
      latency = _latency_ms(function, images[:1], runs)
      if outputs is None:
        diff_max = diff_mean = None
      else:
        diff = np.abs(outputs - reference)
        diff_max, diff_mean = float(diff.max()), float(diff.mean())
      rows.append((name, size, variant, nbytes, latency, diff_max, diff_mean))
      logging.info("%s %s %-28s %10s bytes %9.1f ms (min %.1f)  max %s mean %s", name, size,
                   variant, nbytes, *latency, diff_max, diff_mean)

    keras_depth = np.concatenate([predictor.predict(image)["depth"] for image in images])
    record("Keras (Predictor)", os.path.getsize(keras_path),
           lambda x: predictor.predict(x)["depth"], keras_depth)
    record("SavedModel", saved_bytes, serve, reference)
    variants = [("float32", (height, width)), ("float16", (height, width)),
                ("int8", (height, width)), ("float32", None)]
    for quantize, input_size in variants:
      start = time.perf_counter()
      flatbuffer, _ = exporter.convert_to_tflite(
          model, metadata, 1, quantize=quantize, input_size=input_size,
          calibration_images=calibration_images)
      logging.info("Converted %s %s %s in %.1f s", name, size, quantize,
                   time.perf_counter() - start)
      interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
      runner = interpreter.get_signature_runner("serving_default")

      def run(x, runner=runner):
        return runner(images=x)["depth"]

      outputs = np.concatenate([run(image[None]) for image in images])
      label = f"TFLite {quantize}" + (", any size" if input_size is None else "")
      record(label, len(flatbuffer), run, outputs)
    if mc_samples > 1 and (height, width) == sizes[0]:
      mc = exporter.export_saved_model(model, metadata, os.path.join(workdir, f"{name}_mc"),
                                       samples=mc_samples)
      mc_signature = tf.saved_model.load(mc).signatures["serving_default"]
      record(f"SavedModel, MC T={mc_samples}", _folder_bytes(mc),
             lambda x: mc_signature(images=tf.constant(x))["depth"].numpy())
      flatbuffer, _ = exporter.convert_to_tflite(model, metadata, mc_samples,
                                                 input_size=(height, width))
      runner = Interpreter(model_content=flatbuffer,
                           num_threads=threads).get_signature_runner("serving_default")
      record(f"TFLite float32, MC T={mc_samples}", len(flatbuffer),
             lambda x: runner(images=x)["depth"])


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf.models import D3NetConfig  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top

  started = datetime.datetime.now()
  load_before = os.getloadavg()[0]
  rows: list = []
  workdir = tempfile.mkdtemp(prefix="bench-export-")
  try:
    for name, config, sizes in (("small", D3NetConfig.small(), _SMALL_SIZES.value),
                                ("full", D3NetConfig.full(), _FULL_SIZES.value)):
      if not sizes:
        continue
      metadata = artifacts.Metadata.for_training(
          camera=Camera.nyu(2.0), model_config=config,
          train_data="procedural (random initialisation, not trained)")
      _bench_config(name, config, [_size(s) for s in sizes], metadata, workdir, rows,
                    _MC_SAMPLES.value if name == "small" else 0)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  minutes = (datetime.datetime.now() - started).total_seconds() / 60
  if not _OUTPUT.value:
    return
  load_after = os.getloadavg()[0]
  command = "TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(sys.argv)
  import ai_edge_litert  # pylint: disable=g-import-not-at-top
  lines = [
      "# Export formats: latency, size and agreement (Keras, SavedModel, TFLite)",
      "",
      f"Date: {started.strftime('%Y-%m-%d %H:%M')} ({minutes:.0f} min)  ",
      f"Command (from the repository root): `{command}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs while "
      f"measured: 1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the "
      f"end, so latencies are noisy upper bounds), Python {platform.python_version()}, "
      f"TensorFlow {tf.__version__}, LiteRT (ai-edge-litert) "
      f"{getattr(ai_edge_litert, '__version__', '2.3')}, no GPU.  ",
      "Models: D3-Net `small` (0.75 M parameters) and `full` (DenseNet-121, 24.2 M), random "
      "initialisation (seed 0), exported deterministic (`samples=1`) unless the row says MC. "
      "Latency: one image per call, median (and minimum) of "
      f"{_RUNS.value} calls after 2 warm-up calls; TFLite with {os.cpu_count()} threads (XNNPACK), "
      "fixed input size unless 'any size'. Differences: depth in metres against the "
      f"SavedModel, on {_IMAGES.value} procedural scenes defocused by `Camera.nyu(2.0)`; int8 "
      f"calibrated on {_CALIBRATION.value} other procedural scenes with the same camera.",
      "",
      "| model | size | variant | file size | latency median (min), ms/image | max abs diff (m) | "
      "mean abs diff (m) |",
      "|---|---|---|---:|---:|---:|---:|",
  ]

  def megabytes(nbytes):
    return f"{nbytes / 1e6:.2f} MB"

  def number(value):
    return "-" if value is None else f"{value:.1e}"

  for name, size, variant, nbytes, latency, diff_max, diff_mean in rows:
    lines.append(f"| {name} | {size} | {variant} | {megabytes(nbytes)} | {latency[0]:.1f} "
                 f"({latency[1]:.1f}) | {number(diff_max)} | {number(diff_mean)} |")
  lines.append("")
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    f.write("\n".join(lines))
  logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
