"""The one loader: any trained model or export path -> a predictor."""

from __future__ import annotations

import os

from absl import logging

from d3tf import artifacts
from d3tf.inference import export_predictors
from d3tf.inference import flip_average as flip_average_lib
from d3tf.inference import keras_predictor


def load_predictor(path: str | os.PathLike, *, checkpoint: str = "auto",
                   require_metadata: bool = True,
                   max_batch_pixels: int = keras_predictor.DEFAULT_MAX_BATCH_PIXELS,
                   flip_average: bool = False):
  """Loads a trained model or an export, with its metadata, into a predictor.

  Args:
    path: A model_dir (``model.keras`` / ``best.keras`` +
      ``d3tf_metadata.json``) or a ``.keras`` file with the metadata beside
      it (a :class:`~d3tf.inference.Predictor`); or an export of
      ``d3tf.export``: a SavedModel version folder, a model's export folder
      (its latest version) or a ``.tflite`` file (a
      :class:`~d3tf.inference.SavedModelPredictor` or
      :class:`~d3tf.inference.TFLitePredictor`, same interface).
    checkpoint: ``"auto"`` (``model.keras``, else ``best.keras``),
      ``"final"`` or ``"best"``, for a model_dir.
    require_metadata: If False, a missing metadata file beside a Keras model
      is only a warning (the model is then taken to expect all-in-focus
      input).
    max_batch_pixels: Pixel budget of one forward pass.
    flip_average: Wrap the predictor in a
      :class:`~d3tf.inference.FlipAveragingPredictor` (each image's depth
      averaged with its mirror image's).

  Returns:
    The predictor.

  Raises:
    FileNotFoundError: missing model file or (with ``require_metadata``)
      metadata, naming the path.
    ValueError: corrupt model file or metadata, naming it.
  """
  predictor = _load(path, checkpoint, require_metadata, max_batch_pixels)
  if flip_average:
    logging.info("Flip test-time averaging: each image and its mirror image, averaged")
    return flip_average_lib.FlipAveragingPredictor(predictor)
  return predictor


def _load(path, checkpoint: str, require_metadata: bool, max_batch_pixels: int):
  """The predictor of :func:`load_predictor`, unwrapped."""
  ref = artifacts.find_export(path)
  if ref is not None:
    return export_predictors.load_export_predictor(ref, max_batch_pixels=max_batch_pixels)
  model, model_path = keras_predictor.load_model(path, checkpoint)
  try:
    meta = artifacts.read_metadata(model_path)
  except FileNotFoundError:
    if require_metadata:
      raise
    logging.warning("%s: no %s beside the model; assuming all-in-focus input", model_path,
                    artifacts.METADATA_FILENAME)
    meta = None
  predictor = keras_predictor.Predictor(model, meta, path=model_path,
                                        max_batch_pixels=max_batch_pixels)
  logging.info("Loaded %s: %s", model_path, artifacts.describe(meta))
  return predictor
