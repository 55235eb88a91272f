r"""What the input pipeline costs the training jobs: step time with it over a fixed batch.

Jobs, each built by :class:`d3tf.experiment.task.DepthTask` from the same
:class:`~d3tf.experiment.config.ExperimentConfig` the CLI would build:

* ``default``: ``python -m d3tf.train`` with no flags: small D3-Net,
  128x128 procedural crops, batch 8, NYU camera focused at 2 m, Adam + L1;
* ``real``: real-image training as ``pipelines/nyu_real_focus2m.flags``:
  the same network with the band-pass stem, 128x128 crops of real NYU frames
  (``nyu_densedepth``: JPEG and PNG decoding, defocus rendered per example).

Inputs compared, each in its own process, taking turns round after round
(medians reported):

* ``fixed``: the train step on one batch fetched once (no input pipeline);
* ``stream``: every example from its own scene or frame, rendered at the
  crop's size (``--scene_pool_size=0``);
* ``pool``: the scene pool (``--scene_pool_size`` scenes rendered once at
  twice the crop's side, ``--scene_reuse`` crops each).

An input may name the renderer's engine after a ``+`` (``pool+tiled``,
``stream+fused``); without one it is the configuration's default engine.

The overhead of the pipeline is ``input / fixed``. On a shared machine compare
CPU time (user + system of the whole process over the timed steps): wall time
swings with the other jobs. Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_train_input.py \
      --output=benchmarks/results/train_input.md
"""

from __future__ import annotations

import datetime
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
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/train_input.md",
                              "Markdown file for the results ('' to only log them).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds; every configuration runs once per round.")
_STEPS = flags.DEFINE_integer("steps", 40, "Timed steps per run (after --warmup steps).")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed steps per run (tracing, the first pool).")
_JOBS = flags.DEFINE_list("jobs", ["default", "real"], "Jobs: default, real.")
_INPUTS = flags.DEFINE_list("inputs", ["fixed", "stream", "pool"], "Inputs: fixed, stream, pool.")
_POOL_SIZE = flags.DEFINE_integer("scene_pool_size", 64, "Pool size of the 'pool' input.")
_REUSE = flags.DEFINE_integer("scene_reuse", None, "Crops per pooled scene of the 'pool' input "
                              "(default: the config's, d3tf.experiment.config.DataConfig).")
_DATA_PATH = flags.DEFINE_string("data_path", "", "NYU frames in DenseDepth's layout for the "
                                 "'real' job; default ../shared/data/nyuv2_train.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run JOB:INPUT once, print JSON.")


def _data_path() -> str:
  if _DATA_PATH.value:
    return _DATA_PATH.value
  for parent in (os.path.dirname(_ROOT), os.path.dirname(os.path.dirname(_ROOT))):
    candidate = os.path.join(parent, "shared", "data", "nyuv2_train")
    if os.path.isdir(candidate):
      return candidate
  raise ValueError("--data_path not given and no shared/data/nyuv2_train beside the checkout")


def _reuse() -> int:
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  return _REUSE.value or config_lib.DataConfig().scene_reuse


def _config(job: str, input_spec: str):
  """The experiment of a job, with the input (``KIND`` or ``KIND+ENGINE``) it is fed."""
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  input_kind, _, engine = input_spec.partition("+")
  if input_kind not in ("fixed", "stream", "pool") or (engine and input_kind == "fixed"):
    raise ValueError(f"--inputs: unknown input {input_spec!r}; expected fixed, or stream or "
                     "pool optionally followed by +ENGINE")
  pool = ({"scene_pool_size": _POOL_SIZE.value, "scene_reuse": _reuse()}
          if input_kind == "pool" else {"scene_pool_size": 0})
  base = config_lib.ExperimentConfig()
  if engine:
    base = base.replace(render={"engine": engine})
  if job == "default":
    return base.replace(data=pool)
  return base.replace(
      data={"dataset": "nyu_densedepth", "data_path": _data_path(), "crop_size": 128,
            "val_scenes": ["office_0011"], **pool},
      camera={"focus_distance_m": 2.0}, model={"size": "small", "input_features": "rgb+bandpass"},
      training={"learning_rate": 1e-3, "validation_steps": 0})


def _child(spec: str) -> dict:
  # Started as the CLIs are: d3tf.tf_env's defaults (BFC allocator, Keras without its optional
  # imports) unless the environment sets them.
  from d3tf import tf_env  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top

  from d3tf.experiment.task import DepthTask  # pylint: disable=g-import-not-at-top

  job, input_kind = spec.split(":")
  keras.utils.set_random_seed(0)
  task = DepthTask(_config(job, input_kind))
  dataset = task.build_inputs("train")
  if input_kind == "fixed":
    dataset = dataset.take(1).cache().repeat()
  model = task.build_model()
  task.compile_model(model)  # As train_lib: Adam's slots built, the task's metrics.
  steps, warmup = _STEPS.value, _WARMUP.value

  usage = child_process.cpu_times
  class Timer(keras.callbacks.Callback):

    def on_train_batch_begin(self, batch, logs=None):
      if batch == warmup:
        self.start, self.start_usage = time.perf_counter(), usage()

    def on_train_end(self, logs=None):
      self.seconds = time.perf_counter() - self.start
      end = usage()
      self.user, self.sys = end[0] - self.start_usage[0], end[1] - self.start_usage[1]

  timer = Timer()
  model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[timer])
  return {"wall": timer.seconds / steps, "cpu": (timer.user + timer.sys) / steps,
          "sys": timer.sys / steps, "env": {name: os.environ.get(name, "(unset)")
                                            for name in tf_env.DEFAULTS},
          "max_rss_mb": child_process.max_rss_mb()}


def _run_child(job: str, input_kind: str) -> dict:
  return child_process.run_json_child(
      __file__, [f"--child={job}:{input_kind}", f"--steps={_STEPS.value}",
                 f"--warmup={_WARMUP.value}", f"--scene_pool_size={_POOL_SIZE.value}",
                 f"--scene_reuse={_reuse()}", f"--data_path={_DATA_PATH.value}"], cwd=_ROOT)


def main(argv):
  del argv
  if _CHILD.value:
    sys.stdout.write(json.dumps(_child(_CHILD.value)) + "\n")
    return
  configs = [(job, kind) for job in _JOBS.value for kind in _INPUTS.value]
  runs = {config: [] for config in configs}
  load_before = os.getloadavg()[0]
  for round_index in range(_ROUNDS.value):
    for config in configs:
      measured = _run_child(*config)
      runs[config].append(measured)
      logging.info("round %d, %s job, %s input: %.3f s/step, %.3f CPU s/step", round_index + 1,
                   *config, measured["wall"], measured["cpu"])
  load_after = os.getloadavg()[0]

  def med(config, key):
    return statistics.median(run[key] for run in runs[config])

  lines = [
      "# The input pipeline's overhead on the training step", "",
      f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  ",
      "Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
      f"benchmarks/bench_train_input.py --rounds={_ROUNDS.value} --steps={_STEPS.value} "
      f"--jobs={','.join(_JOBS.value)} --inputs={','.join(_INPUTS.value)} "
      f"--scene_pool_size={_POOL_SIZE.value} --scene_reuse={_reuse()}`  ",
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average "
      f"{load_before:.1f} at the start and {load_after:.1f} at the end, Python "
      f"{platform.python_version()}, no GPU; the children start as the CLIs do (d3tf.tf_env), "
      "with " + ", ".join(f"{name}={value}" for name, value in
                          runs[configs[0]][0]["env"].items()) + ".  ",
      "Jobs: `default` = `python -m d3tf.train` with no flags (small D3-Net, 128x128 "
      "procedural crops, batch 8, NYU camera focus 2 m); `real` = as "
      "`pipelines/nyu_real_focus2m.flags` (small D3-Net + band-pass stem, 128x128 crops of "
      "real NYU frames, batch 8, focus 2 m). Inputs: `fixed` = one batch fetched once; "
      "`stream` = every example from its own scene or frame (`--scene_pool_size=0`); `pool` = "
      f"the scene pool ({_POOL_SIZE.value} scenes rendered at twice the crop's side, "
      f"{_reuse()} crops each, the renderer's engine after a +, else the config's: 'auto', "
      "tiled for 256x256 windows). Each run is its own process; configurations take turns over "
      f"{_ROUNDS.value} rounds; {_STEPS.value} timed steps after {_WARMUP.value} untimed.",
      "CPU = user + system seconds of the whole process (all threads) over the timed steps: "
      "the primary figure on this shared machine, where wall time swings with other jobs.", "",
      "| job | input | CPU s/step (median) | CPU runs | CPU / fixed | wall s/step (median) "
      "| wall runs | wall / fixed | system s/step | peak RSS MB |",
      "|---|---|---:|---|---:|---:|---|---:|---:|---:|"]
  for config in configs:
    fixed = (config[0], "fixed")

    def ratio(key, config=config, fixed=fixed):
      return f"{med(config, key) / med(fixed, key):.2f}" if fixed in runs else "-"

    cpu_runs = ", ".join(f"{r['cpu']:.3f}" for r in runs[config])
    wall_runs = ", ".join(f"{r['wall']:.3f}" for r in runs[config])
    lines.append(f"| {config[0]} | {config[1]} | {med(config, 'cpu'):.3f} | {cpu_runs} "
                 f"| {ratio('cpu')} | {med(config, 'wall'):.3f} | {wall_runs} | {ratio('wall')} "
                 f"| {med(config, 'sys'):.3f} | {med(config, 'max_rss_mb'):.0f} |")
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
