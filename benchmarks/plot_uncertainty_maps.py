"""Draws a model's depth and uncertainty maps beside the truth and the error.

Takes the first ``--num_images`` procedural test scenes (those
``python -m d3tf.evaluate --dataset=procedural`` scores first), renders them
with the camera saved with the model (or leaves them sharp for an
all-in-focus model), predicts with ``--samples`` Monte-Carlo samples and
writes one PNG: input, true depth, predicted depth, predicted total std and
absolute error, a row per scene. The README's picture:

  python benchmarks/plot_uncertainty_maps.py \
      --model=runs/procedural480_focus2m_bandpass_laplace --num_images=3 --samples=20 \
      --output=benchmarks/results/uncertainty_maps_focus2m_laplace.png
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging
import numpy as np

from d3tf import inference
from d3tf import uncertainty_plots

_MODEL = flags.DEFINE_string("model", None, "A model_dir of d3tf.train or a .keras file.")
flags.mark_flag_as_required("model")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 3, "Procedural test scenes (rows).",
                                   lower_bound=1)
_FIRST = flags.DEFINE_integer("first", 0, "Index of the first test scene.", lower_bound=0)
_HEIGHT = flags.DEFINE_integer("height", 480, "Scene rows.", lower_bound=32)
_WIDTH = flags.DEFINE_integer("width", 640, "Scene columns.", lower_bound=32)
_SAMPLES = flags.DEFINE_integer("samples", 20, "Monte-Carlo samples T.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the dropout masks.")
_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/uncertainty_maps.png", "PNG to write.")


def main(argv):
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(_SEED.value)
  predictor = inference.load_predictor(_MODEL.value)
  camera = predictor.camera
  scenes = procedural.scene_batch(range(_FIRST.value, _FIRST.value + _NUM_IMAGES.value),
                                  split="test", height=_HEIGHT.value, width=_WIDTH.value)
  images = scenes["image"].astype(np.float32) / np.float32(255.0)
  if camera is not None:
    images = render_defocus(images, scenes["depth"], camera,
                            **predictor.metadata.render_kwargs()).numpy()
  out = predictor.predict(images, samples=_SAMPLES.value)
  if "depth_std" not in out:
    raise app.UsageError(f"{predictor.path} predicts no std with --samples={_SAMPLES.value}: use "
                         "T > 1 (MC dropout) or a model with an aleatoric head")
  focus = f"focus {camera.focus_distance_m:g} m" if camera is not None else "all-in-focus"
  output = uncertainty_plots.write_uncertainty_maps(
      images, scenes["depth"], out["depth"], out["depth_std"], _OUTPUT.value,
      image_title=f"input ({focus})", title=f"{predictor.path}, T = {_SAMPLES.value}")
  for k in range(_NUM_IMAGES.value):
    error = np.abs(out["depth"][k] - scenes["depth"][k])
    logging.info("scene %d: mean |error| %.3f m, mean std %.3f m", _FIRST.value + k,
                 float(error.mean()), float(out["depth_std"][k].mean()))
  logging.info("Wrote %s", output)


if __name__ == "__main__":
  app.run(main)
