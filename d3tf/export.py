r"""Exports a trained model for TF Serving or LiteRT: ``python -m d3tf.export``.

SavedModel (TF Serving's layout, next free integer version)::

  python -m d3tf.export --model=runs/nyu_focus2m --name=nyu_focus2m
  # -> savedmodels/nyu_focus2m/1/ (saved_model.pb, variables/, assets.extra/)

TFLite (builtin ops only; float32, float16 or int8 post-training
quantisation calibrated on procedural scenes rendered with the model's camera)::

  python -m d3tf.export --model=runs/nyu_focus2m --name=nyu_focus2m --format=tflite \
      --quantize=int8 --input_size=256x256
  # -> savedmodels/nyu_focus2m/tflite/1/model.tflite (+ d3tf_metadata.json)

What an export holds (camera, training data, d3tf version, samples,
signatures)::

  python -m d3tf.export --inspect savedmodels/nyu_focus2m       # latest version
  python -m d3tf.export --inspect savedmodels/nyu_focus2m/tflite/1/model.tflite

Signatures: ``serving_default`` takes ``images`` (uint8 [batch, height,
width, 3], any size) and returns ``depth`` (metres, [batch, height, width])
and, with ``--samples`` T > 1, ``depth_std``; ``predict_encoded`` (SavedModel
only) takes ``image_bytes`` (encoded JPEG/PNG strings [batch], one size), as
TF Serving's REST API sends ``{"b64": ...}`` values. A model with MC dropout
draws 20 samples per prediction unless ``--samples`` says otherwise
(``--samples=1``: one deterministic pass, no ``depth_std``).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging

from d3tf import artifacts
from d3tf.artifacts import model_dir
from d3tf.data import calibration as calibration_lib

_MODEL = flags.DEFINE_string(
    "model", None, "Trained model to export: a model_dir of d3tf.train or a .keras file with "
    "d3tf_metadata.json beside it.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "auto", list(model_dir.CHECKPOINTS),
                                model_dir.CHECKPOINT_HELP)
_NAME = flags.DEFINE_string("name", None, "Model name: the export goes to "
                            "EXPORT_DIR/NAME/VERSION (TFLite: EXPORT_DIR/NAME/tflite/VERSION).")
_VERSION = flags.DEFINE_integer("version", None, "Version number to write; default the next "
                                "free one. An existing version is never overwritten.",
                                lower_bound=1)
_EXPORT_DIR = flags.DEFINE_string("export_dir", "savedmodels", "Folder of the exports (TF "
                                  "Serving's model base paths are its sub-folders).")
_SAMPLES = flags.DEFINE_integer(
    "samples", None, "Monte-Carlo samples T drawn per prediction (in one batched pass, dropout "
    "on); T > 1 adds the output depth_std. Default: 20 for a model with MC dropout or Bayesian "
    "layers, else 1.", lower_bound=1)
_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"],
                            "saved_model (for TF Serving) or tflite (for LiteRT).")
_QUANTIZE = flags.DEFINE_enum(
    "quantize", "float32", ["float32", "float16", "int8"],
    "TFLite only: float32 (none), float16 (float16 weights) or int8 (weights and activations, "
    "calibrated on procedural scenes defocused by the model's camera).")
_INPUT_SIZE = flags.DEFINE_string(
    "input_size", "any", "TFLite only: HEIGHTxWIDTH (e.g. 256x256) for a fixed input of one "
    "image [1, H, W, 3], or 'any' for any batch and size (dynamic shapes, builtin ops).")
_CALIBRATION = flags.DEFINE_integer("calibration_examples",
                                    calibration_lib.DEFAULT_CALIBRATION_EXAMPLES,
                                    "TFLite int8 only: procedural "
                                    "scenes that calibrate the quantisation.", lower_bound=1)
_INSPECT = flags.DEFINE_string(
    "inspect", None, "Instead of exporting, log what an export holds: a version folder, a "
    "model's export folder (latest version) or a .tflite file.")


def _export(input_size) -> str:
  """Loads the model, makes int8 calibration scenes if asked, and exports it."""
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top
  fmt = _FORMAT.value
  base = artifacts.exports.base_dir(_EXPORT_DIR.value, _NAME.value, fmt)  # Checks the name.
  if _VERSION.value is not None:  # Refuse an existing version before any work.
    artifacts.exports.version_dir(base, _VERSION.value, _NAME.value)
  model, path = inference.load_model(_MODEL.value, _CHECKPOINT.value)
  metadata = artifacts.read_metadata(path)
  logging.info("Exporting %s: %s", path, metadata.describe())
  calibration = None
  if fmt == "tflite" and _QUANTIZE.value == "int8":
    size = input_size or exporter.DEFAULT_CALIBRATION_SIZE
    calibration = calibration_lib.calibration_images(metadata.camera, size, _CALIBRATION.value,
                                                     **metadata.render_kwargs())
  return exporter.export_model(
      model, metadata, _NAME.value, export_dir=_EXPORT_DIR.value, fmt=fmt,
      version=_VERSION.value, samples=_SAMPLES.value, quantize=_QUANTIZE.value,
      input_size=input_size, calibration_images=calibration,
      calibration_source="procedural train scenes", source=os.path.abspath(path))


def main(argv):
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _INSPECT.value is not None:
    try:
      ref, meta = artifacts.read_export(_INSPECT.value)
    except (FileNotFoundError, ValueError) as e:
      raise app.UsageError(f"--inspect: {e}") from None
    for line in artifacts.describe_export(ref, meta).splitlines():
      logging.info("%s", line)
    return
  if _MODEL.value is None or _NAME.value is None:
    raise app.UsageError("--model and --name are required (or --inspect PATH)")
  if _FORMAT.value == "saved_model" and (_QUANTIZE.value != "float32" or
                                         _INPUT_SIZE.value.strip().lower() != "any"):
    raise app.UsageError(f"--quantize={_QUANTIZE.value} and --input_size={_INPUT_SIZE.value} "
                         "apply to --format=tflite only (a SavedModel is float32 and takes any "
                         "size)")
  try:
    input_size = exporter.parse_input_size(_INPUT_SIZE.value)
  except ValueError as e:
    raise app.UsageError(f"--input_size: {e}") from None
  try:
    path = _export(input_size)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  ref, meta = artifacts.read_export(path)
  for line in artifacts.describe_export(ref, meta).splitlines():
    logging.info("%s", line)


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
