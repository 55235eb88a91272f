r"""Throughput of the procedural scene generator and of the tf.data pipeline.

Measures, in one run (about 2-3 minutes on a 2-core CPU):

* the generator alone (one Python thread): scenes/s at 256x256 and 480x640,
  and with 2x supersampling at 256x256;
* ``procedural_dataset`` with AUTOTUNE parallelism: scenes/s at 256x256;
* ``make_dataset`` examples/s, 256x256 crops, batch 8: from the procedural
  source and from an in-memory cached source (480x640 scenes, as a real
  dataset's decoded images would be), without defocus rendering and with it
  (NYU camera, focus 2 m, Gaussian PSF), rendered per batch or per example.

Usage::

  python benchmarks/bench_data.py --output=benchmarks/results/data.md
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/data.md",
                              "Markdown file for the results ('' to only log them).")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Batch size of the pipeline runs.")
_BATCHES = flags.DEFINE_integer("batches", 10, "Timed batches per pipeline run (after 1 warm-up).")
_SCENES = flags.DEFINE_integer("scenes", 40, "Scenes timed per generator run at 256x256.")


def _time_generator(height: int, width: int, count: int, supersample: int = 1) -> float:
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  procedural.generate_scene(10_000, height=height, width=width, supersample=supersample)  # Warm-up.
  start = time.perf_counter()
  for i in range(count):
    procedural.generate_scene(i, height=height, width=width, supersample=supersample)
  return count / (time.perf_counter() - start)


def _time_dataset(dataset, items: int, per_item: int) -> float:
  """Elements/s (times ``per_item``) after one warm-up element."""
  iterator = iter(dataset)
  next(iterator)
  start = time.perf_counter()
  for _ in range(items):
    next(iterator)
  return items * per_item / (time.perf_counter() - start)


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from d3tf.data import pipeline  # pylint: disable=g-import-not-at-top
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top

  rows: list[tuple[str, str, float]] = []
  load_before = os.getloadavg()[0]

  def record(what: str, unit: str, value: float) -> None:
    logging.info("%-70s %8.1f %s", what, value, unit)
    rows.append((what, unit, value))

  scenes = _SCENES.value
  record("generator, 256x256, 1 thread", "scenes/s", _time_generator(256, 256, scenes))
  record("generator, 480x640, 1 thread", "scenes/s", _time_generator(480, 640, max(scenes // 3, 3)))
  record("generator, 256x256, supersample 2, 1 thread", "scenes/s",
         _time_generator(256, 256, max(scenes // 3, 3), supersample=2))
  ds = procedural.procedural_dataset("train", None, height=256, width=256, deterministic=False)
  record("procedural_dataset, 256x256, AUTOTUNE", "scenes/s",
         _time_dataset(ds.prefetch(4), scenes, 1))

  camera = Camera.nyu(focus_distance_m=2.0)
  batch, batches = _BATCH.value, _BATCHES.value
  cached_scenes = procedural.scene_batch(range(16), height=480, width=640)
  cached = tf.data.Dataset.from_tensor_slices(cached_scenes).cache()
  configs = [
      ("no defocus", None, "batch"),
      ("defocus per batch", camera, "batch"),
      ("defocus per example", camera, "example"),
  ]
  for source_name, source in (("procedural 256x256", "procedural"),
                              ("cached 480x640", cached)):
    for name, cam, placement in configs:
      ds = pipeline.make_dataset(source, batch_size=batch, crop_size=(256, 256), camera=cam,
                                 render_placement=placement, seed=0, deterministic=False)
      record(f"make_dataset, {source_name} source, crop 256x256, batch {batch}, {name}",
             "examples/s", _time_dataset(ds, batches, batch))

  if not _OUTPUT.value:
    return
  load_after = os.getloadavg()[0]
  command = "TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(sys.argv)
  lines = [
      "# Data throughput: procedural scenes and the tf.data pipeline",
      "",
      f"Date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
      f"Command (from the repository root): `{command}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs while "
      f"measured: 1-minute load average {load_before:.1f} at the start, {load_after:.1f} at the "
      f"end, so figures are noisy lower bounds), Python {platform.python_version()}, "
      f"TensorFlow {tf.__version__}, NumPy {np.__version__}, no GPU.  ",
      "Camera for defocus: `Camera.nyu(focus_distance_m=2.0)`, Gaussian PSF, renderer defaults "
      "(`mode=\"improved\"`). Augmentation on (zoom 1-1.5, flip, colour gains).",
      "",
      "| what | throughput | unit |",
      "|---|---:|---|",
  ]
  lines += [f"| {what} | {value:.1f} | {unit} |" for what, unit, value in rows]
  lines.append("")
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  with open(_OUTPUT.value, "w") as f:
    f.write("\n".join(lines))
  logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
