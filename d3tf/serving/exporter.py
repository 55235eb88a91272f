"""Exports trained models for TF Serving (SavedModel) and LiteRT (TFLite).

Layout under an export folder (``savedmodels/`` by default), TF Serving's::

  savedmodels/NAME/1/saved_model.pb            SavedModel, version 1
  savedmodels/NAME/1/variables/...
  savedmodels/NAME/1/assets.extra/d3tf_metadata.json
  savedmodels/NAME/2/...                        the next version
  savedmodels/NAME/tflite/1/model.tflite        TFLite exports, their own versions
  savedmodels/NAME/tflite/1/d3tf_metadata.json

TF Serving, given ``savedmodels/NAME`` as its model base path, serves the
integer-named folders (the latest by default) and ignores ``tflite/``.
Versions are never overwritten: a new export takes the next free number, or
the one asked for if it is free. An export is written into a hidden folder
beside its target and renamed into place when complete, so that a running
TF Serving never sees half a version.

``d3tf_metadata.json`` is the model's training metadata (camera, PSF, render
options, model config, training data, d3tf version; see
:mod:`d3tf.inference`) plus an ``"export"`` entry describing the export
(format, version, samples, outputs, signatures, quantisation, input size,
source model, d3tf version and time of export).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import tempfile
from typing import Any, Callable, Mapping
import warnings

from absl import logging
import numpy as np

from d3tf import inference
from d3tf.serving import protocol

SAVED_MODEL_FILENAME = "saved_model.pb"
TFLITE_FILENAME = "model.tflite"
#: Sub-folder of a model's base folder that holds its TFLite versions.
TFLITE_SUBDIR = "tflite"
#: Where a SavedModel export keeps its metadata (TF Serving's folder for extras).
ASSETS_EXTRA = "assets.extra"
FORMATS = ("saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "int8")
#: Default Monte-Carlo samples of an export of a stochastic model.
DEFAULT_STOCHASTIC_SAMPLES = 20
#: Default number of procedural scenes that calibrate int8 quantisation.
DEFAULT_CALIBRATION_EXAMPLES = 16
#: Calibration image size of a TFLite model that takes any size.
DEFAULT_CALIBRATION_SIZE = (256, 256)
# Ops that compute the Monte-Carlo statistics; int8 export keeps them in float
# (a standard deviation of millimetres does not survive an int8 grid).
_FLOAT_STATISTICS_OPS = ("MEAN", "SQUARED_DIFFERENCE", "SQRT", "SQUARE", "EXP", "ADD")
# Layers whose ops int8 export keeps in float: the band-pass sharpness maps are
# ratios of band RMS values of a few thousandths, which an int8 grid rounds to
# zero (TFLite's int8 DIV then aborts on a zero divisor).
_FLOAT_LAYER_NODES = re.compile(r"/bandpass_sharpness(_\d+)?/")
_VERSION_RE = re.compile(r"^\d+$")


# ---------------------------------------------------------------- versions
def list_versions(base_dir: str | os.PathLike) -> list[int]:
  """Integer version folders of a model base folder, ascending (empty if none or no folder)."""
  base_dir = os.fspath(base_dir)
  if not os.path.isdir(base_dir):
    return []
  return sorted(int(name) for name in os.listdir(base_dir)
                if _VERSION_RE.match(name) and os.path.isdir(os.path.join(base_dir, name)))


def next_version(base_dir: str | os.PathLike) -> int:
  """One more than the highest version in ``base_dir`` (1 for a new model)."""
  versions = list_versions(base_dir)
  return versions[-1] + 1 if versions else 1


def _version_dir(base_dir: str, version: int | None, name: str) -> tuple[str, int]:
  """The folder of the version to write, refusing an existing one."""
  if version is None:
    version = next_version(base_dir)
  if isinstance(version, bool) or int(version) != version or version < 1:
    raise ValueError(f"version must be an integer >= 1, got {version!r}")
  version = int(version)
  for existing in list_versions(base_dir):
    if existing == version:
      raise FileExistsError(
          f"{os.path.join(base_dir, str(version))}: version {version} of {name} exists already; "
          f"exports never overwrite a version (omit --version to write version "
          f"{next_version(base_dir)}, or delete that folder)")
  return os.path.join(base_dir, str(version)), version


def _publish(staging: str, target: str) -> None:
  """Renames a complete export into place (atomic on one file system)."""
  if os.path.exists(target):
    raise FileExistsError(f"{target}: appeared while exporting; not overwritten (the export is "
                          f"left in {staging})")
  os.rename(staging, target)


# ---------------------------------------------------------------- metadata
def _json_ready(value: Any) -> Any:
  return json.loads(json.dumps(value, default=str))


def export_metadata(metadata: Mapping[str, Any] | None, export_info: Mapping[str, Any]
                    ) -> dict[str, Any]:
  """The training metadata with an ``"export"`` entry (see the module docstring)."""
  import d3tf  # pylint: disable=g-import-not-at-top
  meta = dict(metadata) if metadata else {
      "camera": None, "psf": None, "render_options": None, "model_config": None,
      "input": "sharp", "train_data": None, "d3tf_version": None}
  info = dict(export_info)
  info.setdefault("d3tf_version", d3tf.__version__)
  info.setdefault("exported_at", datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
  meta["export"] = _json_ready(info)
  return meta


def _write_json(path: str, value: Mapping[str, Any]) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(value, f, indent=2)


# ------------------------------------------------------- finding an export
@dataclasses.dataclass(frozen=True)
class ExportRef:
  """Where an export lives.

  Attributes:
    kind: ``"saved_model"`` or ``"tflite"``.
    path: The SavedModel version folder, or the ``.tflite`` file.
    metadata_path: Its ``d3tf_metadata.json``.
    version: The version number (None for a ``.tflite`` file outside a
      version folder).
  """

  kind: str
  path: str
  metadata_path: str
  version: int | None


def _ref_in(folder: str) -> ExportRef | None:
  """The export held directly in ``folder`` (a version folder), if any."""
  name = os.path.basename(os.path.normpath(folder))
  version = int(name) if _VERSION_RE.match(name) else None
  if os.path.isfile(os.path.join(folder, SAVED_MODEL_FILENAME)):
    return ExportRef("saved_model", folder, os.path.join(
        folder, ASSETS_EXTRA, inference.METADATA_FILENAME), version)
  if os.path.isfile(os.path.join(folder, TFLITE_FILENAME)):
    return ExportRef("tflite", os.path.join(folder, TFLITE_FILENAME),
                     os.path.join(folder, inference.METADATA_FILENAME), version)
  return None


def find_export(path: str | os.PathLike) -> ExportRef | None:
  """The export that ``path`` names, or None when it is no export.

  Accepted: a ``.tflite`` file; a version folder (``saved_model.pb`` or
  ``model.tflite`` inside); a model base folder (its latest complete
  SavedModel version, else its latest TFLite version under ``tflite/``); a
  ``tflite/`` folder (its latest version).

  Raises:
    FileNotFoundError: a ``.tflite`` path that does not exist.
  """
  path = os.fspath(path)
  if path.endswith(".tflite"):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"{path}: no such TFLite file")
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(folder)
    return ExportRef("tflite", path, os.path.join(folder, inference.METADATA_FILENAME),
                     int(name) if _VERSION_RE.match(name) else None)
  if not os.path.isdir(path):
    return None
  ref = _ref_in(path)
  if ref is not None:
    return ref
  for base in (path, os.path.join(path, TFLITE_SUBDIR)):
    for version in reversed(list_versions(base)):
      ref = _ref_in(os.path.join(base, str(version)))
      if ref is not None:
        return ref
  return None


def read_export(path: str | os.PathLike) -> tuple[ExportRef, dict[str, Any]]:
  """The export at ``path`` and its metadata.

  Raises:
    FileNotFoundError: ``path`` holds no export, or the export has no
      metadata (naming the paths).
    ValueError: corrupt metadata, naming the file.
  """
  ref = find_export(path)
  if ref is None:
    raise FileNotFoundError(
        f"{os.fspath(path)}: no d3tf export there (expected a .tflite file, a version folder "
        f"with {SAVED_MODEL_FILENAME} or {TFLITE_FILENAME}, or a model folder of integer version "
        "folders)")
  return ref, inference.read_metadata(ref.metadata_path)


def _camera_text(camera: Mapping[str, Any] | None) -> str:
  if not camera:
    return "none (the model takes all-in-focus images)"
  return (f"focal length {camera['focal_length_m'] * 1e3:g} mm, f-number {camera['f_number']:g}, "
          f"pixel pitch {camera['pixel_pitch_m'] * 1e6:g} um, focus distance "
          f"{camera['focus_distance_m']:g} m")


def describe_export(ref: ExportRef, meta: Mapping[str, Any]) -> str:
  """Human-readable lines about an export: camera, training data, versions, interface."""
  info = meta.get("export") or {}
  kind = {"saved_model": "SavedModel", "tflite": "TFLite"}[ref.kind]
  version = ref.version if ref.version is not None else "-"
  lines = [f"Export: {ref.path} ({kind}, version {version})",
           f"Input: {inference.describe_metadata(meta)}",
           f"Camera: {_camera_text(meta.get('camera'))}"]
  if meta.get("camera"):
    options = meta.get("render_options") or {}
    lines.append(f"Defocus rendering in training: {meta.get('psf') or 'gaussian'} PSF, mode "
                 f"{options.get('mode', 'improved')}")
  extras = {k: meta[k] for k in ("crop_size", "loss", "real_defocus") if k in meta}
  lines.append(f"Training data: {meta.get('train_data') or 'not recorded'}"
               + (f" ({', '.join(f'{k} {v}' for k, v in extras.items())})" if extras else ""))
  if meta.get("model_config"):
    lines.append(f"Model config: {json.dumps(meta['model_config'], sort_keys=True)}")
  lines.append(f"Trained with d3tf {meta.get('d3tf_version') or '?'}; exported with d3tf "
               f"{info.get('d3tf_version', '?')} at {info.get('exported_at', '?')} from "
               f"{info.get('source', '?')}")
  samples = info.get("samples", 1)
  lines.append(f"Samples per prediction: {samples}"
               + (f" ({info.get('uncertainty')})" if samples > 1 else " (deterministic)"))
  for signature, spec in (info.get("signatures") or {}).items():
    lines.append(f"Signature {signature}: {spec['input']} -> {', '.join(spec['outputs'])}")
  if ref.kind == "tflite":
    lines.append(f"TFLite: {info.get('quantize')} weights, input size "
                 f"{info.get('input_size') or 'any'}, ops {', '.join(info.get('ops') or [])}")
  return "\n".join(lines)


# -------------------------------------------------------------- the model
def stochastic_kind(model, metadata: Mapping[str, Any] | None) -> str | None:
  """Where a model's randomness comes from (see :func:`d3tf.serving.graph.stochastic_kind`)."""
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top
  return graph.stochastic_kind(model, metadata)


def resolve_samples(model, metadata: Mapping[str, Any] | None, samples: int | None) -> int:
  """The number of samples to export: ``samples``, or the default for the model.

  Raises:
    ValueError: ``samples < 1``, or ``samples > 1`` for a model without
      sampling layers (MC dropout, variational) or Bayesian metadata.
  """
  kind = stochastic_kind(model, metadata)
  if samples is None:
    return DEFAULT_STOCHASTIC_SAMPLES if kind else 1
  if isinstance(samples, bool) or int(samples) != samples or samples < 1:
    raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
  if samples > 1 and kind is None:
    raise ValueError(f"samples={samples} needs Monte-Carlo sampling, but model "
                     f"{getattr(model, 'name', '')!r} has no MCDropout or variational layer and "
                     "its metadata does not say it is Bayesian; export with samples=1")
  return int(samples)


def _serving_graph(model, metadata, samples: int):
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top
  return graph.ServingGraph(model, samples,
                            aleatoric_factor=graph.aleatoric_std_factor(metadata, model))


def _output_spec(names) -> list[str]:
  return [f"{name}: float32 [batch, height, width]" for name in names]


def export_saved_model(model, metadata: Mapping[str, Any] | None, base_dir: str | os.PathLike, *,
                       version: int | None = None, samples: int | None = None,
                       source: str | None = None) -> str:
  """Exports a Keras model as a SavedModel version for TF Serving.

  Args:
    model: The Keras model (see :class:`d3tf.serving.graph.ServingGraph`).
    metadata: Its training metadata (:func:`d3tf.inference.read_metadata`),
      or None.
    base_dir: The model's base folder (``savedmodels/NAME``).
    version: Version to write (must not exist); default the next one.
    samples: Monte-Carlo samples T per prediction; default 20 for a model with
      sampling layers (MC dropout, variational) or Bayesian metadata, else 1.
    source: Where the model came from (recorded in the metadata).

  Returns:
    The version folder written.

  Raises:
    FileExistsError: the version exists.
    ValueError: bad ``version`` / ``samples``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top

  base_dir = os.fspath(base_dir)
  name = os.path.basename(os.path.normpath(base_dir))
  target, version = _version_dir(base_dir, version, name)
  samples = resolve_samples(model, metadata, samples)
  serving = _serving_graph(model, metadata, samples)
  signatures = serving.signatures()
  os.makedirs(base_dir, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{version}.export-", dir=base_dir)
  try:
    tf.saved_model.save(graph.ExportModule(model), staging, signatures=signatures)
    outputs = list(serving.output_names)
    info = {
        "format": "saved_model", "name": name, "version": version, "samples": samples,
        "uncertainty": stochastic_kind(model, metadata) if samples > 1 else None,
        "outputs": outputs, "source": source,
        "signatures": {
            protocol.SERVING_SIGNATURE: {
                "input": f"{protocol.IMAGES_INPUT}: uint8 [batch, height, width, 3]",
                "outputs": _output_spec(outputs)},
            protocol.ENCODED_SIGNATURE: {
                "input": f"{protocol.ENCODED_INPUT}: string [batch] (JPEG/PNG, one size)",
                "outputs": _output_spec(outputs)}},
    }
    _write_json(os.path.join(staging, ASSETS_EXTRA, inference.METADATA_FILENAME),
                export_metadata(metadata, info))
    _publish(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  logging.info("Exported SavedModel version %d of %s to %s (%d sample%s, outputs %s)", version,
               name, target, samples, "s" if samples > 1 else "", ", ".join(outputs))
  return target


# ------------------------------------------------------------------ TFLite
def parse_input_size(text: str | None) -> tuple[int, int] | None:
  """``"HxW"`` -> ``(H, W)``; ``"any"`` (or None / empty) -> None (any size).

  Raises:
    ValueError: anything else, echoing the text.
  """
  if text is None or str(text).strip().lower() in ("", "any"):
    return None
  match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
  if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
    raise ValueError(f"input size must be HEIGHTxWIDTH (e.g. 256x256) or 'any', got {text!r}")
  return int(match.group(1)), int(match.group(2))


def procedural_scenes(metadata: Mapping[str, Any] | None, size: tuple[int, int], count: int,
                      seed: int = 0, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
  """Procedural scenes as the model of ``metadata`` sees them, and their depth.

  Scenes of the procedural ``split``, defocused by the metadata's camera with
  its PSF and render options (sharp for an all-in-focus model), rendered at
  ``size`` rounded up to a multiple of 32, centre-cropped to ``size`` and
  quantised to uint8 as a camera delivers them.

  Returns:
    uint8 images ``[count, height, width, 3]`` and depth in metres ``[count,
    height, width]``.
  """
  from d3tf.data.pipeline import make_dataset  # pylint: disable=g-import-not-at-top
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"the number of scenes must be an integer >= 1, got {count!r}")
  height, width = size
  padded = (-(-height // 32) * 32, -(-width // 32) * 32)
  kwargs = inference.render_kwargs_from_metadata(metadata)
  psf = kwargs.pop("psf")
  camera = inference.camera_from_metadata(metadata)
  dataset = make_dataset("procedural", batch_size=1, crop_size=padded, camera=camera, psf=psf,
                         render_options=kwargs or None, augment=False, seed=seed, repeat=False,
                         split=split, procedural_options={"num_scenes": int(count)},
                         deterministic=True)
  top, left = (padded[0] - height) // 2, (padded[1] - width) // 2
  crop = lambda x: np.asarray(x)[0, top:top + height, left:left + width]
  images, depths = zip(*((crop(inputs), crop(depth)[..., 0])
                         for inputs, depth in dataset.as_numpy_iterator()))
  return (np.round(np.clip(np.stack(images), 0.0, 1.0) * 255.0).astype(np.uint8),
          np.stack(depths))


def calibration_images(metadata: Mapping[str, Any] | None, size: tuple[int, int],
                       count: int = DEFAULT_CALIBRATION_EXAMPLES, seed: int = 0) -> np.ndarray:
  """Representative inputs for int8 calibration: procedural training scenes.

  See :func:`procedural_scenes` (split ``train``).

  Returns:
    uint8 ``[count, height, width, 3]``.
  """
  if isinstance(count, bool) or int(count) != count or count < 1:
    raise ValueError(f"calibration examples must be an integer >= 1, got {count!r}")
  return procedural_scenes(metadata, size, count, seed, split="train")[0]


def convert_to_tflite(model, metadata: Mapping[str, Any] | None, samples: int, *,
                      quantize: str = "float32", input_size: tuple[int, int] | None = None,
                      calibration_examples: int = DEFAULT_CALIBRATION_EXAMPLES
                      ) -> tuple[bytes, list[str]]:
  """Converts a Keras model's serving graph to a TFLite flatbuffer of builtin ops only.

  Args:
    model: The Keras model.
    metadata: Its metadata (the camera for int8 calibration), or None.
    samples: Monte-Carlo samples T per prediction.
    quantize: ``"float32"`` (no quantisation), ``"float16"`` (float16
      weights) or ``"int8"`` (post-training integer quantisation of weights
      and activations, calibrated on procedural scenes; ops without an int8
      kernel and the Monte-Carlo statistics stay in float).
    input_size: ``(height, width)`` for a fixed ``[1, H, W, 3]`` input, or
      None for any size and batch.
    calibration_examples: Scenes that calibrate int8.

  Returns:
    ``(flatbuffer bytes, sorted op names of the model)``.

  Raises:
    ValueError: a bad ``quantize``, or a conversion that needs non-builtin
      (Flex / custom) ops.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top

  if quantize not in QUANTIZATIONS:
    raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")
  serving = _serving_graph(model, metadata, samples)
  signature = serving.tflite_signature(input_size)
  staging = tempfile.mkdtemp(prefix="d3tf-tflite-")
  try:
    tf.saved_model.save(graph.ExportModule(model), staging,
                        signatures={protocol.SERVING_SIGNATURE: signature})
    converter = tf.lite.TFLiteConverter.from_saved_model(
        staging, signature_keys=[protocol.SERVING_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "float16":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.target_spec.supported_types = [tf.float16]
    if quantize != "int8":
      flatbuffer = _convert(converter.convert)
    else:
      size = input_size or DEFAULT_CALIBRATION_SIZE
      images = calibration_images(metadata, size, calibration_examples)
      logging.info("Calibrating int8 on %d procedural scenes of %dx%d (%s)", len(images), *size,
                   inference.describe_metadata(metadata))

      def representative():
        for image in images:
          yield {protocol.IMAGES_INPUT: image[None]}

      # Nodes to keep in float, named in the float conversion (the same graph).
      float_nodes = (_float_layer_nodes(_convert(converter.convert))
                     if any(_FLOAT_LAYER_NODES.search(f"/{layer.name}/") for layer in model.layers)
                     else [])
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.representative_dataset = representative
      converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                             tf.lite.OpsSet.TFLITE_BUILTINS]
      # Keep the statistics in float: quantised, a std of millimetres
      # collapses, and TFLite's int8 SQUARED_DIFFERENCE aborts on a zero range.
      float_ops = ([] if set(serving.output_names) == {protocol.DEPTH}
                   else list(_FLOAT_STATISTICS_OPS))
      if not float_ops and not float_nodes:
        flatbuffer = _convert(converter.convert)
      else:
        def convert_selectively():
          debugger = tf.lite.experimental.QuantizationDebugger(
              converter=converter, debug_dataset=representative,
              debug_options=tf.lite.experimental.QuantizationDebugOptions(
                  denylisted_ops=float_ops, denylisted_nodes=float_nodes))
          return debugger.get_nondebug_quantized_model()

        flatbuffer = _convert(convert_selectively)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  ops = tflite_ops(flatbuffer)
  foreign = [op for op in ops if op.startswith("Flex") or op == "CUSTOM"]
  if foreign:
    raise ValueError(f"TFLite conversion needs non-builtin ops {foreign}; d3tf exports builtin "
                     "ops only")
  return flatbuffer, ops


def _float_layer_nodes(flatbuffer: bytes) -> list[str]:
  """Names of a float TFLite model's tensors made by the layers int8 keeps in float."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  return sorted({detail["name"] for detail in Interpreter(model_content=flatbuffer)
                 .get_tensor_details() if _FLOAT_LAYER_NODES.search(detail["name"])})


def _convert(convert: Callable[[], bytes]) -> bytes:
  """Runs a TFLite conversion; a failure becomes a ValueError with the converter's reason."""
  try:
    with warnings.catch_warnings():
      # int8 calibration runs TF's own (deprecated) tf.lite.Interpreter, which warns so.
      warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated",
                              category=UserWarning)
      return convert()
  except Exception as e:  # pylint: disable=broad-except  # ConverterError and friends.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    reasons = [line for line in lines if "TF Select ops" in line or "neither a custom op" in line]
    raise ValueError("TFLite conversion with builtin ops only failed: "
                     + " | ".join((reasons or lines)[:4])[:1500]) from None


def tflite_ops(flatbuffer: bytes) -> list[str]:
  """Sorted names of the ops in a TFLite flatbuffer (as the LiteRT interpreter lists them)."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  details = Interpreter(model_content=flatbuffer)._get_ops_details()  # pylint: disable=protected-access
  return sorted({op["op_name"] for op in details})


def export_tflite(model, metadata: Mapping[str, Any] | None, base_dir: str | os.PathLike, *,
                  version: int | None = None, samples: int | None = None,
                  quantize: str = "float32", input_size: tuple[int, int] | None = None,
                  calibration_examples: int = DEFAULT_CALIBRATION_EXAMPLES,
                  source: str | None = None) -> str:
  """Exports a Keras model as a TFLite version: ``base_dir/<version>/model.tflite``.

  Args:
    model: The Keras model.
    metadata: Its training metadata, or None.
    base_dir: The TFLite base folder (``savedmodels/NAME/tflite``).
    version: Version to write (must not exist); default the next one.
    samples: Monte-Carlo samples T (see :func:`export_saved_model`).
    quantize: See :func:`convert_to_tflite`.
    input_size: See :func:`convert_to_tflite`.
    calibration_examples: See :func:`convert_to_tflite`.
    source: Where the model came from (recorded in the metadata).

  Returns:
    The path of the ``.tflite`` file written.
  """
  base_dir = os.fspath(base_dir)
  name = os.path.basename(os.path.dirname(os.path.normpath(base_dir)))
  target, version = _version_dir(base_dir, version, f"{name} (TFLite)")
  samples = resolve_samples(model, metadata, samples)
  flatbuffer, ops = convert_to_tflite(model, metadata, samples, quantize=quantize,
                                      input_size=input_size,
                                      calibration_examples=calibration_examples)
  outputs = _tflite_outputs(flatbuffer)
  size_text = "any" if input_size is None else f"{input_size[0]}x{input_size[1]}"
  shape = "[batch, height, width, 3]" if input_size is None else f"[1, {input_size[0]}, " \
      f"{input_size[1]}, 3]"
  info = {
      "format": "tflite", "name": name, "version": version, "samples": samples,
      "uncertainty": stochastic_kind(model, metadata) if samples > 1 else None,
      "outputs": outputs, "source": source, "quantize": quantize, "input_size": size_text,
      "ops": ops, "signatures": {protocol.SERVING_SIGNATURE: {
          "input": f"{protocol.IMAGES_INPUT}: uint8 {shape}", "outputs": _output_spec(outputs)}},
  }
  if quantize == "int8":
    info["calibration"] = f"{calibration_examples} procedural train scenes"
  os.makedirs(base_dir, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{version}.export-", dir=base_dir)
  try:
    with open(os.path.join(staging, TFLITE_FILENAME), "wb") as f:
      f.write(flatbuffer)
    _write_json(os.path.join(staging, inference.METADATA_FILENAME),
                export_metadata(metadata, info))
    _publish(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  path = os.path.join(target, TFLITE_FILENAME)
  logging.info("Exported TFLite version %d of %s to %s (%s, input %s, %d sample%s, %d bytes, "
               "ops %s)", version, name, path, quantize, size_text, samples,
               "s" if samples > 1 else "", len(flatbuffer), ", ".join(ops))
  return path


def _tflite_outputs(flatbuffer: bytes) -> list[str]:
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  runner = Interpreter(model_content=flatbuffer).get_signature_runner(protocol.SERVING_SIGNATURE)
  names = list(runner.get_output_details())
  return [name for name in protocol.OUTPUTS if name in names]


# -------------------------------------------------------------- one call
def export_model(model_path: str | os.PathLike, name: str, *, export_dir: str = "savedmodels",
                 version: int | None = None, samples: int | None = None,
                 fmt: str = "saved_model", quantize: str = "float32",
                 input_size: tuple[int, int] | None = None, checkpoint: str = "auto",
                 calibration_examples: int = DEFAULT_CALIBRATION_EXAMPLES) -> str:
  """Loads a trained model (model_dir or ``.keras``) with its metadata and exports it.

  Args:
    model_path: A model_dir of ``d3tf.train`` or a ``.keras`` file with
      ``d3tf_metadata.json`` beside it.
    name: The model's name: SavedModels go to ``export_dir/name/<version>``,
      TFLite files to ``export_dir/name/tflite/<version>/model.tflite``.
    export_dir: The export folder.
    version: See :func:`export_saved_model`.
    samples: See :func:`export_saved_model`.
    fmt: ``"saved_model"`` or ``"tflite"``.
    quantize: TFLite only: see :func:`convert_to_tflite`.
    input_size: TFLite only: see :func:`convert_to_tflite`.
    checkpoint: ``"auto"``, ``"final"`` or ``"best"`` for a model_dir.
    calibration_examples: TFLite int8 only.

  Returns:
    The version folder (SavedModel) or ``.tflite`` file written.

  Raises:
    FileNotFoundError: no model or metadata at ``model_path``.
    FileExistsError: the version exists.
    ValueError: a bad argument (echoed).
  """
  if fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  if not name or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
    raise ValueError(f"name must be a folder name of letters, digits, '_', '-' and '.', got "
                     f"{name!r}")
  if fmt == "saved_model" and (quantize != "float32" or input_size is not None):
    raise ValueError(f"quantize ({quantize!r}) and input size ({input_size!r}) apply to TFLite "
                     "exports only; a SavedModel keeps float32 and takes any size")
  base = os.path.join(os.fspath(export_dir), name)
  target_base = base if fmt == "saved_model" else os.path.join(base, TFLITE_SUBDIR)
  if version is not None:
    _version_dir(target_base, version, name)  # Refuses an existing version before any work.
  model, path = inference.load_model(model_path, checkpoint)
  metadata = inference.read_metadata(path)
  logging.info("Exporting %s: %s", path, inference.describe_metadata(metadata))
  if fmt == "saved_model":
    return export_saved_model(model, metadata, base, version=version, samples=samples,
                              source=os.path.abspath(path))
  return export_tflite(model, metadata, target_base, version=version,
                       samples=samples, quantize=quantize, input_size=input_size,
                       calibration_examples=calibration_examples, source=os.path.abspath(path))
