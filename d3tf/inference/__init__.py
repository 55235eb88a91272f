"""Predicting depth from trained models and exports: every predictor and the one loader.

Typical use::

  predictor = inference.load_predictor("runs/nyu_focus2m")  # or .keras, or an export
  out = predictor.predict(images)                            # uint8 [B, H, W, 3]
  out["depth"]                                               # float32 [B, H, W] metres
  out = predictor.predict(images, samples=20)                # + out["depth_std"], ...

* :class:`Predictor`: a Keras model (model_dir or ``.keras``);
* :class:`SavedModelPredictor`, :class:`TFLitePredictor`: exports of
  ``d3tf.export``, same interface;
* :func:`load_predictor`: any of those paths -> the right predictor;
* :class:`FlipAveragingPredictor`: any of them, each image's depth averaged
  with its mirror image's (``load_predictor(..., flip_average=True)``).

What a model expects (camera, input kind) is its
:class:`d3tf.artifacts.Metadata`, ``predictor.metadata``. Importing this
package is cheap: TensorFlow is imported on first use.
"""

from d3tf.inference.export_predictors import SavedModelPredictor
from d3tf.inference.export_predictors import TFLitePredictor
from d3tf.inference.flip_average import FlipAveragingPredictor
from d3tf.inference.keras_predictor import DEFAULT_MAX_BATCH_PIXELS
from d3tf.inference.keras_predictor import load_model
from d3tf.inference.keras_predictor import pad_to_multiple
from d3tf.inference.keras_predictor import Predictor
from d3tf.inference.loader import load_predictor

__all__ = ["DEFAULT_MAX_BATCH_PIXELS", "FlipAveragingPredictor", "load_model", "load_predictor",
           "pad_to_multiple", "Predictor", "SavedModelPredictor", "TFLitePredictor"]
