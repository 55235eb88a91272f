r"""What the input pipeline and the CPU allocator cost the default training job.

The default job (``python -m d3tf.train`` with no flags): small D3-Net, 128x128
procedural crops, batch 8, NYU camera focused at 2 m rendered per example,
Adam + L1. Each configuration runs in its own process (the allocator is chosen
by an environment variable read when TensorFlow starts), the configurations
take turns round after round, and the medians are reported:

* ``fixed``: the train step on one batch fetched once (no input pipeline);
* ``pipeline``: the same step fed by the pipeline, with the procedural scene
  generator (Python, holds the GIL) on ``--generator_threads`` parallel calls
  (``0`` = ``tf.data.AUTOTUNE``).

The overhead of the pipeline is ``pipeline / fixed`` in the same allocator
setting. Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_train_input.py \
      --output=benchmarks/results/train_input.md
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

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/train_input.md",
                              "Markdown file for the results ('' to only log them).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds; every configuration runs once per round.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per run (after --warmup steps).")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed steps per run (tracing, allocator warm-up).")
_CHILD = flags.DEFINE_string("child", None, "Internal: run one configuration, 'fixed' or "
                             "'pipeline', and print its seconds per step as JSON.")
_GENERATOR_THREADS = flags.DEFINE_integer(
    "generator_threads", 0, "Internal (with --child): parallel calls of the scene generator; "
    "0 = AUTOTUNE.")
_ALLOCATOR_SETTINGS = flags.DEFINE_list(
    "allocators", ["default", "bfc"], "Allocator settings to compare: 'default' (TF's CPU "
    "allocator) and 'bfc' (TF_CPU_ALLOCATOR_USE_BFC=true).")
_THREAD_SETTINGS = flags.DEFINE_list(
    "generator_thread_settings", ["0", "1"], "Generator parallel calls to compare (0 = AUTOTUNE).")


def _child(mode: str, generator_threads: int) -> dict:
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.data import AugmentOptions  # pylint: disable=g-import-not-at-top
  from d3tf.data import make_dataset  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  augment = AugmentOptions(scale_range=(1.0, 1.0), flip=True, channel_gain_range=(1.0, 1.0),
                           brightness_range=(1.0, 1.0))
  procedural_options = {"num_parallel_calls": generator_threads or tf.data.AUTOTUNE}
  dataset = make_dataset("procedural", batch_size=8, crop_size=(128, 128), camera=Camera.nyu(),
                         augment=augment, seed=0, deterministic=True,
                         procedural_options=procedural_options)
  if mode == "fixed":
    dataset = dataset.take(1).cache().repeat()
  config = models.D3NetConfig.small()
  model = models.build_d3net(config)
  model.compile(optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), loss=losses.get_loss("l1"))
  steps, warmup = _STEPS.value, _WARMUP.value

  def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

  class Timer(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      if batch == warmup:
        self.start, self.start_cpu = time.perf_counter(), cpu_seconds()

    def on_train_end(self, logs=None):
      self.seconds = time.perf_counter() - self.start
      self.cpu_seconds = cpu_seconds() - self.start_cpu

  timer = Timer()
  model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer])
  del tf
  return {"seconds_per_step": timer.seconds / steps, "cpu_seconds_per_step": timer.cpu_seconds / steps,
          "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_child(mode: str, allocator: str, generator_threads: int) -> dict:
  env = dict(os.environ)
  env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
  env["TF_CPU_ALLOCATOR_USE_BFC"] = "true" if allocator == "bfc" else "false"
  command = [sys.executable, os.path.abspath(__file__), f"--child={mode}",
             f"--generator_threads={generator_threads}", f"--steps={_STEPS.value}",
             f"--warmup={_WARMUP.value}"]
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv):
  del argv
  if _CHILD.value:
    sys.stdout.write(json.dumps(_child(_CHILD.value, _GENERATOR_THREADS.value)) + "\n")
    return
  configs = []
  for allocator in _ALLOCATOR_SETTINGS.value:
    configs.append(("fixed", allocator, 0))
    for threads in _THREAD_SETTINGS.value:
      configs.append(("pipeline", allocator, int(threads)))
  times = {config: [] for config in configs}
  load_before = os.getloadavg()[0]
  for round_index in range(_ROUNDS.value):
    for config in configs:
      measured = _run_child(*config)
      times[config].append(measured)
      logging.info("round %d: %s, allocator %s, generator threads %s: %.3f s/step, %.3f CPU s/step, "
                   "peak RSS %.0f MB", round_index + 1, *config, measured["seconds_per_step"],
                   measured["cpu_seconds_per_step"], measured["max_rss_mb"])
  load_after = os.getloadavg()[0]

  def median(config, key="seconds_per_step"):
    return statistics.median(run[key] for run in times[config])

  def threads_text(threads):
    return "AUTOTUNE" if threads == 0 else str(threads)

  lines = [
      "# The default training job: input-pipeline overhead and CPU allocator", "",
      f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  ",
      "Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
      f"benchmarks/bench_train_input.py --rounds={_ROUNDS.value} --steps={_STEPS.value}"
      f"{'' if _OUTPUT.value == 'benchmarks/results/train_input.md' else ' --output=' + _OUTPUT.value}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average "
      f"{load_before:.1f} at the start and {load_after:.1f} at the end, Python "
      f"{platform.python_version()}, no GPU.  ",
      "Job: small D3-Net, procedural scenes, 128x128 crops, batch 8, NYU camera focus 2 m "
      "rendered per example, Adam + L1. Each run is its own process; configurations take turns "
      f"over {_ROUNDS.value} rounds; {_STEPS.value} timed steps after {_WARMUP.value} untimed.",
      "Wall time suffers from other jobs on the machine; CPU time (user + system, all threads of "
      "the process, over the timed steps) much less: on a shared machine compare CPU time.",
      "", "| allocator | input | generator parallel calls | wall s/step (median) | wall runs | "
      "CPU s/step (median) | CPU runs | wall / fixed | CPU / fixed | peak RSS MB |",
      "|---|---|---|---:|---|---:|---|---:|---:|---:|"]
  for config in configs:
    mode, allocator, threads = config
    fixed = ("fixed", allocator, 0)
    wall_runs = ", ".join(f"{run['seconds_per_step']:.3f}" for run in times[config])
    cpu_runs = ", ".join(f"{run['cpu_seconds_per_step']:.3f}" for run in times[config])
    lines.append(
        f"| {allocator} | {mode} | {threads_text(threads) if mode == 'pipeline' else '-'} "
        f"| {median(config):.3f} | {wall_runs} | {median(config, 'cpu_seconds_per_step'):.3f} "
        f"| {cpu_runs} | {median(config) / median(fixed):.2f} "
        f"| {median(config, 'cpu_seconds_per_step') / median(fixed, 'cpu_seconds_per_step'):.2f} "
        f"| {median(config, 'max_rss_mb'):.0f} |")
  if "default" in _ALLOCATOR_SETTINGS.value and "bfc" in _ALLOCATOR_SETTINGS.value:
    lines += ["", "BFC over the default allocator, same input (median ratio, wall / CPU): " +
              ", ".join(
                  f"{mode}{'' if mode == 'fixed' else ' (generator ' + threads_text(threads) + ')'}"
                  f" {median((mode, 'bfc', threads)) / median((mode, 'default', threads)):.2f}x / "
                  f"{median((mode, 'bfc', threads), 'cpu_seconds_per_step') / median((mode, 'default', threads), 'cpu_seconds_per_step'):.2f}x"
                  for mode, allocator, threads in configs if allocator == "default") + "."]
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
