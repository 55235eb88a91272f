r"""Trains D3-Net: ``python -m d3tf.train``.

With no flags it runs a short job on the procedural scenes (the small model,
128x128 crops, defocus rendered with the NYU camera focused at 2 m, 3 epochs
of 100 steps of 8 examples: a few minutes on a laptop CPU), and logs where
its outputs went. Every experiment has a preset and a flagfile in
``pipelines/``::

  python -m d3tf.train --flagfile=pipelines/quickstart_procedural.flags
  python -m d3tf.train --experiment=nyuv2_focus2m --data_path=... --model_dir=runs/nyu2m

Flags given on top of ``--experiment`` override it. Training defaults follow
the paper: Adam (learning rate 2e-4, beta1 0.5), L1 loss, 256x256 crops with
horizontal flips (128x128 and the small model for procedural scenes).

This binary turns the flags into an
:class:`~d3tf.experiment.config.ExperimentConfig` (:mod:`d3tf.flags`) and
calls :func:`d3tf.experiment.train_lib.run_training`, which documents what
``--model_dir`` receives (``config.json``, ``d3tf_metadata.json``, ``model.keras``, ``best.keras``, ``backup/``,
``tensorboard/``, ``metrics.csv``; interrupt at any moment and rerun the same
command to resume exactly). This binary adds ``flags.txt`` (the resolved
flags, usable as ``--flagfile``: it names the same model_dir, so running it
again resumes) and ``command_line.txt``.

**Uncertainty** (off by default): ``--aleatoric=gaussian|laplace`` adds a
log-scale head trained with that negative log-likelihood;
``--variational_blocks=5,4`` makes the 3x3 convolutions of those decoder
blocks variational (``--variational_type``, ``--posterior_scale_init``,
``--prior_scale``), adding their KL divergence / N times ``--kl_weight``,
optionally warmed up over ``--kl_anneal_steps``.
"""

from __future__ import annotations

import datetime
import os

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_training_flags()
FLAGS = flags.FLAGS


def _write_flagfile(model_dir: str, config) -> None:
  """flags.txt (warning where a resumed run's flags changed) and command_line.txt."""
  text = flags_lib.flagfile_from_config(config, FLAGS.model_dir)
  from d3tf.artifacts import model_dir as layout  # pylint: disable=g-import-not-at-top
  path = os.path.join(model_dir, layout.FLAGS_FILENAME)
  if os.path.exists(path):
    with open(path) as f:
      changed = sorted(set(text.splitlines()) ^ set(f.read().splitlines()))
    if changed:
      logging.warning("Flags differ from %s: %s", path, changed)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_text(path, text)
  atomic_io.append_text(os.path.join(model_dir, layout.COMMAND_LINE_FILENAME),
                        flags_lib.command_line() + "\n")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = flags_lib.experiment_config_from_flags()
  if FLAGS.model_dir is None:
    FLAGS.model_dir = os.path.join(  # So flags.txt names it and resumes it.
        "runs", datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  try:
    train_lib.run_training(config, FLAGS.model_dir,
                           on_model_dir=lambda path: _write_flagfile(path, config))
  except ValueError as e:  # Bad data paths, init_from, config values.
    raise flags_lib.usage_error(e) from e


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
