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

DATASETS = ("folder", "nyu_png", "nyu_mat", "dfd", "middlebury")

_DATASET = flags.DEFINE_enum("dataset", "folder", list(DATASETS), "Dataset format (as in "
                             "d3tf.train and d3tf.evaluate).")
_DATA_PATH = flags.DEFINE_string("data_path", None, "The dataset (folder or .mat file).")
_DEPTH_SCALE = flags.DEFINE_float("depth_scale", 0.001, "folder: metres per depth PNG unit.")
_SPLIT = flags.DEFINE_string("split", "all", "nyu_png / nyu_mat / dfd: the split to check "
                             "(NYU: train, test or all; DFD: train or test).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", None, "Write the report here too.")

flags.mark_flags_as_required(["data_path"])


def make_reader(dataset: str, path: str, split: str, depth_scale: float):
  """The reader of ``dataset`` at ``path`` that skips (and records) bad samples."""
  from d3tf.data import readers  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import folder  # pylint: disable=g-import-not-at-top
  if dataset == "folder":
    return folder.folder_reader_for(path, depth_scale, on_error="skip")
  if dataset == "nyu_png":
    return readers.NyuPngReader(path, split=split, on_error="skip")
  if dataset == "nyu_mat":
    return readers.NyuMatReader(path, split=split, on_error="skip")
  if dataset == "dfd":
    return readers.DfdReader(path, split="train" if split == "all" else split, on_error="skip")
  if dataset == "middlebury":
    return readers.MiddleburyReader(path, on_error="skip")
  raise ValueError(f"--dataset={dataset}: not supported")


def check(reader) -> dict:
  """Loads every sample of ``reader`` (``on_error="skip"``); returns the report."""
  good = sum(1 for _ in reader.iter_samples())
  report = reader.error_report(max_listed=10**6)
  report["good"] = good
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not os.path.exists(_DATA_PATH.value):
    raise app.UsageError(f"--data_path={_DATA_PATH.value}: no such file or folder")
  reader = make_reader(_DATASET.value, _DATA_PATH.value, _SPLIT.value, _DEPTH_SCALE.value)
  report = check(reader)
  for message in report["examples"]:
    logging.warning("bad: %s", message)
  logging.info("%s: %d good samples, %d bad", _DATA_PATH.value, report["good"],
               report["distinct"])
  if _OUTPUT_JSON.value:
    from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
    atomic_io.write_json(_OUTPUT_JSON.value, report)
  if report["distinct"]:
    raise app.UsageError(f"{_DATA_PATH.value}: {report['distinct']} bad samples of "
                         f"{report['good'] + report['distinct']} (listed above)")


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
