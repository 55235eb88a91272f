r"""DFD models on real lens blur and on d3tf's rendered blur of the same views.

A DFD model fine-tuned on the real f/2.8 photos reads them no better than the
f/8 model reads its sharp photos (benchmarks/results/dfd_protocol.md). This
script separates the blur from everything else about those views: it scores
each model on the held-out views (``--dfd_val_views`` latest by capture time)

* ``real``: the real photos of the model's aperture (``d3tf.evaluate
  --dataset=dfd``), and
* ``rendered``: the f/8 photos (nearly sharp) with the blur of the model's
  camera rendered by d3tf from the registered depth (``--dataset=folder`` on
  a folder of those views, as ``d3tf.evaluate`` renders sharp datasets),
  optionally softened first by a Gaussian of ``--floor_sigmas`` px (in linear
  light), the in-focus floor that benchmarks/dfd_blur_calibration.py measures.

Writes a Markdown table (``--output``) and a JSON beside it.

Usage (from the repository root)::

  python benchmarks/dfd_rendered_vs_real.py --model=f2.8=runs/dfd_finetune_small_f2_8 \
      --model=f2.8_pretrained=runs/dfd_pretrain_small_f2_8 --floor_sigmas=0,0.43 \
      --output=benchmarks/results/dfd_rendered_vs_real.md
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import tempfile
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import logging  # pylint: disable=g-import-not-at-top,wrong-import-position

from d3tf.data.readers import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from d3tf.data.readers import dfd  # pylint: disable=g-import-not-at-top,wrong-import-position
from d3tf.optics import color  # pylint: disable=g-import-not-at-top,wrong-import-position

METRICS = ("rel", "rms", "delta1")


def soften(image: np.ndarray, sigma_px: float) -> np.ndarray:
  """A uint8 sRGB image blurred by a Gaussian of ``sigma_px`` in linear light."""
  if sigma_px <= 0:
    return image
  linear = color.srgb_to_linear(np.asarray(image, np.float64) / 255.0)
  linear = np.stack([ndimage.gaussian_filter(linear[..., c], sigma_px)
                     for c in range(linear.shape[-1])], axis=-1)
  srgb = color.linear_to_srgb(np.clip(linear, 0.0, 1.0))
  return np.clip(np.round(np.asarray(srgb) * 255.0), 0, 255).astype(np.uint8)


def write_sharp_views(data_path: str, val_views: int, folder: str, floor_sigma_px: float) -> int:
  """Writes the held-out f/8 views as ``rgb/<n>.png`` + ``depth/<n>.png`` (mm); returns the count."""
  reader = dfd.DfdReader(data_path, aperture="N8", split="validation", val_views=val_views)
  os.makedirs(os.path.join(folder, "rgb"), exist_ok=True)
  os.makedirs(os.path.join(folder, "depth"), exist_ok=True)
  for n, sample in enumerate(reader.samples()):
    image = common.read_image(sample.image_path)
    Image.fromarray(soften(image, floor_sigma_px)).save(os.path.join(folder, "rgb", f"{n:03d}.png"))
    shutil.copyfile(sample.depth_path, os.path.join(folder, "depth", f"{n:03d}.png"))
  return len(reader.samples())


def evaluate(model: str, output_json: str, **options) -> dict[str, float]:
  """rel, rms and delta1 (per-image mean) of ``model`` (best.keras) on one data source."""
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  report = eval_lib.run_evaluation(eval_lib.EvalConfig(
      model=model, checkpoint="best", output_json=output_json, sparsification_plot="",
      **options))
  return {k: float(report["metrics"][k]) for k in METRICS}


def main(argv):
  del argv
  floors = [float(s) for s in FLAGS.floor_sigmas]
  results: dict[str, dict[str, Any]] = {}
  with tempfile.TemporaryDirectory() as tmp:
    folders = {}
    for sigma in floors:
      folders[sigma] = os.path.join(tmp, f"floor_{sigma:g}")
      count = write_sharp_views(FLAGS.data_path, FLAGS.dfd_val_views, folders[sigma], sigma)
      logging.info("%d f/8 views written (softened by %g px) to %s", count, sigma,
                   folders[sigma])
    for spec in FLAGS.model:
      name, sep, path = spec.partition("=")
      if not sep or not name or not path:
        raise app.UsageError(f"--model={spec!r}: expected NAME=PATH")
      scratch = os.path.join(tmp, "report.json")
      row = {"model": path, "real": evaluate(
          path, scratch, dataset="dfd", data_path=FLAGS.data_path, split="validation",
          dfd_val_views=FLAGS.dfd_val_views)}
      for sigma in floors:
        row[f"rendered, floor {sigma:g} px"] = evaluate(
            path, scratch, dataset="folder", data_path=folders[sigma], split="all", depth_scale=0.001)
      results[name] = row
      logging.info("%s: %s", name, row)
  report = {"command_line": " ".join(sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "dfd_val_views": FLAGS.dfd_val_views, "results": results}
  output_json = os.path.splitext(FLAGS.output)[0] + ".json"
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
  with open(output_json, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=1)
  columns = ["real"] + [f"rendered, floor {s:g} px" for s in floors]
  lines = ["# DFD models on real and on rendered blur of the same held-out views (issue 14)", "",
           f"Command (from the repository root): `{report['command_line']}`  ",
           f"Date: {report['date']}. The {FLAGS.dfd_val_views} latest views by capture time; "
           "`real`: the photos of the model's aperture; `rendered`: the f/8 photos with the "
           "model's camera's blur rendered from the registered depth (softened first by a "
           "Gaussian of the floor's sigma). Cells: rel / rms (m) / delta1, per-image mean.", "",
           "| model | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  for name, row in results.items():
    cells = [" / ".join(f"{row[c][k]:.3f}" for k in METRICS) for c in columns]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  with open(FLAGS.output, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  logging.info("Wrote %s and %s", FLAGS.output, output_json)
  # The evaluations' tf.data pipelines can hang the interpreter's exit; everything is written.
  os._exit(0)  # pylint: disable=protected-access


if __name__ == "__main__":
  flags.DEFINE_multi_string("model", [], "NAME=PATH of a DFD model_dir (defocus, f/2.8); repeat.")
  flags.DEFINE_string("data_path", "../shared/data/dfd_indoor", "The DFD dataset folder.")
  flags.DEFINE_integer("dfd_val_views", 16, "Held-out views (latest by capture time).")
  flags.DEFINE_list("floor_sigmas", ["0", "0.43"], "Gaussian sigmas (px) softening the f/8 "
                    "photos before the rendered blur.")
  flags.DEFINE_string("output", "benchmarks/results/dfd_rendered_vs_real.md", "Markdown file.")
  FLAGS = flags.FLAGS
  app.run(main)
