"""Draws the sparsification curves of several evaluations in one picture.

Reads JSON files written by ``python -m d3tf.evaluate --samples=T`` (their
``uncertainty.sparsification``: the mean curve by predicted std and the
oracle curve by true error) and writes one PNG in which each model's curves
are divided by its error with no pixel removed (a random ranking is the flat
line at 1). The README's uncertainty picture (the JSONs of the README's evaluate commands):

  python benchmarks/plot_sparsification.py \
      --eval="all-in-focus, MC dropout=runs/eval/procedural480_aif_bandpass.json" \
      --eval="defocus, MC dropout=runs/eval/procedural480_focus2m_bandpass.json" \
      --eval="all-in-focus, Laplace head=runs/eval/procedural480_aif_bandpass_laplace.json" \
      --eval="defocus, Laplace head=runs/eval/procedural480_focus2m_bandpass_laplace.json" \
      --output=benchmarks/results/sparsification_procedural480.png
"""

from __future__ import annotations

import json

from absl import app
from absl import flags
from absl import logging

from d3tf import uncertainty_plots

_EVAL = flags.DEFINE_multi_string(
    "eval", None, "LABEL=PATH of an evaluation JSON with uncertainty metrics; repeat per model.")
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/sparsification.png", "PNG to write.")
_TITLE = flags.DEFINE_string("title", None, "Figure title (default: the images and samples of "
                             "the first evaluation).")
flags.mark_flag_as_required("eval")


def _read(spec: str) -> tuple[str, dict]:
  label, sep, path = spec.rpartition("=")
  if not sep or not label or not path:
    raise app.UsageError(f"--eval must be LABEL=PATH, got {spec!r}")
  try:
    with open(path) as f:
      report = json.load(f)
  except (OSError, json.JSONDecodeError) as error:
    raise app.UsageError(f"--eval {label!r}: cannot read {path}: {error}") from None
  if not (report.get("uncertainty") or {}).get("sparsification"):
    raise app.UsageError(f"--eval {label!r}: {path} has no uncertainty.sparsification (evaluate "
                         "with --samples > 1 or a model with an aleatoric head)")
  return label, report


def main(argv):
  del argv
  reports = dict(_read(spec) for spec in _EVAL.value)
  first = next(iter(reports.values()))
  metrics = {r["uncertainty"]["ause_metric"] for r in reports.values()}
  if len(metrics) > 1:
    raise app.UsageError(f"The evaluations used different --ause_metric values: {sorted(metrics)}")
  title = _TITLE.value or (f"{first['num_images']} {first['dataset']} test images, "
                           f"T = {first['samples']} samples")
  output = uncertainty_plots.write_sparsification_plot(
      {label: r["uncertainty"]["sparsification"] for label, r in reports.items()}, _OUTPUT.value,
      title=title, error_name="RMSE" if metrics == {"rmse"} else "mean abs error")
  logging.info("Wrote %s", output)


if __name__ == "__main__":
  app.run(main)
