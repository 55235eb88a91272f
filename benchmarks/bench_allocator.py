r"""TensorFlow's CPU allocator: the default one against BFC, on the jobs that matter.

TensorFlow reads ``TF_CPU_ALLOCATOR_USE_BFC`` once, when it starts: each
configuration therefore runs in its own process, the two settings take turns
round after round (A B A B ...), and the medians are reported. Workloads:

* ``train_default``: the default training job's step on a fixed batch (small
  D3-Net, 128x128, batch 8, Adam + L1);
* ``train_full``: the full D3-Net's step (256x256, batch 4, Adam + L1);
* ``render``: the defocus renderer on real NYU frames (480x640, batch 8, NYU
  camera focused at 2 m, default engine).

User and system CPU seconds (``getrusage`` of the process over the timed part)
are the primary figures: the machine this was written on is shared, and wall
time there varies with the other jobs. Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_allocator.py \
      --output=benchmarks/results/allocator.md
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import statistics
import sys
import time

from absl import app
from absl import flags
from absl import logging

import child_process  # The sibling module: the scripts run from benchmarks/.

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/allocator.md",
                              "Markdown file for the results ('' to only log them).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds; every configuration runs once per round.")
_WORKLOADS = flags.DEFINE_list("workloads", ["train_default", "render", "train_full"],
                               "Workloads to measure: train_default, train_full, render.")
_STEPS = flags.DEFINE_integer("steps", 0, "Timed steps (batches) per run; 0: the workload's "
                              "default (train_default 20, train_full 4, render 3).")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "NYU sample frames (*_colors.png, *_depth.png) "
                                "for the render workload; default ../shared/data/nyuv2_samples.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run this workload once, print JSON.")

_DEFAULT_STEPS = {"train_default": 20, "train_full": 4, "render": 3}
_WARMUP = {"train_default": 3, "train_full": 1, "render": 1}


def _data_dir() -> str:
  if _DATA_DIR.value:
    return _DATA_DIR.value
  for parent in (os.path.dirname(_ROOT), os.path.dirname(os.path.dirname(_ROOT))):
    candidate = os.path.join(parent, "shared", "data", "nyuv2_samples")
    if os.path.isdir(candidate):
      return candidate
  raise ValueError("--data_dir not given and no shared/data/nyuv2_samples beside the checkout")


def _workload(name: str):
  """(step function, unit) of a workload, built (untimed)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if name == "render":
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from PIL import Image  # pylint: disable=g-import-not-at-top

    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
    paths = sorted(glob.glob(os.path.join(_data_dir(), "*_colors.png")))[:8]
    if len(paths) < 8:
      raise ValueError(f"{_data_dir()}: needs 8 *_colors.png frames, found {len(paths)}")
    images = tf.constant(np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255
                                   for p in paths]))
    depths = tf.constant(np.stack([
        np.asarray(Image.open(p.replace("_colors.png", "_depth.png")), np.float32) / 1000
        for p in paths]))
    camera = Camera.nyu(focus_distance_m=2.0)
    return lambda: render_defocus(images, depths, camera).numpy(), "batch of 8 frames"
  import keras  # pylint: disable=g-import-not-at-top

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  size, batch, config = ((128, 8, models.D3NetConfig.small()) if name == "train_default"
                         else (256, 4, models.D3NetConfig.full()))
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
  depths = rng.uniform(0.5, 10, (batch, size, size, 1)).astype("float32")
  model = models.build_d3net(config)
  model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss=losses.get_loss("l1"))
  return lambda: model.train_on_batch(images, depths), "train step"


def _child(name: str) -> dict:
  step, unit = _workload(name)
  for _ in range(_WARMUP[name]):
    step()
  steps = _STEPS.value or _DEFAULT_STEPS[name]
  user0, sys0 = child_process.cpu_times()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  wall = time.perf_counter() - start
  user1, sys1 = child_process.cpu_times()
  return {"unit": unit, "wall": wall / steps, "user": (user1 - user0) / steps,
          "sys": (sys1 - sys0) / steps,
          "max_rss_mb": child_process.max_rss_mb()}


def _run_child(name: str, allocator: str) -> dict:
  env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true" if allocator == "bfc" else "false")
  return child_process.run_json_child(
      __file__, [f"--child={name}", f"--steps={_STEPS.value}", f"--data_dir={_DATA_DIR.value}"],
      env=env, cwd=_ROOT)


def main(argv):
  del argv
  if _CHILD.value:
    sys.stdout.write(json.dumps(_child(_CHILD.value)) + "\n")
    return
  for name in _WORKLOADS.value:
    if name not in _DEFAULT_STEPS:
      raise app.UsageError(f"--workloads: unknown workload {name!r}; known: "
                           f"{', '.join(_DEFAULT_STEPS)}")
  allocators = ("default", "bfc")
  runs = {(w, a): [] for w in _WORKLOADS.value for a in allocators}
  load_before = os.getloadavg()[0]
  for round_index in range(_ROUNDS.value):
    for name in _WORKLOADS.value:
      for allocator in allocators:
        measured = _run_child(name, allocator)
        runs[(name, allocator)].append(measured)
        logging.info("round %d, %s, allocator %s: wall %.3f s, user %.3f s, sys %.3f s per %s",
                     round_index + 1, name, allocator, measured["wall"], measured["user"],
                     measured["sys"], measured["unit"])
  load_after = os.getloadavg()[0]

  def med(key, name, allocator):
    values = [r["user"] + r["sys"] if key == "cpu" else r[key] for r in runs[(name, allocator)]]
    return statistics.median(values)

  lines = [
      "# TensorFlow's CPU allocator: default against BFC (`TF_CPU_ALLOCATOR_USE_BFC=true`)", "",
      f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  ",
      "Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
      f"benchmarks/bench_allocator.py --rounds={_ROUNDS.value} "
      f"--workloads={','.join(_WORKLOADS.value)}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average "
      f"{load_before:.1f} at the start and {load_after:.1f} at the end, Python "
      f"{platform.python_version()}, no GPU.  ",
      "Each run is its own process (the setting is read when TensorFlow starts); the two "
      f"settings take turns over {_ROUNDS.value} rounds; medians. CPU = user + system seconds "
      "of all the process's threads over the timed part: the primary figure on this shared "
      "machine (wall time varies with the other jobs).", "",
      "| workload | per | allocator | user s | system s | CPU s | CPU runs | wall s | "
      "peak RSS MB |", "|---|---|---|---:|---:|---:|---|---:|---:|"]
  for name in _WORKLOADS.value:
    for allocator in allocators:
      key = (name, allocator)
      cpu_runs = ", ".join(f"{r['user'] + r['sys']:.3f}" for r in runs[key])
      lines.append(f"| {name} | {runs[key][0]['unit']} | {allocator} | {med('user', *key):.3f} "
                   f"| {med('sys', *key):.3f} | {med('cpu', *key):.3f} | {cpu_runs} "
                   f"| {med('wall', *key):.3f} | {med('max_rss_mb', *key):.0f} |")
  lines.append("")
  lines.append("BFC / default (medians), CPU and wall: " + "; ".join(
      f"{name} {med('cpu', name, 'bfc') / med('cpu', name, 'default'):.2f}x and "
      f"{med('wall', name, 'bfc') / med('wall', name, 'default'):.2f}x"
      for name in _WORKLOADS.value) + ".")
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
