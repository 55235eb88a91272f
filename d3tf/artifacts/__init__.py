"""What d3tf writes and reads back: model metadata, the model_dir and the export layouts.

The floor that training, inference and serving share (it imports only
:mod:`d3tf.optics`, and TensorFlow only to check render options):

* :mod:`d3tf.artifacts.metadata`: :class:`Metadata`, the versioned
  ``d3tf_metadata.json`` of a trained model or an export;
* :mod:`d3tf.artifacts.model_dir`: the file names of a model_dir and
  :func:`resolve_model_path`;
* :mod:`d3tf.artifacts.exports`: TF Serving's version folders, finding and
  describing an export.
"""

from d3tf.artifacts.exports import describe_export
from d3tf.artifacts.exports import ExportRef
from d3tf.artifacts.exports import find_export
from d3tf.artifacts.exports import list_versions
from d3tf.artifacts.exports import next_version
from d3tf.artifacts.exports import read_export
from d3tf.artifacts.metadata import describe
from d3tf.artifacts.metadata import INPUT_KINDS
from d3tf.artifacts.metadata import Metadata
from d3tf.artifacts.metadata import METADATA_FILENAME
from d3tf.artifacts.metadata import metadata_path
from d3tf.artifacts.metadata import read_metadata
from d3tf.artifacts.metadata import SCHEMA_VERSION
from d3tf.artifacts.metadata import write_metadata
from d3tf.artifacts.model_dir import BEST_MODEL_FILENAME
from d3tf.artifacts.model_dir import CHECKPOINTS
from d3tf.artifacts.model_dir import FINAL_MODEL_FILENAME
from d3tf.artifacts.model_dir import resolve_model_path

__all__ = [
    "BEST_MODEL_FILENAME", "CHECKPOINTS", "describe", "describe_export", "ExportRef",
    "FINAL_MODEL_FILENAME", "find_export", "INPUT_KINDS", "list_versions", "Metadata",
    "METADATA_FILENAME", "metadata_path", "next_version", "read_export", "read_metadata",
    "resolve_model_path", "SCHEMA_VERSION", "write_metadata",
]
