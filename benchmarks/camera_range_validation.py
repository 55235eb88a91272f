r"""Camera-aware models on fresh validation draws of a training run's camera range.

A camera-aware run validates on its held-out data with cameras drawn from its
range by its seed, and chooses ``best.keras`` on that set, so that set flatters
the run's own best model. This script scores several models on the same
held-out data with cameras drawn by other seeds (``--seeds``: each seed gives
the run's validation set, ``training.validation_steps`` batches, with its own
cameras), so that no model was chosen on it: per model, the per-image mean of
rel, rms and delta < 1.25 over all drawn images, and rel per seed.

Usage (from the repository root)::

  python benchmarks/camera_range_validation.py --config=runs/nyu_real_anycamera_finetune \
      --model=long=runs/nyu_real_anycamera_long/best.keras \
      --model=average=runs/nyu_real_anycamera_average --seeds=5,6,7
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from d3tf import metrics  # pylint: disable=g-import-not-at-top,wrong-import-position


def validation_batches(model_dir: str, seeds: list[int]) -> list[tuple[Any, np.ndarray]]:
  """The validation batches of ``model_dir``'s config, once per seed (cameras drawn by it)."""
  from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  config = train_lib.load_config(model_dir)
  if not config.camera.range:
    raise ValueError(f"{model_dir}: its config draws no camera range (camera.range is empty)")
  batches = []
  for seed in seeds:
    seeded = dataclasses.replace(config, training=dataclasses.replace(config.training, seed=seed))
    data = task_lib.DepthTask(seeded).build_inputs("validation")
    if data is None:
      raise ValueError(f"{model_dir}: its config has no validation data")
    batches.append([(x, np.asarray(y)) for x, y in data])
  return batches


def score(model, batches_per_seed) -> dict[str, Any]:
  """Per-image mean metrics over every seed's batches, and rel per seed."""
  overall, per_seed = metrics.MetricsAccumulator(), []
  for batches in batches_per_seed:
    seed = metrics.MetricsAccumulator()
    for inputs, depth in batches:
      outputs = model(inputs, training=False)
      predicted = np.asarray(outputs["depth"] if isinstance(outputs, dict) else outputs)
      seed.update(depth, predicted)
      overall.update(depth, predicted)
    per_seed.append(seed.per_image_mean()["rel"])
  mean = overall.per_image_mean()
  return {"rel": mean["rel"], "rms": mean["rms"], "delta1": mean["delta1"],
          "images": overall.num_images, "rel_per_seed": per_seed}


def main(argv):
  del argv
  from d3tf.inference import keras_predictor  # pylint: disable=g-import-not-at-top
  seeds = [int(s) for s in FLAGS.seeds]
  batches = validation_batches(FLAGS.config, seeds)
  results = {}
  for spec in FLAGS.model:
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
      raise app.UsageError(f"--model={spec!r}: expected NAME=PATH")
    model, model_file = keras_predictor.load_model(path, FLAGS.checkpoint)
    results[name] = dict(score(model, batches), model=model_file)
    logging.info("%s (%s): rel %.4f over %d images (per seed: %s)", name, model_file,
                 results[name]["rel"], results[name]["images"],
                 ", ".join(f"{r:.4f}" for r in results[name]["rel_per_seed"]))
  report = {"command_line": " ".join(sys.argv), "config": FLAGS.config, "seeds": seeds,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "models": results}
  if FLAGS.output_json:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output_json)), exist_ok=True)
    with open(FLAGS.output_json, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
    logging.info("Wrote %s", FLAGS.output_json)


if __name__ == "__main__":
  flags.DEFINE_string("config", None, "A camera-aware run's model_dir: its config.json gives the "
                      "validation data and the camera range.", required=True)
  flags.DEFINE_multi_string("model", [], "NAME=PATH of a model (model_dir or .keras); repeat.")
  flags.DEFINE_enum("checkpoint", "auto", ["auto", "final", "best"], "Checkpoint of a model_dir.")
  flags.DEFINE_list("seeds", ["5", "6", "7"], "Seeds drawing the validation cameras (not the "
                    "run's own: it chose best.keras on those).")
  flags.DEFINE_string("output_json", None, "Where to write the scores (JSON).")
  FLAGS = flags.FLAGS
  app.run(main)
