r"""The full D3-Net train step: time and peak memory, TF's default CPU allocator vs BFC.

The paper's configuration: full D3-Net (DenseNet-121 encoder, 24.2 M
parameters), batch 4, 256x256 inputs, Adam (2e-4, beta1 0.5), L1, on one
fixed batch (no input pipeline). Each configuration runs in its own process
(the allocator is read when TensorFlow starts) and the configurations take
turns; medians are reported. On a machine shared with other jobs, compare the
CPU time (user + system of all the process's threads over the timed steps):
wall time then measures the neighbours too.

Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_train_step.py \
      --output=benchmarks/results/train_step.md
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/train_step.md",
                              "Markdown file for the results ('' to only log them).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds; every configuration runs once per round.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per run (after --warmup steps).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per run (tracing, allocator warm-up).")
_SIZE = flags.DEFINE_enum("model_size", "full", ["tiny", "small", "full"], "D3-Net size.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Examples per step.")
_CROP = flags.DEFINE_integer("crop_size", 256, "Input side, pixels.")
_ALLOCATORS = flags.DEFINE_list("allocators", ["default", "bfc"],
                                "'default' (TF's CPU allocator), 'bfc' "
                                "(TF_CPU_ALLOCATOR_USE_BFC=true).")
_CHILD = flags.DEFINE_bool("child", False, "Internal: run one configuration, print JSON.")


def _child() -> dict:
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  size, batch = _CROP.value, _BATCH.value
  images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
  depths = rng.uniform(0.5, 10, (batch, size, size, 1)).astype("float32")
  model = models.build_d3net(getattr(models.D3NetConfig, _SIZE.value)())
  model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss=losses.get_loss("l1"))

  def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

  for _ in range(_WARMUP.value):
    model.train_on_batch(images, depths)
  start, start_cpu = time.perf_counter(), cpu_seconds()
  for _ in range(_STEPS.value):
    model.train_on_batch(images, depths)
  steps = _STEPS.value
  return {"seconds_per_step": (time.perf_counter() - start) / steps,
          "cpu_seconds_per_step": (cpu_seconds() - start_cpu) / steps,
          "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "parameters": int(model.count_params())}


def _run_child(allocator: str) -> dict:
  env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true" if allocator == "bfc" else "false")
  command = [sys.executable, os.path.abspath(__file__), "--child", f"--steps={_STEPS.value}",
             f"--warmup={_WARMUP.value}", f"--model_size={_SIZE.value}",
             f"--batch_size={_BATCH.value}", f"--crop_size={_CROP.value}"]
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if _CHILD.value:
    sys.stdout.write(json.dumps(_child()) + "\n")
    return
  runs = {allocator: [] for allocator in _ALLOCATORS.value}
  load_before = os.getloadavg()[0]
  for round_index in range(_ROUNDS.value):
    for allocator in _ALLOCATORS.value:
      measured = _run_child(allocator)
      runs[allocator].append(measured)
      logging.info("round %d, allocator %s: %.2f s/step, %.2f CPU s/step, peak RSS %.0f MB",
                   round_index + 1, allocator, measured["seconds_per_step"],
                   measured["cpu_seconds_per_step"], measured["max_rss_mb"])
  load_after = os.getloadavg()[0]

  def median(allocator, key):
    return statistics.median(run[key] for run in runs[allocator])

  parameters = runs[_ALLOCATORS.value[0]][0]["parameters"]
  lines = [
      "# The D3-Net train step: time and peak memory by CPU allocator", "",
      f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  ",
      "Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
      f"benchmarks/bench_train_step.py --model_size={_SIZE.value} --batch_size={_BATCH.value} "
      f"--crop_size={_CROP.value} --rounds={_ROUNDS.value} --steps={_STEPS.value}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average "
      f"{load_before:.1f} at the start and {load_after:.1f} at the end, Python "
      f"{platform.python_version()}, no GPU.  ",
      f"Step: D3-Net '{_SIZE.value}' ({parameters:,} parameters), batch {_BATCH.value}, "
      f"{_CROP.value}x{_CROP.value}, Adam + L1, one fixed batch; {_STEPS.value} timed steps after "
      f"{_WARMUP.value} untimed, each configuration in its own process, {_ROUNDS.value} rounds "
      "taken in turn. CPU = user + system time of all threads over the timed steps.", "",
      "| allocator | wall s/step (median) | wall runs | CPU s/step (median) | CPU runs | "
      "peak RSS MB (median) |", "|---|---:|---|---:|---|---:|"]
  for allocator in _ALLOCATORS.value:
    lines.append(
        f"| {allocator} | {median(allocator, 'seconds_per_step'):.2f} | "
        + ", ".join(f"{run['seconds_per_step']:.2f}" for run in runs[allocator])
        + f" | {median(allocator, 'cpu_seconds_per_step'):.2f} | "
        + ", ".join(f"{run['cpu_seconds_per_step']:.2f}" for run in runs[allocator])
        + f" | {median(allocator, 'max_rss_mb'):.0f} |")
  if {"default", "bfc"} <= set(_ALLOCATORS.value):
    lines += ["", "BFC / default (medians): wall "
              f"{median('bfc', 'seconds_per_step') / median('default', 'seconds_per_step'):.2f}x, "
              "CPU "
              f"{median('bfc', 'cpu_seconds_per_step') / median('default', 'cpu_seconds_per_step'):.2f}x,"
              f" peak RSS {median('bfc', 'max_rss_mb') / median('default', 'max_rss_mb'):.2f}x."]
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
