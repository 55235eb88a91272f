r"""Lists every bad file of a dataset at once: ``python -m d3tf.data.check``.

Loads and validates every sample (the checks training and evaluation apply,
:mod:`d3tf.data.validation`) with ``on_error="skip"``, then logs how many
samples are bad and why, and writes the report as JSON (``--output_json``).
Exit status 1 if any sample is bad, so that it can gate a training script::

  python -m d3tf.data.check --dataset=folder --data_path=my_data --depth_scale=0.001
  python -m d3tf.data.check --dataset=nyu_png --data_path=../shared/data/nyuv2_samples
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_data_flags()
flags_lib.define_output_json_flag()
FLAGS = flags.FLAGS
DATASETS = ("folder", "nyu_png", "nyu_mat", "nyu_densedepth", "dfd", "middlebury")


def make_reader(dataset: str, path: str, split: str, depth_scale: float, *,
                dfd_aperture: str = "N2_8", dfd_val_views: int = 0):
  """The reader of ``dataset`` at ``path`` (the registry's) that skips and records bad samples.

  ``dfd_aperture`` and ``dfd_val_views``: dfd's photos and held-out views.
  """
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  if dataset not in DATASETS:
    raise ValueError(f"--dataset={dataset}: not supported (one of {', '.join(DATASETS)})")
  options = {}
  if dataset == "dfd":
    if split == "all":
      split, dfd_val_views = "train", 0  # The whole train folder.
    options.update(aperture="N2_8" if dfd_aperture == "auto" else dfd_aperture,
                   val_views=dfd_val_views)
  return registry.make_reader(dataset, path, split, depth_scale=depth_scale, on_error="skip",
                              **options)


def check(reader) -> dict:
  """Loads every sample of ``reader`` (``on_error="skip"``); returns the report."""
  good = sum(1 for _ in reader.iter_samples())
  report = reader.error_report(max_listed=10**6)
  report["good"] = good
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.data_path or not os.path.exists(FLAGS.data_path):
    raise app.UsageError(f"--data_path={FLAGS.data_path}: no such file or folder")
  reader = make_reader(FLAGS.dataset or "folder", FLAGS.data_path, FLAGS.split or "all",
                       FLAGS.depth_scale, dfd_aperture=FLAGS.dfd_aperture,
                       dfd_val_views=FLAGS.dfd_val_views)
  report = check(reader)
  for message in report["examples"]:
    logging.warning("bad: %s", message)
  logging.info("%s: %d good samples, %d bad", FLAGS.data_path, report["good"],
               report["distinct"])
  if FLAGS.output_json:
    from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
    atomic_io.write_json(FLAGS.output_json, report)
  if report["distinct"]:
    raise app.UsageError(f"{FLAGS.data_path}: {report['distinct']} bad samples of "
                         f"{report['good'] + report['distinct']} (listed above)")


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
