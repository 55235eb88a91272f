r"""Renderer speed on real NYU frames: tiled, fused and reference engines vs the paper's method.

Renders batches of real 480x640 NYU Depth v2 frames (``--data_dir``, default
``../shared/data/nyuv2_samples``: ``NNNNN_colors.png`` + ``NNNNN_depth.png``,
uint16 millimetres) with the NYU camera (15 mm, f/2.8, 5.6 um) focused at 2 m
and the Gaussian PSF, five ways, in one run:

* **tiled**: ``engine="tiled"`` (per tile, only the slabs within reach;
  :mod:`d3tf.optics.tiled_render`), on one thread;
* **tiled, 2 shards**: the same with ``shards=2`` (two halves of the batch
  rendered concurrently: the same CPU time, less wall time where two cores
  are free);
* **fused**: ``d3tf.optics.render_defocus`` with ``engine="fused"`` (one XLA
  program, large blurs on a pyramid);
* **reference**: the same call with ``engine="reference"`` (the renderer as it
  was before the fused engine: slab by slab, direct blurs), inside a
  ``tf.function``;
* **paper (SciPy)**: the paper's method (10/255 m depth slabs, masks dilated
  by 4 px, no normalisation, blur on sRGB values, zero-padded borders) in
  NumPy/SciPy: ``render_defocus_scipy(..., mode="paper")`` (single-threaded,
  as SciPy is).

The arms are interleaved (fused, reference, paper, fused, reference, ...) so
that a load that changes during the run (the machine is shared) hits them
alike, and medians of the repeats are reported (wall time, and the process's
CPU time), with the load average before and after. Tracing / XLA compilation is done before timing and reported
separately. It also reports the difference of every engine's render to the
reference engine's (largest and mean absolute difference, PSNR; values in
[0, 1]).

Usage::

  PYTHONPATH=. python benchmarks/bench_render_nyu.py --output=benchmarks/results/render_nyu.md
"""

from __future__ import annotations

import datetime
import glob
import os
import platform
import sys
import time

from absl import app
from absl import flags
import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DATA_DIR = flags.DEFINE_string(
    "data_dir", None,
    "Folder with NNNNN_colors.png and NNNNN_depth.png (uint16 mm) NYU frames (default: "
    "shared/data/nyuv2_samples beside the checkout, or beside its parent for a worktree).")
_OUTPUT = flags.DEFINE_string("output", "", "Markdown file for the results ('' to only print).")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Frames per batch.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed batches of each TF engine.")
_PAPER_REPEATS = flags.DEFINE_integer("paper_repeats", 1, "Timed batches of the SciPy paper method.")
_FOCUS = flags.DEFINE_float("focus_m", 2.0, "Focus distance of the NYU camera, metres.")
_PSF = flags.DEFINE_string("psf", "gaussian", "PSF shape: gaussian or disk.")


def load_frames(data_dir: str, batch: int):
  """The first ``batch`` frames: float32 sRGB [B,480,640,3] and depth in metres [B,480,640]."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  colours = sorted(glob.glob(os.path.join(data_dir, "*_colors.png")))
  if len(colours) < batch:
    raise ValueError(f"--data_dir={data_dir!r} has {len(colours)} *_colors.png frames; "
                     f"--batch_size={batch} needs that many")
  images, depths = [], []
  for path in colours[:batch]:
    images.append(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0)
    depth_path = path.replace("_colors.png", "_depth.png")
    depths.append(np.asarray(Image.open(depth_path), np.float32) / 1000.0)
  return np.stack(images), np.stack(depths)


def _default_data_dir() -> str:
  for parent in (os.path.dirname(_ROOT), os.path.dirname(os.path.dirname(_ROOT))):
    candidate = os.path.join(parent, "shared", "data", "nyuv2_samples")
    if os.path.isdir(candidate):
      return candidate
  return os.path.join(os.path.dirname(_ROOT), "shared", "data", "nyuv2_samples")


def _load_average() -> str:
  try:
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())
  except OSError:
    return "unknown"


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
  from d3tf.optics.reference.scipy_render import render_defocus_scipy  # pylint: disable=g-import-not-at-top

  images, depths = load_frames(_DATA_DIR.value or _default_data_dir(), _BATCH.value)
  camera = Camera.nyu(focus_distance_m=_FOCUS.value)
  psf = _PSF.value
  batch = images.shape[0]
  images_t, depths_t = tf.constant(images), tf.constant(depths)
  reference_fn = tf.function(lambda i, d: render_defocus(i, d, camera, psf=psf,
                                                         engine="reference"))
  arms = {
      "tiled": lambda: render_defocus(images_t, depths_t, camera, psf=psf,
                                      engine="tiled").numpy(),
      "tiled, 2 shards": lambda: render_defocus(images_t, depths_t, camera, psf=psf,
                                                engine="tiled", shards=2).numpy(),
      "fused": lambda: render_defocus(images_t, depths_t, camera, psf=psf,
                                      engine="fused").numpy(),
      "reference": lambda: reference_fn(images_t, depths_t).numpy(),
      "paper (SciPy)": lambda: render_defocus_scipy(images, depths, camera, psf=psf,
                                                    mode="paper"),
  }
  load_before = _load_average()
  first_call = {}
  outputs = {}
  tf_arms = [name for name in arms if name != "paper (SciPy)"]
  for name in tf_arms:  # trace / compile, untimed in the table.
    start = time.perf_counter()
    outputs[name] = arms[name]()
    first_call[name] = time.perf_counter() - start

  seconds = {name: [] for name in arms}
  cpu_seconds = {name: [] for name in arms}
  for round_index in range(max(_REPEATS.value, _PAPER_REPEATS.value)):
    for name, fn in arms.items():
      limit = _PAPER_REPEATS.value if name == "paper (SciPy)" else _REPEATS.value
      if round_index >= limit:
        continue
      start, cpu_start = time.perf_counter(), time.process_time()
      fn()
      seconds[name].append(time.perf_counter() - start)
      cpu_seconds[name].append(time.process_time() - cpu_start)
      print(f"round {round_index}: {name} {seconds[name][-1]:.2f} s", flush=True)
  load_after = _load_average()

  fps = {name: batch / float(np.median(values)) for name, values in seconds.items()}
  cpu = {name: float(np.median(values)) for name, values in cpu_seconds.items()}
  rows = []
  for name in arms:
    values = seconds[name]
    rows.append(f"| {name} | {fps[name]:.2f} | {np.median(values):.2f} "
                f"({min(values):.2f}-{max(values):.2f}) | {cpu[name]:.2f} | "
                f"{batch / cpu[name]:.1f} | {len(values)} | {fps['tiled'] / fps[name]:.1f}x | "
                f"{cpu[name] / cpu['tiled']:.1f}x |")
  difference_rows = []
  for name in tf_arms:
    if name == "reference":
      continue
    difference = np.abs(outputs[name] - outputs["reference"])
    mse = float(np.mean(difference.astype(np.float64) ** 2))
    psnr = 10.0 * np.log10(1.0 / mse) if mse > 0 else float("inf")
    difference_rows.append(f"| {name} | {difference.max():.2e} | {difference.mean():.2e} | "
                           f"{psnr:.1f} |")
  date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
  lines = [
      f"Date: {date}; {os.cpu_count()} CPU cores ({platform.machine()}); Python "
      f"{platform.python_version()}, TensorFlow {tf.__version__}, NumPy {np.__version__}.",
      f"Load average (1/5/15 min) before: {load_before}; after: {load_after}.", "",
      f"{batch} real NYU frames (480x640) in one batch, NYU camera focused at "
      f"{_FOCUS.value:g} m, {psf} PSF. Arms interleaved; seconds per batch: median "
      "(min-max) of the repeats.", "",
      "| renderer | frames/s | s per batch | CPU s per batch | frames per CPU s | repeats "
      "| tiled is faster by | tiled uses less CPU by |",
      "|---|---|---|---|---|---|---|---|", *rows, "",
      "CPU s: process CPU time (all threads) per batch, less sensitive to the other jobs on "
      "the machine than wall time; SciPy and each XLA program run on one thread.", "",
      "Difference to the reference engine's render (sRGB values in [0, 1]):", "",
      "| engine | max abs diff | mean abs diff | PSNR (dB) |", "|---|---|---|---|",
      *difference_rows, "",
      "First call (trace + XLA compilation, wall s): " + ", ".join(
          f"{name} {first_call[name]:.1f} s" for name in tf_arms) + ".",
  ]
  report = "\n".join(lines)
  print(report)
  if _OUTPUT.value:
    command = "PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=2 python " + " ".join(
        [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    with open(_OUTPUT.value, "w") as f:
      f.write("# Renderer speed on real NYU frames: tiled, fused, reference and the paper's "
              "method\n\n")
      f.write(f"Command: `{command}`\n\n{report}\n")


if __name__ == "__main__":
  app.run(main)
