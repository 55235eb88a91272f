r"""The full D3-Net train step: time and peak memory by model variant and CPU allocator.

The paper's configuration: full D3-Net (DenseNet-121 encoder, 24.2 M
parameters), batch 4, 256x256 inputs, Adam (2e-4, beta1 0.5), L1, on one
fixed batch (no input pipeline). Each configuration (a model variant of
:data:`VARIANTS` with an allocator) runs in its own process (the allocator is
read when TensorFlow starts; the peak RSS is the process's) and the
configurations take turns, round after round; medians are reported, with
each variant's ratio to the first one. On a machine shared with other jobs,
compare the CPU time (user + system of all the process's threads over the
timed steps): wall time then measures the neighbours too.

Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_train_step.py \
      --variants=keras_bn,fused_bn --allocators=bfc \
      --output=benchmarks/results/train_step.md
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

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/train_step.md",
                              "Markdown file for the results ('' to only log them).")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Rounds; every configuration runs once per round.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps per run (after --warmup steps).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps per run (tracing, allocator warm-up).")
_SIZE = flags.DEFINE_enum("model_size", "full", ["tiny", "small", "full"], "D3-Net size.")
_BATCH = flags.DEFINE_integer("batch_size", 4, "Examples per step.")
_CROP = flags.DEFINE_integer("crop_size", 256, "Input side, pixels.")
_ALLOCATORS = flags.DEFINE_list("allocators", ["bfc"],
                                "'default' (TF's CPU allocator), 'bfc' "
                                "(TF_CPU_ALLOCATOR_USE_BFC=true, the CLIs' default).")

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Model variants: D3NetConfig overrides, TensorFlow thread settings (None: TF's default),
#: environment variables of the child process, the optimizer ("adam": Keras' Adam, the
#: default here; "fused_adam": d3tf's FusedAdam), whether its slots are built before the first
#: step ("build_optimizer"; else Keras builds them inside the first trace), the Keras dtype
#: policy and whether Keras starts without its optional imports ("lean_import": the CLIs' way
#: since run 6, ``D3TF_LEAN_KERAS_IMPORT=true``, d3tf.tf_env; else as Keras comes).
VARIANTS = {
    "keras_bn": {"config": {"fused_batch_norm": False}},
    "fused_bn": {"config": {"fused_batch_norm": True}},
    "fused_bn_recompute": {"config": {"fused_batch_norm": True, "recompute": True}},
    "fused_bn_inter1": {"config": {"fused_batch_norm": True}, "inter_op_threads": 1},
    # TensorFlow's own (Eigen) CPU kernels instead of oneDNN's.
    "fused_bn_eigen": {"config": {"fused_batch_norm": True},
                       "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    # glibc malloc with at most 2 arenas (one per core) instead of up to 8 per core.
    "fused_bn_arenas2": {"config": {"fused_batch_norm": True}, "env": {"MALLOC_ARENA_MAX": "2"}},
    # oneDNN keeps no compiled primitives between calls.
    "fused_bn_nocache": {"config": {"fused_batch_norm": True},
                         "env": {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}},
    # Mixed precision: bfloat16 compute, float32 weights (CPUs with AVX512_BF16 / AMX).
    "fused_bn_bf16": {"config": {"fused_batch_norm": True}, "precision": "mixed_bfloat16"},
    "fused_bn_recompute_bf16": {"config": {"fused_batch_norm": True, "recompute": True},
                                "precision": "mixed_bfloat16"},
    "fused_bn_recompute_eigen": {"config": {"fused_batch_norm": True, "recompute": True},
                                 "env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    # Adam's update as one fused kernel per variable (d3tf.optimizers, the CLIs'
    # optimizer since run 4); the variants above use Keras' Adam.
    "fused_bn_fused_adam": {"config": {"fused_batch_norm": True}, "optimizer": "fused_adam"},
    "fused_bn_fused_adam_bf16": {"config": {"fused_batch_norm": True},
                                 "optimizer": "fused_adam", "precision": "mixed_bfloat16"},
    "fused_bn_recompute_fused_adam_bf16": {
        "config": {"fused_batch_norm": True, "recompute": True}, "optimizer": "fused_adam",
        "precision": "mixed_bfloat16"},
    # Adam's slots built before the first step (DepthTask.compile_model, the CLIs' way since
    # run 5) instead of inside its trace, which makes tf.function trace the step twice.
    "fused_bn_fused_adam_built": {"config": {"fused_batch_norm": True},
                                  "optimizer": "fused_adam", "build_optimizer": True},
    "fused_bn_fused_adam_built_bf16": {
        "config": {"fused_batch_norm": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "precision": "mixed_bfloat16"},
    "fused_bn_recompute_fused_adam_built_bf16": {
        "config": {"fused_batch_norm": True, "recompute": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "precision": "mixed_bfloat16"},
    # Keras without IPython, matplotlib and scikit-learn (d3tf.tf_env, the CLIs' way since run
    # 6). Since run 6, "recompute" recomputes whole dense layers (runs 1-5: their bottleneck)
    # and the heads convolve in the dtype policy (runs 1-5: float32 under mixed precision).
    "fused_bn_fused_adam_built_lean": {
        "config": {"fused_batch_norm": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "lean_import": True},
    "fused_bn_recompute_fused_adam_built_lean": {
        "config": {"fused_batch_norm": True, "recompute": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "lean_import": True},
    "fused_bn_fused_adam_built_bf16_lean": {
        "config": {"fused_batch_norm": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "precision": "mixed_bfloat16", "lean_import": True},
    "fused_bn_recompute_fused_adam_built_bf16_lean": {
        "config": {"fused_batch_norm": True, "recompute": True}, "optimizer": "fused_adam",
        "build_optimizer": True, "precision": "mixed_bfloat16", "lean_import": True},
}
_VARIANTS = flags.DEFINE_list("variants", ["keras_bn", "fused_bn"],
                              f"Model variants, the first the reference: {sorted(VARIANTS)}.")
_CONFIGS = flags.DEFINE_list("configs", None, "VARIANT@ALLOCATOR pairs to run instead of "
                             "--variants x --allocators (the first the reference), e.g. "
                             "keras_bn@default,fused_bn@bfc.")
_CHILD = flags.DEFINE_string("child", None, "Internal: run this variant, print JSON.")


def variant_env(variant: str, allocator: str = "bfc") -> dict:
  """The environment of a child process running ``variant`` with ``allocator``.

  The child imports :mod:`d3tf.tf_env` first, as the CLIs do; its settings are made explicit
  here, so that a variant runs as it did when it was recorded.
  """
  env = dict(os.environ, TF_CPU_ALLOCATOR_USE_BFC="true" if allocator == "bfc" else "false",
             D3TF_LEAN_KERAS_IMPORT="true" if VARIANTS[variant].get("lean_import") else "false",
             **VARIANTS[variant].get("env", {}))
  # The child imports d3tf from this checkout, not from wherever the package is installed.
  env["PYTHONPATH"] = os.pathsep.join(
      [_REPO_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
  return env


def make_optimizer(variant: dict):
  """The variant's Adam (Keras' or d3tf's FusedAdam) with the paper's settings, unbuilt."""
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import optimizers  # pylint: disable=g-import-not-at-top
  optimizer_class = {"adam": keras.optimizers.Adam,
                     "fused_adam": optimizers.FusedAdam}[variant.get("optimizer", "adam")]
  return optimizer_class(2e-4, beta_1=0.5)


def _child() -> dict:
  from d3tf import tf_env  # pylint: disable=g-import-not-at-top,unused-import
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top

  variant = VARIANTS[_CHILD.value]
  if variant.get("inter_op_threads"):
    tf.config.threading.set_inter_op_parallelism_threads(variant["inter_op_threads"])
  if variant.get("intra_op_threads"):
    tf.config.threading.set_intra_op_parallelism_threads(variant["intra_op_threads"])
  if variant.get("precision"):
    keras.mixed_precision.set_global_policy(variant["precision"])
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  size, batch = _CROP.value, _BATCH.value
  images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
  depths = rng.uniform(0.5, 10, (batch, size, size, 1)).astype("float32")
  model = models.build_d3net(getattr(models.D3NetConfig, _SIZE.value)(**variant["config"]))
  model.compile(optimizer=make_optimizer(variant), loss=losses.get_loss("l1"))
  if variant.get("build_optimizer"):
    model.optimizer.build(model.trainable_variables)

  cpu_seconds = child_process.cpu_seconds
  for _ in range(_WARMUP.value):
    model.train_on_batch(images, depths)
  start, start_cpu = time.perf_counter(), cpu_seconds()
  for _ in range(_STEPS.value):
    model.train_on_batch(images, depths)
  steps = _STEPS.value
  try:  # Tensors only (TensorFlow's BFC allocator keeps the statistics; the default does not).
    tensor_peak_mb = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
  except (ValueError, RuntimeError):
    tensor_peak_mb = float("nan")
  return {"tensor_peak_mb": tensor_peak_mb,
          "seconds_per_step": (time.perf_counter() - start) / steps,
          "cpu_seconds_per_step": (cpu_seconds() - start_cpu) / steps,
          "max_rss_mb": child_process.max_rss_mb(),
          "parameters": int(model.count_params()), "load": os.getloadavg()[0],
          "d3tf": os.path.dirname(models.__file__)}


def _run_child(allocator: str, variant: str) -> dict:
  env = variant_env(variant, allocator)
  return child_process.run_json_child(
      __file__, [f"--child={variant}", f"--steps={_STEPS.value}", f"--warmup={_WARMUP.value}",
                 f"--model_size={_SIZE.value}", f"--batch_size={_BATCH.value}",
                 f"--crop_size={_CROP.value}"], env=env)


def main(argv):
  del argv
  if _CHILD.value:
    sys.stdout.write(json.dumps(_child()) + "\n")
    return
  if _CONFIGS.value:
    configurations = []
    for pair in _CONFIGS.value:
      variant, _, allocator = pair.partition("@")
      if variant not in VARIANTS or allocator not in ("default", "bfc"):
        raise app.UsageError(f"--configs: {pair!r} is not VARIANT@ALLOCATOR with VARIANT in "
                             f"{sorted(VARIANTS)} and ALLOCATOR 'default' or 'bfc'")
      configurations.append((allocator, variant))
  else:
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
      raise app.UsageError(f"--variants: unknown {unknown}; known: {sorted(VARIANTS)}")
    configurations = [(allocator, variant) for allocator in _ALLOCATORS.value
                      for variant in _VARIANTS.value]
  runs = {configuration: [] for configuration in configurations}
  load_before = os.getloadavg()[0]
  for round_index in range(_ROUNDS.value):
    for allocator, variant in configurations:
      measured = _run_child(allocator, variant)
      runs[allocator, variant].append(measured)
      logging.info("round %d, %s, allocator %s: %.2f s/step, %.2f CPU s/step, peak RSS %.0f MB, "
                   "load %.1f", round_index + 1, variant, allocator,
                   measured["seconds_per_step"], measured["cpu_seconds_per_step"],
                   measured["max_rss_mb"], measured["load"])
  load_after = os.getloadavg()[0]

  def median(configuration, key):
    return statistics.median(run[key] for run in runs[configuration])

  parameters = runs[configurations[0]][0]["parameters"]
  loads = [run["load"] for measured in runs.values() for run in measured]
  lines = [
      "# The D3-Net train step: time and peak memory by model variant and CPU allocator", "",
      f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  ",
      "Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
      f"benchmarks/bench_train_step.py --model_size={_SIZE.value} --batch_size={_BATCH.value} "
      f"--crop_size={_CROP.value} --rounds={_ROUNDS.value} --steps={_STEPS.value} "
      f"--warmup={_WARMUP.value} "
      + (f"--configs={','.join(_CONFIGS.value)}`  " if _CONFIGS.value else
         f"--variants={','.join(_VARIANTS.value)} --allocators={','.join(_ALLOCATORS.value)}`  "),
      f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, 1-minute load average "
      f"{load_before:.1f} at the start, {load_after:.1f} at the end, "
      f"{min(loads):.1f}-{max(loads):.1f} at the ends of the runs; Python "
      f"{platform.python_version()}, no GPU.  ",
      f"Step: D3-Net '{_SIZE.value}' ({parameters:,} parameters), batch {_BATCH.value}, "
      f"{_CROP.value}x{_CROP.value}, Adam + L1, one fixed batch; {_STEPS.value} timed steps after "
      f"{_WARMUP.value} untimed, each configuration in its own process, {_ROUNDS.value} rounds "
      "taken in turn. CPU = user + system time of all threads over the timed steps; peak RSS = "
      "the process's maximum resident set (TensorFlow, model, optimizer and activations); "
      "tensor peak = the most memory TensorFlow's allocator held in tensors at once (BFC only).",
      "",
      "| variant | allocator | wall s/step (median) | wall runs | CPU s/step (median) | "
      "CPU runs | peak RSS MB (median) | RSS runs | tensor peak MB (median) |",
      "|---|---|---:|---|---:|---|---:|---|---:|"]
  for configuration in configurations:
    allocator, variant = configuration
    measured = runs[configuration]
    lines.append(
        f"| {variant} | {allocator} | {median(configuration, 'seconds_per_step'):.2f} | "
        + ", ".join(f"{run['seconds_per_step']:.2f}" for run in measured)
        + f" | {median(configuration, 'cpu_seconds_per_step'):.2f} | "
        + ", ".join(f"{run['cpu_seconds_per_step']:.2f}" for run in measured)
        + f" | {median(configuration, 'max_rss_mb'):.0f} | "
        + ", ".join(f"{run['max_rss_mb']:.0f}" for run in measured)
        + f" | {median(configuration, 'tensor_peak_mb'):.0f} |")
  lines.append("")
  if _CONFIGS.value:  # Each configuration against the first one.
    reference = configurations[0]
    for configuration in configurations[1:]:
      ratio = lambda key, c=configuration: median(c, key) / median(reference, key)
      lines.append(f"- {configuration[1]} ({configuration[0]}) / {reference[1]} ({reference[0]}), "
                   f"medians: wall {ratio('seconds_per_step'):.2f}x, CPU "
                   f"{ratio('cpu_seconds_per_step'):.2f}x, peak RSS {ratio('max_rss_mb'):.2f}x.")
  else:  # Each variant against the first, per allocator; then BFC against default.
    for allocator in _ALLOCATORS.value:
      reference = (allocator, _VARIANTS.value[0])
      for variant in _VARIANTS.value[1:]:
        ratio = lambda key: median((allocator, variant), key) / median(reference, key)
        lines.append(f"- {variant} / {reference[1]} ({allocator}, medians): wall "
                     f"{ratio('seconds_per_step'):.2f}x, CPU "
                     f"{ratio('cpu_seconds_per_step'):.2f}x, peak RSS {ratio('max_rss_mb'):.2f}x.")
    for variant in _VARIANTS.value:
      if {"default", "bfc"} <= set(_ALLOCATORS.value):
        ratio = lambda key: median(("bfc", variant), key) / median(("default", variant), key)
        lines.append(f"- BFC / default ({variant}, medians): wall "
                     f"{ratio('seconds_per_step'):.2f}x, CPU "
                     f"{ratio('cpu_seconds_per_step'):.2f}x, peak RSS {ratio('max_rss_mb'):.2f}x.")
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(_OUTPUT.value) or ".", exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)
    logging.info("Wrote %s", _OUTPUT.value)


if __name__ == "__main__":
  app.run(main)
