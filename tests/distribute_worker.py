"""Helper process of tests/test_distribute.py (not a test): one tiny training run.

``python tests/distribute_worker.py MODE MODEL_DIR [EPOCHS STEPS SAVE_EVERY]`` prints
one JSON line ``{"steps", "resumed_from", "losses", "weights_digest"}``.

MODE: ``compare`` (in one process with 2 logical CPU devices: a default-strategy
run then a MirroredStrategy run over both devices, same global batch;
prints both), ``multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG).
"""

import json
import os
import sys

import tensorflow as tf


def _config(epochs, steps, save_every, strategy):
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  return config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 4}, model={"size": "tiny", "dropout_rate": 0.0},
      training={"epochs": epochs, "steps_per_epoch": steps, "save_every_steps": save_every,
                "validation_steps": 0, "tensorboard_images": 0, "log_every_steps": 0,
                "seed": 5},
      runtime={"distribution_strategy": strategy, "progress": "none"})


def _run(config, model_dir):
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  summary = train_lib.run_training(config, model_dir)
  losses = [v for logs in summary["history"] for v in logs.get("loss", [])]
  return {"steps": summary["steps"], "resumed_from": summary["resumed_from"],
          "losses": losses, "weights_digest": summary.get("weights_digest")}


def main():
  mode, model_dir = sys.argv[1], sys.argv[2]
  epochs, steps, save_every = (int(v) for v in (sys.argv[3:6] or (3, 1, 0)))
  if mode == "compare":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    one = _run(_config(epochs, steps, save_every, "default"), os.path.join(model_dir, "one"))
    two = _run(_config(epochs, steps, save_every, "mirrored"), os.path.join(model_dir, "two"))
    print(json.dumps({"one": one, "two": two,
                      "replicas": len(tf.config.list_logical_devices("CPU"))}))
  else:
    print(json.dumps(_run(_config(epochs, steps, save_every, "multi_worker"), model_dir)))


if __name__ == "__main__":
  main()
