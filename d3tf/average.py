r"""Averages the weights of checkpoints of one network: ``python -m d3tf.average``.

Checkpoints of one training lineage (a run's best and final models, a run and
its continuation) average into one model that is often better and steadier
than each (weight averaging, "model soups")::

  python -m d3tf.average --model=runs/a/best.keras --model=runs/b/best.keras \
      --model=runs/b/model.keras --output_dir=runs/a_b_average

writes ``model.keras``, ``d3tf_metadata.json`` (the first ingredient's, with
``averaged_from``) and ``config.json`` to ``--output_dir``; evaluate, predict
and export read it as any model_dir. ``--coefficients`` weighs the
ingredients. Ingredients whose metadata describe other inputs (camera, PSF,
render options, network) are refused. See
:mod:`d3tf.experiment.average_lib`.
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_average_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.output_dir:
    raise app.UsageError("--output_dir is required: the model_dir the average is written to")
  try:
    coefficients = (None if FLAGS.coefficients is None
                    else [float(c) for c in FLAGS.coefficients])
  except ValueError:
    raise app.UsageError(f"--coefficients={','.join(FLAGS.coefficients)}: expected numbers, "
                         "one per --model") from None
  from d3tf.experiment import average_lib  # pylint: disable=g-import-not-at-top
  try:
    written = average_lib.run_average(FLAGS.model, FLAGS.output_dir,
                                      checkpoint=FLAGS.checkpoint, coefficients=coefficients,
                                      overwrite=FLAGS.overwrite)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  logging.info("Average written: %s (evaluate, predict and export take --model=%s)",
               written["model"], written["output_dir"])


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
