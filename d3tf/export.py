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

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_export_flags()
FLAGS = flags.FLAGS


def main(argv):
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.inspect is not None:
    try:
      ref, meta = artifacts.read_export(FLAGS.inspect)
    except (FileNotFoundError, ValueError) as e:
      raise app.UsageError(f"--inspect: {e}") from None
    for line in artifacts.describe_export(ref, meta).splitlines():
      logging.info("%s", line)
    return
  if FLAGS.model is None or FLAGS.name is None:
    raise app.UsageError("--model and --name are required (or --inspect PATH)")
  if FLAGS.format == "saved_model" and (FLAGS.quantize != "float32" or
                                        FLAGS.input_size.strip().lower() != "any"):
    raise app.UsageError(f"--quantize={FLAGS.quantize} and --input_size={FLAGS.input_size} "
                         "apply to --format=tflite only (a SavedModel is float32 and takes any "
                         "size)")
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top
  try:
    input_size = exporter.parse_input_size(FLAGS.input_size)
  except ValueError as e:
    raise app.UsageError(f"--input_size: {e}") from None
  try:
    path = export_lib.run_export(
        FLAGS.model, FLAGS.name, export_dir=FLAGS.export_dir, fmt=FLAGS.format,
        version=FLAGS.version, samples=FLAGS.samples, quantize=FLAGS.quantize,
        input_size=input_size, checkpoint=FLAGS.checkpoint,
        calibration_examples=FLAGS.calibration_examples)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  ref, meta = artifacts.read_export(path)
  for line in artifacts.describe_export(ref, meta).splitlines():
    logging.info("%s", line)


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
