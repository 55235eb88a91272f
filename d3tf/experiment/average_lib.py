"""Averages the weights of several checkpoints of one network into one model.

Checkpoints of one training lineage (a run's best and final models, a run and
its continuation from one of them) sit in one basin of the loss, and the
average of their weights is often better than each, and steadier across test
conditions (stochastic weight averaging, Izmailov et al. 2018; "model soups",
Wortsman et al. 2022). ``python -m d3tf.average`` (:func:`run_average`)
writes the average as a model_dir that every d3tf command reads:

* ``model.keras``: the weighted mean of every weight, the batch norm's moving
  statistics included (recomputing them on training batches was tried on the
  camera-aware model and changed nothing for the better: docs/training.md);
* ``d3tf_metadata.json``: the first ingredient's, with ``averaged_from`` (each
  ingredient's model file and coefficient) added; the ingredients must agree
  on everything the metadata says about inputs (camera, input kind, PSF,
  render options, model config), or averaging is refused; a camera-aware
  ingredient may have been trained on another camera range than the first
  (e.g. a run on one family of cameras, from the first), as long as every
  family of its range is one of the first's (the same box, any weight): the
  first ingredient's range, which the average keeps, then holds every camera
  any ingredient was trained on;
* ``config.json``: the first ingredient's (where it is a model_dir), so that
  ``--init_from`` and fine-tuning read it as any run's.

An ingredient may also be a d3tf SavedModel export (a version folder or a
model's export folder, e.g. ``savedmodels/d3tf_anycamera/3``): its Keras model
is rebuilt from the export (:mod:`d3tf.serving.keras_restore`), so a shipped
model and a run trained on from it can be averaged without the shipped
model's run folder. The ``export`` entry of its metadata is dropped from the
average's.

Averaging models of different networks (shapes) or of unrelated trainings
(different initialisations: their average is no model at all) is the user's
to avoid: shapes are checked, lineage cannot be.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from typing import Any, Sequence

import numpy as np
from absl import logging

from d3tf import artifacts
from d3tf import atomic_io

#: Keys of ``d3tf_metadata.json`` on which every ingredient must agree (what the model expects
#: as input). ``camera_range``, a run fact of camera-aware models, is checked by family.
MUST_AGREE = ("input", "camera", "psf", "render_options", "model_config")
#: Where the average writes its model.
MODEL_FILENAME = artifacts.FINAL_MODEL_FILENAME


def normalised_coefficients(coefficients: Sequence[float] | None, count: int) -> list[float]:
  """The ingredients' coefficients, summing to one (default: equal).

  Args:
    coefficients: One non-negative number per ingredient, not all zero, or
      None for the plain mean.
    count: Number of ingredients (at least 2).

  Raises:
    ValueError: fewer than 2 ingredients, a count that differs, a negative
      or non-finite coefficient or all zero, naming the values.
  """
  if count < 2:
    raise ValueError(f"averaging needs at least 2 models (--model repeated), got {count}")
  if coefficients is None:
    return [1.0 / count] * count
  values = [float(c) for c in coefficients]
  if len(values) != count:
    raise ValueError(f"--coefficients has {len(values)} values ({values}) for {count} models")
  if any(not math.isfinite(c) or c < 0 for c in values) or not sum(values) > 0:
    raise ValueError(f"--coefficients must be finite, >= 0 and not all 0, got {values}")
  total = sum(values)
  return [c / total for c in values]


def average_weights(weight_lists: Sequence[Sequence[np.ndarray]],
                    coefficients: Sequence[float]) -> list[np.ndarray]:
  """``sum_i coefficients[i] * weight_lists[i]``, weight by weight, in each weight's dtype.

  Raises:
    ValueError: the lists differ in length or in a weight's shape, naming
      the weight's position and the shapes.
  """
  first = weight_lists[0]
  for n, weights in enumerate(weight_lists[1:], start=2):
    if len(weights) != len(first):
      raise ValueError(f"model {n} has {len(weights)} weights, model 1 has {len(first)}: not "
                       "the same network")
    for k, (a, b) in enumerate(zip(first, weights)):
      if np.shape(a) != np.shape(b):
        raise ValueError(f"weight {k} has shape {np.shape(b)} in model {n} and {np.shape(a)} in "
                         "model 1: not the same network")
  averaged = []
  for k, reference in enumerate(first):
    total = sum(c * np.asarray(w[k], np.float64) for c, w in zip(coefficients, weight_lists))
    averaged.append(np.asarray(total, dtype=np.asarray(reference).dtype))
  return averaged


def check_metadata_agree(metas: Sequence[artifacts.Metadata], paths: Sequence[str]) -> None:
  """Refuses ingredients whose metadata describe different inputs, naming the field and files.

  Raises:
    ValueError: a key of :data:`MUST_AGREE` differs, or an ingredient's
      camera range has a family that the first ingredient's lacks (or only
      one of the two has a range).
  """
  first = metas[0].to_dict()
  for meta, path in zip(metas[1:], paths[1:]):
    other = meta.to_dict()
    _check_camera_range_inside(other.get("camera_range"), first.get("camera_range"), path,
                               paths[0])
    for key in MUST_AGREE:
      if first.get(key) != other.get(key):
        raise _differ(key, other.get(key), first.get(key), path, paths[0])


def _differ(key: str, value: Any, first_value: Any, path: str, first_path: str) -> ValueError:
  """The error for a metadata field ``key`` on which ``path`` and the first ingredient differ."""
  return ValueError(f"{path} and {first_path} differ in their metadata's {key} ({value!r} vs "
                    f"{first_value!r}): only checkpoints of one network trained for the same "
                    "inputs can be averaged")


def _check_camera_range_inside(inner: Any, outer: Any, inner_path: str, outer_path: str) -> None:
  """Refuses a camera range (JSON) with a family the first ingredient's range lacks."""
  if inner is None and outer is None:
    return
  if inner is None or outer is None:
    raise _differ("camera_range", inner, outer, inner_path, outer_path)

  def boxes(camera_range):
    return {json.dumps({k: v for k, v in family.items() if k != "weight"}, sort_keys=True):
            family.get("name") for family in camera_range.get("families", [])}

  outer_boxes = boxes(outer)
  missing = [name for box, name in boxes(inner).items() if box not in outer_boxes]
  same_bounds = all(inner.get(k) == outer.get(k) for k in ("max_blur_px", "depth_range_m"))
  if missing or not same_bounds:
    raise ValueError(f"{inner_path} was trained on camera range {inner.get('name')!r}, whose "
                     f"{'families ' + ', '.join(map(repr, missing)) if missing else 'blur bound'}"
                     f" the first ingredient's range ({outer_path}: {outer.get('name')!r}) "
                     "lacks: the average keeps the first ingredient's range, which must hold "
                     "every camera the ingredients were trained on; put the widest range first")


def run_average(model_paths: Sequence[str], output_dir: str, *, checkpoint: str = "best",
                coefficients: Sequence[float] | None = None,
                overwrite: bool = False) -> dict[str, Any]:
  """Averages the ingredients' weights and writes a model_dir (see the module docstring).

  Args:
    model_paths: The ingredients: model_dirs (their ``checkpoint``) or
      ``.keras`` files, at least 2.
    output_dir: The model_dir to write.
    checkpoint: ``"best"``, ``"final"`` or ``"auto"`` for model_dirs.
    coefficients: One weight per ingredient (normalised to sum to one);
      None for the plain mean.
    overwrite: Replace an existing ``model.keras`` in ``output_dir``.

  Returns:
    What was written: ``output_dir``, ``model`` (its path), ``ingredients``
    (model file and coefficient each).

  Raises:
    FileNotFoundError: an ingredient or its metadata is missing.
    FileExistsError: ``output_dir`` holds a model and ``overwrite`` is off.
    ValueError: bad coefficients, different networks or metadata.
  """
  weights = normalised_coefficients(coefficients, len(model_paths))
  target = os.path.join(output_dir, MODEL_FILENAME)
  if os.path.exists(target) and not overwrite:
    raise FileExistsError(f"{target} exists: choose another --output_dir, or --overwrite")
  ingredients = [_Ingredient.resolve(p, checkpoint) for p in model_paths]
  files = [ingredient.path for ingredient in ingredients]
  if len(set(map(os.path.realpath, files))) < len(files):
    raise ValueError(f"the same model file is given twice: {files}")
  metas = [ingredient.metadata() for ingredient in ingredients]
  check_metadata_agree(metas, files)
  model, weight_lists = None, []
  for n, (path, ingredient) in enumerate(zip(files, ingredients), start=1):
    loaded = ingredient.load()
    weight_lists.append(loaded.get_weights())
    logging.info("Ingredient %d/%d: %s (coefficient %.4g, %d weights)", n, len(files), path,
                 weights[n - 1], len(weight_lists[-1]))
    model = model or loaded
  model.set_weights(average_weights(weight_lists, weights))
  os.makedirs(output_dir, exist_ok=True)
  averaged_from = [{"model": f, "coefficient": c} for f, c in zip(files, weights)]
  meta = dataclasses.replace(metas[0], extra={**metas[0].extra, "averaged_from": averaged_from})
  source_config = os.path.join(os.path.dirname(files[0]), artifacts.model_dir.CONFIG_FILENAME)
  if ingredients[0].export is None and os.path.isfile(source_config):
    shutil.copyfile(source_config, os.path.join(output_dir, artifacts.model_dir.CONFIG_FILENAME))
  artifacts.write_metadata(output_dir, meta)
  atomic_io.save_model(model, target)
  logging.info("Wrote the average of %d models to %s", len(files), target)
  return {"output_dir": output_dir, "model": target, "ingredients": averaged_from}


@dataclasses.dataclass(frozen=True)
class _Ingredient:
  """One model to average: a ``.keras`` file, or a SavedModel export's version folder."""

  path: str
  export: artifacts.ExportRef | None = None

  @classmethod
  def resolve(cls, path: str, checkpoint: str) -> "_Ingredient":
    """A model_dir or ``.keras`` file (its ``checkpoint``), or an export folder."""
    ref = artifacts.find_export(path) if os.path.isdir(path) else None
    if ref is not None:
      return cls(ref.path, ref)
    return cls(artifacts.resolve_model_path(path, checkpoint))

  def metadata(self) -> artifacts.Metadata:
    """The ingredient's metadata; an export's without its ``export`` entry."""
    if self.export is None:
      return artifacts.read_metadata(self.path)
    return dataclasses.replace(artifacts.read_metadata(self.export.metadata_path), export=None)

  def load(self):
    """The ingredient's Keras model (an export's rebuilt from its variables)."""
    if self.export is None:
      from d3tf.inference import keras_predictor  # pylint: disable=g-import-not-at-top
      return keras_predictor.load_model(self.path)[0]
    from d3tf.serving import keras_restore  # pylint: disable=g-import-not-at-top
    return keras_restore.keras_model_from_export(self.path)[0]
