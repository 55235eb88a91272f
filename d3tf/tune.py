r"""Hyperparameter search for D3-Net with keras-tuner: ``python -m d3tf.tune``.

The data, camera, model, render and training flags are train's (``--flagfile``
and ``--experiment`` too): they make the base config, whose ``--epochs`` and
``--steps_per_epoch`` are each trial's budget (Hyperband's largest). The
search space is given by ``--tune_*`` flags (one value: fixed; two: a
range; lists of choices), e.g.::

  python -m d3tf.tune --flagfile=pipelines/tune_procedural.flags
  python -m d3tf.tune --experiment=quickstart_procedural --model_dir=runs/tune \
      --tuner=hyperband --epochs=9 --tune_learning_rate=1e-4,3e-3 \
      --tune_loss=l1,berhu,silog --tune_input_features=rgb,rgb+bandpass

A bad space (an empty range, an unknown loss) is refused before the first
trial. ``--model_dir`` receives the trials (rerun the same command to
continue: finished trials are kept), TensorBoard logs with the HParams view,
``summary.md`` / ``summary.json`` (the trials ranked by ``--objective``) and
``best.flags``: the best trial as a flagfile that ``python -m d3tf.train
--flagfile=MODEL_DIR/best.flags`` accepts unchanged (it trains into
``MODEL_DIR/best_retrain``, as ``--retrain_best`` does). See docs/tuning.md.
"""

from __future__ import annotations

import datetime
import os

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_tune_flags()
FLAGS = flags.FLAGS

BEST_FLAGS_FILENAME = "best.flags"
RETRAIN_DIRNAME = "best_retrain"


def _write_best_flags(model_dir: str, best_config, summary) -> str:
  """MODEL_DIR/best.flags: train's flags of the best config (full budget)."""
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  best = summary["best"]
  header = (f"# Best trial {best['trial_id']} of the search in {model_dir} "
            f"({summary['objective']} {best[summary['objective']]:.4f}); train it to the full "
            f"budget with\n#   python -m d3tf.train --flagfile={model_dir}/{BEST_FLAGS_FILENAME}\n")
  path = os.path.join(model_dir, BEST_FLAGS_FILENAME)
  atomic_io.write_text(path, header + flags_lib.flagfile_from_config(
      best_config, os.path.join(model_dir, RETRAIN_DIRNAME)))
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = flags_lib.experiment_config_from_flags()
  space, tune = flags_lib.tune_configs_from_flags()
  from d3tf.experiment import tune_lib  # pylint: disable=g-import-not-at-top
  try:
    tune_lib.check(config, space, tune)  # Before anything is written or built.
  except ValueError as e:
    raise flags_lib.usage_error(e) from e
  if FLAGS.model_dir is None:
    FLAGS.model_dir = os.path.join(
        "runs", "tune_" + datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
  model_dir = FLAGS.model_dir
  try:
    summary = tune_lib.run_search(config, space, tune, model_dir,
                                  verbose=0 if config.runtime.progress == "none" else 2)
  except ValueError as e:
    raise flags_lib.usage_error(e) from e
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.append_text(os.path.join(model_dir, "command_line.txt"),
                        flags_lib.command_line() + "\n")
  best_config = summary["best_config"]
  if best_config is None:
    logging.error("No trial finished: nothing to summarise in %s", model_dir)
    return 1
  path = _write_best_flags(model_dir, best_config, summary)
  logging.info("Best trial %s; its flags: %s; summary: %s", summary["best"]["trial_id"], path,
               os.path.join(model_dir, tune_lib.SUMMARY_MD))
  if FLAGS.retrain_best:
    from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
    retrain_dir = os.path.join(model_dir, RETRAIN_DIRNAME)
    train_lib.run_training(best_config, retrain_dir, on_model_dir=lambda d: atomic_io.write_text(
        os.path.join(d, "flags.txt"), flags_lib.flagfile_from_config(best_config, d)))
  return 0


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
