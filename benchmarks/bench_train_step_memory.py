r"""Where the full D3-Net train step's memory goes: resident set after each stage.

One process per variant of ``bench_train_step.VARIANTS`` (same model, batch,
optimizer and dtype policy), reading ``/proc/self/status`` after: importing
TensorFlow and Keras; building the model and the optimizer's slots; tracing
the train step (a ``tf.function`` with an input signature of unknown sizes,
not run); the first call on a tiny batch (1x64x64: the traced graph is
optimised, instantiated and run, its kernels made); and each step on the real
batch (batch 4, 256x256 by default), with the most memory TensorFlow's BFC
allocator held in tensors. The step is the one ``bench_train_step`` times
(the model's loss, Adam), written as a plain ``tf.function`` so that tracing and
running can be told apart.

Usage::

  TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/bench_train_step_memory.py \
      --memory_variants=fused_bn,fused_bn_fused_adam \
      --memory_output=/tmp/train_step_memory.md
"""

from __future__ import annotations

import datetime
import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_train_step  # pylint: disable=g-import-not-at-top,wrong-import-position
import child_process  # pylint: disable=g-import-not-at-top,wrong-import-position

_VARIANTS = flags.DEFINE_list("memory_variants", ["fused_bn", "fused_bn_fused_adam"],
                              "Variants of bench_train_step.VARIANTS.")
_REAL_STEPS = flags.DEFINE_integer("real_steps", 2, "Steps on the real batch.", lower_bound=1)
_OUTPUT = flags.DEFINE_string("memory_output", None, "Markdown file to write the table to.")
_CHILD_VARIANT = flags.DEFINE_string("memory_child", None, "Internal: run this variant.")

#: The model, batch and crop flags are bench_train_step's (defined when it is imported).
FLAGS = flags.FLAGS
_STATUS_FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _status_mb() -> dict:
  """Resident set now (VmRSS), its high-water mark (VmHWM) and its parts, in MB."""
  with open("/proc/self/status") as status:
    fields = dict(line.split(":", 1) for line in status)
  return {name: round(int(fields[name].split()[0]) / 1024) for name in _STATUS_FIELDS}


def _child() -> list:
  stages = [("start", _status_mb(), None)]
  from d3tf import tf_env  # pylint: disable=g-import-not-at-top,unused-import
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  stages.append(("TensorFlow and Keras imported", _status_mb(), None))

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top

  def tensor_peak_mb():
    return round(tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20)

  variant = bench_train_step.VARIANTS[_CHILD_VARIANT.value]
  if variant.get("precision"):
    keras.mixed_precision.set_global_policy(variant["precision"])
  keras.utils.set_random_seed(0)
  model = models.build_d3net(
      getattr(models.D3NetConfig, FLAGS.model_size)(**variant["config"]))
  optimizer = bench_train_step.make_optimizer(variant)
  optimizer.build(model.trainable_variables)
  loss_fn = losses.get_loss("l1")
  stages.append(("model and optimizer built", _status_mb(), tensor_peak_mb()))

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3]),
                                tf.TensorSpec([None, None, None, 1])])
  def step(images, depths):
    with tf.GradientTape() as tape:
      loss = loss_fn(depths, tf.cast(model(images, training=True), tf.float32))
    optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
    return loss

  step.get_concrete_function()
  stages.append(("train step traced", _status_mb(), tensor_peak_mb()))
  rng = np.random.default_rng(0)
  step(rng.uniform(0, 1, (1, 64, 64, 3)).astype("float32"),
       rng.uniform(0.5, 10, (1, 64, 64, 1)).astype("float32"))
  stages.append(("first call, 1x64x64", _status_mb(), tensor_peak_mb()))
  size, batch = FLAGS.crop_size, FLAGS.batch_size
  images = rng.uniform(0, 1, (batch, size, size, 3)).astype("float32")
  depths = rng.uniform(0.5, 10, (batch, size, size, 1)).astype("float32")
  for index in range(_REAL_STEPS.value):
    step(images, depths)
    stages.append((f"step {index + 1}, {batch}x{size}x{size}", _status_mb(), tensor_peak_mb()))
  return stages


def main(argv):
  del argv
  if _CHILD_VARIANT.value:
    print(json.dumps(_child()), flush=True)
    os._exit(0)  # pylint: disable=protected-access
  unknown = sorted(set(_VARIANTS.value) - set(bench_train_step.VARIANTS))
  if unknown:
    raise app.UsageError(f"--memory_variants: unknown {unknown}; known: "
                         f"{sorted(bench_train_step.VARIANTS)}")
  lines = [
      "| variant | stage | RSS MB | high-water MB | anonymous MB | file-backed MB | "
      "tensor peak MB |", "|---|---|---:|---:|---:|---:|---:|"]
  for variant in _VARIANTS.value:
    env = bench_train_step.variant_env(variant)
    stages = child_process.run_json_child(
        __file__, [f"--memory_child={variant}", f"--real_steps={_REAL_STEPS.value}",
                   f"--model_size={FLAGS.model_size}", f"--batch_size={FLAGS.batch_size}",
                   f"--crop_size={FLAGS.crop_size}"], env=env)
    for name, status, tensor_peak in stages:
      lines.append(f"| {variant} | {name} | {status['VmRSS']} | {status['VmHWM']} | "
                   f"{status['RssAnon']} | {status['RssFile']} | "
                   f"{'' if tensor_peak is None else tensor_peak} |")
    logging.info("%s: peak RSS %d MB", variant, stages[-1][1]["VmHWM"])
  header = (f"Date: {datetime.datetime.now():%Y-%m-%d %H:%M}  \n"
            f"Command (from the repository root): `TF_CPP_MIN_LOG_LEVEL=2 python "
            f"benchmarks/bench_train_step_memory.py "
            f"--memory_variants={','.join(_VARIANTS.value)} "
            f"--real_steps={_REAL_STEPS.value}`  \n")
  text = header + "\n" + "\n".join(lines) + "\n"
  print(text)
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w") as output:
      output.write(text)


if __name__ == "__main__":
  app.run(main)
