"""A SavedModel export back into a Keras model: fine-tune or re-export a shipped model.

An export of :func:`d3tf.serving.exporter.export_saved_model` tracks the
model's variables as one list, ``model_variables``, in the order of
``model.variables`` (:class:`d3tf.serving.graph.ExportModule`), and its
metadata holds the network's ``model_config``. Building that D3-Net afresh
gives the same variables in the same order, so the export's values go back
one by one; every count and shape is checked, so a mismatch (an export of
another architecture or of a d3tf whose layers were built in another order)
fails loudly instead of loading scrambled weights.

``python -m d3tf.train --init_from=savedmodels/d3tf_anycamera`` uses this: a
user can fine-tune the shipped models on their own data without the run
folders they were trained in.
"""

from __future__ import annotations

import os

from absl import logging
import keras
import tensorflow as tf

from d3tf import artifacts

#: The checkpoint key of the export's ``i``-th model variable.
_VARIABLE_KEY = "model_variables/{}/.ATTRIBUTES/VARIABLE_VALUE"


def keras_model_from_export(path: str | os.PathLike) -> tuple[keras.Model, artifacts.Metadata]:
  """The Keras model (and metadata) of a d3tf SavedModel export.

  Args:
    path: A SavedModel version folder, or a model's export folder (its latest
      version), as :func:`d3tf.artifacts.find_export` accepts.

  Returns:
    ``(model, metadata)``: a freshly built D3-Net holding the export's
    weights (BatchNormalization statistics included), and the export's
    metadata.

  Raises:
    FileNotFoundError: ``path`` holds no export (naming it).
    ValueError: a TFLite export, metadata without ``model_config``, or
      variables whose count or shapes differ from the rebuilt network's
      (naming the export and the first mismatch).
  """
  from d3tf.models import d3net  # pylint: disable=g-import-not-at-top
  ref, meta = artifacts.read_export(path)
  if ref.kind != "saved_model":
    raise ValueError(f"{ref.path}: a {ref.kind} export; only a SavedModel export holds weights "
                     "that can be trained on")
  if not meta.model_config:
    raise ValueError(f"{ref.metadata_path}: no model_config in the metadata; the network "
                     "cannot be rebuilt")
  model = d3net.build_d3net(d3net.D3NetConfig.from_dict(dict(meta.model_config)))
  reader = tf.train.load_checkpoint(os.path.join(ref.path, "variables", "variables"))
  shapes = reader.get_variable_to_shape_map()
  count = sum(1 for key in shapes if key.startswith("model_variables/"))
  if count != len(model.variables):
    raise ValueError(f"{ref.path}: the export holds {count} model variables, the network of its "
                     f"model_config {len(model.variables)}")
  for i, variable in enumerate(model.variables):
    key = _VARIABLE_KEY.format(i)
    if key not in shapes or tuple(shapes[key]) != tuple(variable.shape):
      raise ValueError(f"{ref.path}: model variable {i} ({variable.path}) has shape "
                       f"{tuple(variable.shape)} in the network, "
                       f"{tuple(shapes[key]) if key in shapes else 'none'} in the export")
    variable.assign(reader.get_tensor(key))
  logging.info("Rebuilt the Keras model of %s (%d variables)", ref.path, count)
  return model, meta
