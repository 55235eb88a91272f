"""Helper process of tests/test_distribute.py (not a test): one tiny training run.

``python tests/distribute_worker.py MODE MODEL_DIR [EPOCHS STEPS SAVE_EVERY]`` prints
one JSON line ``{"steps", "resumed_from", "losses", "weights_digest"}``.

MODE: ``compare`` (in one process with 2 logical CPU devices: default-strategy
runs then MirroredStrategy runs over both devices, same global batch, of a
plain model and of a Bayesian one (Laplace NLL + a variational block); prints
all four), ``multi_worker`` (MultiWorkerMirroredStrategy from TF_CONFIG).
"""

import faulthandler
import json
import os
import signal
import sys

import tensorflow as tf


def _config(epochs, steps, save_every, strategy, bayes=False):
  from d3tf.experiment import config as config_lib  # pylint: disable=g-import-not-at-top
  model = {"size": "tiny", "dropout_rate": 0.0}
  if bayes:  # Laplace NLL + a variational block: KL and NLL terms both scaled per replica.
    model.update(aleatoric="laplace", variational_blocks=[5], posterior_scale_init=1e-6)
  return config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 4}, model=model,
      training={"epochs": epochs, "steps_per_epoch": steps, "save_every_steps": save_every,
                "validation_steps": 0, "tensorboard_images": 0, "log_every_steps": 0,
                "seed": 5},
      runtime={"distribution_strategy": strategy, "progress": "none"})


def _run(config, model_dir):
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  summary = train_lib.run_training(config, model_dir)
  logs = lambda key: [v for epoch in summary["history"] for v in epoch.get(key, [])]  # pylint: disable=unnecessary-lambda-assignment
  return {"steps": summary["steps"], "resumed_from": summary["resumed_from"],
          "losses": logs("loss"), "kl": logs("kl"), "nll": logs("nll"),
          "weights_digest": summary.get("weights_digest")}


def main():
  faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID: the stacks of a hung run.
  import keras  # pylint: disable=g-import-not-at-top
  keras.config.disable_traceback_filtering()
  mode, model_dir = sys.argv[1], sys.argv[2]
  epochs, steps, save_every = (int(v) for v in (sys.argv[3:6] or (3, 1, 0)))
  if mode == "compare":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    result = {"replicas": len(tf.config.list_logical_devices("CPU"))}
    for name, bayes in (("plain", False), ("bayes", True)):
      for strategy in ("default", "mirrored"):
        result[f"{name}_{strategy}"] = _run(_config(epochs, steps, save_every, strategy, bayes),
                                            os.path.join(model_dir, f"{name}_{strategy}"))
    print(json.dumps(result))
  else:
    print(json.dumps(_run(_config(epochs, steps, save_every, "multi_worker"), model_dir)))


if __name__ == "__main__":
  main()
