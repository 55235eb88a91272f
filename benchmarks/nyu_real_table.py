r"""Tabulates ``d3tf.evaluate`` JSON results of the real-NYU protocol as Markdown.

Reads every ``eval_*.json`` in the given model folders and prints one row per
(model, evaluation): the standard metrics (per-image mean over the images)
and the RMS per 1 m depth bin; with ``--group`` also the mean and spread
(sample standard deviation) over runs whose names differ only by a
``_seed<N>`` suffix. No TensorFlow needed::

  python benchmarks/nyu_real_table.py runs/nyu_real_*
  python benchmarks/nyu_real_table.py --group runs/nyu_real_*
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics

METRICS = ("rel", "sq_rel", "rms", "rmslog", "delta1")


def _rows(folders):
  for folder in folders:
    for path in sorted(glob.glob(os.path.join(folder, "eval_*.json"))):
      with open(path) as f:
        report = json.load(f)
      model = os.path.basename(os.path.normpath(folder))
      kind = os.path.splitext(os.path.basename(path))[0][len("eval_"):]
      yield model, kind, report


def _fmt(value):
  return "-" if value is None else f"{value:.3f}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("folders", nargs="+", help="model folders holding eval_*.json")
  parser.add_argument("--group", action="store_true",
                      help="also average runs that differ only by a _seed<N> suffix")
  args = parser.parse_args()
  rows = list(_rows(args.folders))
  if not rows:
    raise SystemExit(f"no eval_*.json in {args.folders}")
  bins = [f"{b['lo_m']:g}-{b['hi_m']:g}" for b in rows[0][2]["rms_per_depth_bin"]]
  head = ["model", "evaluation", "input", *METRICS, *[f"rms {b} m" for b in bins]]
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  groups = {}
  for model, kind, report in rows:
    metrics = report["metrics"]
    rendered = ("defocus " + f"{report['camera']['focus_distance_m']:g} m"
                if report.get("rendered_defocus") else "sharp")
    values = [metrics.get(m) for m in METRICS] + [b["rms"] for b in report["rms_per_depth_bin"]]
    print("| " + " | ".join([model, kind, rendered, *map(_fmt, values)]) + " |")
    key = (re.sub(r"_seed\d+$", "", model), kind, rendered)
    groups.setdefault(key, []).append(values)
  if args.group:
    print()
    print("| model (mean ± sd over seeds) | evaluation | input | n | " +
          " | ".join(head[3:]) + " |")
    print("|" + "---|" * (len(head) + 1))
    for (model, kind, rendered), runs in groups.items():
      cells = []
      for column in zip(*runs):
        known = [v for v in column if v is not None]
        if not known:
          cells.append("-")
        elif len(known) == 1:
          cells.append(_fmt(known[0]))
        else:
          cells.append(f"{statistics.mean(known):.3f} ± {statistics.stdev(known):.3f}")
      print("| " + " | ".join([model, kind, rendered, str(len(runs)), *cells]) + " |")


if __name__ == "__main__":
  main()
