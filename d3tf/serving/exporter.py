"""Writes exports of trained models for TF Serving (SavedModel) and LiteRT (TFLite).

The export folder's layout (TF Serving's version folders, ``tflite/``, the
metadata inside each version) is :mod:`d3tf.artifacts.exports`'s; this module
writes into it: :func:`export_saved_model`, :func:`export_tflite`, or
:func:`export_model` for either. Each takes a loaded Keras model and its
:class:`d3tf.artifacts.Metadata`; an int8 TFLite export also takes its
calibration images (:func:`d3tf.data.calibration.calibration_images` makes
them from procedural scenes as the model's camera sees them).

An export's ``d3tf_metadata.json`` is the model's training metadata with an
``export`` entry describing the export (format, version, samples, outputs,
signatures, quantisation, input size, source model, d3tf version and time of
export). A camera-aware model's export (``docs/any_camera.md``) also records
``camera_aware: true`` and ``camera_input``: the camera input's name, dtype,
shape, fields and units in order, and the default camera (the metadata's
``camera``) as a vector, with which signatures use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from typing import Callable

from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf.artifacts import exports as layout
from d3tf.serving import protocol

#: Export formats.
FORMATS = layout.FORMATS
QUANTIZATIONS = ("float32", "float16", "int8")
#: Default Monte-Carlo samples of an export of a stochastic model.
DEFAULT_STOCHASTIC_SAMPLES = 20
#: Calibration image size of a TFLite model that takes any size.
DEFAULT_CALIBRATION_SIZE = (256, 256)
# Ops that compute the Monte-Carlo statistics; int8 export keeps them in float
# (a standard deviation of millimetres does not survive an int8 grid).
_FLOAT_STATISTICS_OPS = ("MEAN", "SQUARED_DIFFERENCE", "SQRT", "SQUARE", "EXP", "ADD")
# Layers whose ops int8 export keeps in float: the band-pass sharpness maps are
# ratios of band RMS values of a few thousandths, which an int8 grid rounds to
# zero (TFLite's int8 DIV then aborts on a zero divisor).
_FLOAT_LAYER_NODES = re.compile(r"/bandpass_sharpness(_\d+)?/")
# A camera-aware model's camera branch and thin-lens head, also kept in float: the camera's
# blur-per-depth features span orders of magnitude across cameras, and the head's inverse
# depth 1/d_f - c/K is a small difference of two numbers that an int8 grid cannot resolve.
_CAMERA_FLOAT_LAYER_NODES = re.compile(
    r"/(camera_features|camera_hidden|[a-z0-9_]*_film_dense|signed_blur|depth)(_\d+)?/")


def _write_metadata(path: str, metadata: artifacts.Metadata | None, info: dict) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(layout.export_metadata(metadata, info).to_dict(), f, indent=2)


# -------------------------------------------------------------- the model
def resolve_samples(model, samples: int | None) -> int:
  """The number of samples to export: ``samples``, or the default for the model.

  Whether Monte-Carlo sampling applies is :func:`d3tf.models.stochastic_kind`
  (the model's MC dropout and variational layers).

  Raises:
    ValueError: ``samples < 1``, or ``samples > 1`` for a model without
      sampling layers.
  """
  from d3tf import models  # pylint: disable=g-import-not-at-top
  kind = models.stochastic_kind(model)
  if samples is None:
    return DEFAULT_STOCHASTIC_SAMPLES if kind else 1
  if isinstance(samples, bool) or int(samples) != samples or samples < 1:
    raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
  if samples > 1 and kind is None:
    raise ValueError(f"samples={samples} needs Monte-Carlo sampling, but model "
                     f"{getattr(model, 'name', '')!r} has no MCDropout or variational layer; "
                     "export with samples=1")
  return int(samples)


def _uncertainty(model, samples: int) -> str | None:
  from d3tf import models  # pylint: disable=g-import-not-at-top
  return models.stochastic_kind(model) if samples > 1 else None


def _serving_graph(model, metadata: artifacts.Metadata | None, samples: int):
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top
  return graph.ServingGraph.for_model(model, metadata, samples)


def _output_spec(names) -> list[str]:
  return [f"{name}: float32 [batch, height, width]" for name in names]


def _camera_spec(batch: str = "batch") -> str:
  return (f"{protocol.CAMERA_INPUT}: float32 [{batch}, 4] "
          f"({', '.join(protocol.CAMERA_FIELDS)})")


def camera_input_info(serving, fmt: str, batch: str = "batch") -> dict:
  """The ``camera_input`` entry of a camera-aware export's metadata.

  Args:
    serving: The export's :class:`d3tf.serving.graph.ServingGraph`.
    fmt: ``"saved_model"`` or ``"tflite"``.
    batch: The camera input's batch dimension as written (``"1"`` for a
      fixed-size TFLite model).
  """
  if fmt == "saved_model":
    default = (f"signatures {protocol.SERVING_SIGNATURE} and {protocol.ENCODED_SIGNATURE} use "
               f"the default camera; {protocol.CAMERA_SIGNATURE} and "
               f"{protocol.ENCODED_CAMERA_SIGNATURE} take the camera input")
  else:
    default = (f"the camera input of {protocol.SERVING_SIGNATURE} is required (TFLite has no "
               "optional inputs): pass the default camera when the photo's is unknown")
  return {"name": protocol.CAMERA_INPUT, "dtype": "float32", "shape": f"[{batch}, 4]",
          "fields": list(protocol.CAMERA_FIELDS), "units": list(protocol.CAMERA_UNITS),
          "default": [round(float(v), 6) for v in serving.default_camera],
          "default_use": default}


def export_saved_model(model, metadata: artifacts.Metadata | None, base_dir: str | os.PathLike, *,
                       version: int | None = None, samples: int | None = None,
                       source: str | None = None) -> str:
  """Exports a Keras model as a SavedModel version for TF Serving.

  Args:
    model: The Keras model (see :class:`d3tf.serving.graph.ServingGraph`).
    metadata: Its training metadata (:func:`d3tf.artifacts.read_metadata`),
      or None.
    base_dir: The model's base folder (``savedmodels/NAME``).
    version: Version to write (must not exist); default the next one.
    samples: Monte-Carlo samples T per prediction; default 20 for a model with
      sampling layers (MC dropout, variational), else 1.
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
  target, version = layout.version_dir(base_dir, version, name)
  samples = resolve_samples(model, samples)
  serving = _serving_graph(model, metadata, samples)
  signatures = serving.signatures()
  staging = layout.staging_dir(base_dir, version)
  try:
    tf.saved_model.save(graph.ExportModule(model), staging, signatures=signatures)
    outputs = list(serving.output_names)
    images_spec = f"{protocol.IMAGES_INPUT}: uint8 [batch, height, width, 3]"
    encoded_spec = f"{protocol.ENCODED_INPUT}: string [batch] (JPEG/PNG, one size)"
    default = " (default camera)" if serving.camera_aware else ""
    info = {
        "format": "saved_model", "name": name, "version": version, "samples": samples,
        "uncertainty": _uncertainty(model, samples),
        "outputs": outputs, "source": source, "camera_aware": serving.camera_aware,
        "signatures": {
            protocol.SERVING_SIGNATURE: {"input": images_spec + default,
                                         "outputs": _output_spec(outputs)},
            protocol.ENCODED_SIGNATURE: {"input": encoded_spec + default,
                                         "outputs": _output_spec(outputs)}},
    }
    if serving.camera_aware:
      info["signatures"][protocol.CAMERA_SIGNATURE] = {
          "input": f"{images_spec}, {_camera_spec()}", "outputs": _output_spec(outputs)}
      info["signatures"][protocol.ENCODED_CAMERA_SIGNATURE] = {
          "input": f"{encoded_spec}, {_camera_spec()}", "outputs": _output_spec(outputs)}
      info["camera_input"] = camera_input_info(serving, "saved_model")
    _write_metadata(layout.metadata_file(staging, "saved_model"), metadata, info)
    layout.publish(staging, target)
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


def convert_to_tflite(model, metadata: artifacts.Metadata | None, samples: int, *,
                      quantize: str = "float32", input_size: tuple[int, int] | None = None,
                      calibration_images: np.ndarray | None = None,
                      calibration_cameras: np.ndarray | None = None
                      ) -> tuple[bytes, list[str]]:
  """Converts a Keras model's serving graph to a TFLite flatbuffer of builtin ops only.

  Args:
    model: The Keras model.
    metadata: Its metadata (the aleatoric likelihood of a model without a
      config), or None.
    samples: Monte-Carlo samples T per prediction.
    quantize: ``"float32"`` (no quantisation), ``"float16"`` (float16
      weights) or ``"int8"`` (post-training integer quantisation of weights
      and activations, calibrated on ``calibration_images``; ops without an
      int8 kernel and the Monte-Carlo statistics stay in float).
    input_size: ``(height, width)`` for a fixed ``[1, H, W, 3]`` input, or
      None for any size and batch.
    calibration_images: int8 only: uint8 ``[N, H, W, 3]`` inputs as the model
      sees them (``H, W`` = ``input_size`` for a fixed-size model), e.g.
      :func:`d3tf.data.calibration.calibration_images`.
    calibration_cameras: int8 of a camera-aware model: float32 ``[N, 4]``,
      each calibration image's camera vector (e.g.
      :func:`d3tf.data.calibration.calibration_examples_with_cameras`); its
      camera branch and thin-lens head stay in float.

  Returns:
    ``(flatbuffer bytes, sorted op names of the model)``.

  Raises:
    ValueError: a bad ``quantize``, int8 without calibration images (or of
      another size than ``input_size``), int8 of a camera-aware model without
      one camera per calibration image, or a conversion that needs
      non-builtin (Flex / custom) ops.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.serving import graph  # pylint: disable=g-import-not-at-top

  check_quantization(quantize)
  camera_aware = graph.is_camera_aware(model)
  if quantize == "int8":
    images = _check_calibration(calibration_images, input_size)
    cameras = _check_calibration_cameras(calibration_cameras, len(images), camera_aware)
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
      logging.info("Calibrating int8 on %d images of %dx%d (%s)", len(images),
                   *images.shape[1:3], artifacts.describe(metadata))

      def representative():
        for i, image in enumerate(images):
          example = {protocol.IMAGES_INPUT: image[None]}
          if cameras is not None:
            example[protocol.CAMERA_INPUT] = cameras[i:i + 1]
          yield example

      # Nodes to keep in float, named in the float conversion (the same graph).
      patterns = [_FLOAT_LAYER_NODES] + ([_CAMERA_FLOAT_LAYER_NODES] if camera_aware else [])
      float_nodes = (_float_layer_nodes(_convert(converter.convert), patterns)
                     if any(p.search(f"/{layer.name}/") for p in patterns
                            for layer in model.layers) else [])
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


def check_quantization(quantize: str) -> None:
  """Refuses a bad ``quantize`` (every model takes every one; a camera-aware one with cameras).

  Raises:
    ValueError: naming the value and the known ones.
  """
  if quantize not in QUANTIZATIONS:
    raise ValueError(f"quantize must be one of {QUANTIZATIONS}, got {quantize!r}")


def _check_calibration(images, input_size: tuple[int, int] | None) -> np.ndarray:
  """The calibration images as uint8 ``[N, H, W, 3]``, or a ValueError saying what is wrong."""
  if images is None:
    raise ValueError("int8 quantisation needs calibration images (uint8 [N, H, W, 3] as the "
                     "model sees them; d3tf.data.calibration.calibration_images makes them)")
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
    raise ValueError(f"calibration images must be uint8 [N, H, W, 3] with N >= 1, got "
                     f"{images.dtype} {images.shape}")
  if input_size is not None and tuple(images.shape[1:3]) != tuple(input_size):
    raise ValueError(f"calibration images are {images.shape[1]}x{images.shape[2]}, but the "
                     f"model's input size is {input_size[0]}x{input_size[1]}")
  return images


def _check_calibration_cameras(cameras, count: int, camera_aware: bool) -> np.ndarray | None:
  """A camera-aware model's calibration cameras as float32 ``[count, 4]`` (None otherwise)."""
  if not camera_aware:
    if cameras is not None:
      raise ValueError("calibration cameras were given, but the model has no camera input")
    return None
  if cameras is None:
    raise ValueError("int8 quantisation of a camera-aware model needs one camera per "
                     "calibration image (float32 [N, 4]; d3tf.data.calibration."
                     "calibration_examples_with_cameras makes both)")
  cameras = np.asarray(cameras, np.float32)
  if cameras.shape != (count, 4) or not np.all(np.isfinite(cameras)) or np.any(cameras <= 0):
    raise ValueError(f"calibration cameras must be finite positive float32 [{count}, 4] (one "
                     f"per calibration image), got shape {cameras.shape}")
  return cameras


def _float_layer_nodes(flatbuffer: bytes, patterns) -> list[str]:
  """Names of a float TFLite model's tensors made by the layers int8 keeps in float."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
  return sorted({detail["name"] for detail in Interpreter(model_content=flatbuffer)
                 .get_tensor_details() if any(p.search(detail["name"]) for p in patterns)})


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


def export_tflite(model, metadata: artifacts.Metadata | None, base_dir: str | os.PathLike, *,
                  version: int | None = None, samples: int | None = None,
                  quantize: str = "float32", input_size: tuple[int, int] | None = None,
                  calibration_images: np.ndarray | None = None,
                  calibration_cameras: np.ndarray | None = None,
                  calibration_source: str = "calibration images",
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
    calibration_images: See :func:`convert_to_tflite`.
    calibration_cameras: See :func:`convert_to_tflite`.
    calibration_source: What the calibration images are, for the metadata
      (``"<N> <calibration_source>"``).
    source: Where the model came from (recorded in the metadata).

  Returns:
    The path of the ``.tflite`` file written.
  """
  base_dir = os.fspath(base_dir)
  name = os.path.basename(os.path.dirname(os.path.normpath(base_dir)))
  target, version = layout.version_dir(base_dir, version, f"{name} (TFLite)")
  samples = resolve_samples(model, samples)
  flatbuffer, ops = convert_to_tflite(model, metadata, samples, quantize=quantize,
                                      input_size=input_size,
                                      calibration_images=calibration_images,
                                      calibration_cameras=calibration_cameras)
  outputs = _tflite_outputs(flatbuffer)
  size_text = "any" if input_size is None else f"{input_size[0]}x{input_size[1]}"
  shape = "[batch, height, width, 3]" if input_size is None else f"[1, {input_size[0]}, " \
      f"{input_size[1]}, 3]"
  serving = _serving_graph(model, metadata, samples)
  batch = "batch" if input_size is None else "1"
  input_spec = f"{protocol.IMAGES_INPUT}: uint8 {shape}"
  if serving.camera_aware:
    input_spec += f", {_camera_spec(batch)} (required; the default camera is in the metadata)"
  info = {
      "format": "tflite", "name": name, "version": version, "samples": samples,
      "uncertainty": _uncertainty(model, samples),
      "outputs": outputs, "source": source, "quantize": quantize, "input_size": size_text,
      "ops": ops, "camera_aware": serving.camera_aware, "signatures": {
          protocol.SERVING_SIGNATURE: {"input": input_spec, "outputs": _output_spec(outputs)}},
  }
  if serving.camera_aware:
    info["camera_input"] = camera_input_info(serving, "tflite", batch)
  if quantize == "int8":
    info["calibration"] = f"{len(calibration_images)} {calibration_source}"
  staging = layout.staging_dir(base_dir, version)
  try:
    with open(os.path.join(staging, layout.TFLITE_FILENAME), "wb") as f:
      f.write(flatbuffer)
    _write_metadata(layout.metadata_file(staging, "tflite"), metadata, info)
    layout.publish(staging, target)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  path = os.path.join(target, layout.TFLITE_FILENAME)
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
def export_model(model, metadata: artifacts.Metadata | None, name: str, *,
                 export_dir: str | os.PathLike = "savedmodels", fmt: str = "saved_model",
                 version: int | None = None, samples: int | None = None,
                 quantize: str = "float32", input_size: tuple[int, int] | None = None,
                 calibration_images: np.ndarray | None = None,
                 calibration_cameras: np.ndarray | None = None,
                 calibration_source: str = "calibration images",
                 source: str | None = None) -> str:
  """Exports a loaded model under ``export_dir/name`` in TF Serving's layout.

  Args:
    model: The Keras model (e.g. from :func:`d3tf.inference.load_model`).
    metadata: Its training metadata, or None.
    name: The model's name: SavedModels go to ``export_dir/name/<version>``,
      TFLite files to ``export_dir/name/tflite/<version>/model.tflite``.
    export_dir: The export folder.
    fmt: ``"saved_model"`` or ``"tflite"``.
    version: See :func:`export_saved_model`.
    samples: See :func:`export_saved_model`.
    quantize: TFLite only: see :func:`convert_to_tflite`.
    input_size: TFLite only: see :func:`convert_to_tflite`.
    calibration_images: TFLite int8 only: see :func:`convert_to_tflite`.
    calibration_cameras: TFLite int8 of a camera-aware model: see
      :func:`convert_to_tflite`.
    calibration_source: See :func:`export_tflite`.
    source: Where the model came from (recorded in the metadata).

  Returns:
    The version folder (SavedModel) or ``.tflite`` file written.

  Raises:
    FileExistsError: the version exists.
    ValueError: a bad argument (echoed).
  """
  base = layout.base_dir(export_dir, name, fmt)
  if fmt == "saved_model":
    if quantize != "float32" or input_size is not None:
      raise ValueError(f"quantize ({quantize!r}) and input size ({input_size!r}) apply to TFLite "
                       "exports only; a SavedModel keeps float32 and takes any size")
    return export_saved_model(model, metadata, base, version=version, samples=samples,
                              source=source)
  return export_tflite(model, metadata, base, version=version, samples=samples,
                       quantize=quantize, input_size=input_size,
                       calibration_images=calibration_images,
                       calibration_cameras=calibration_cameras,
                       calibration_source=calibration_source, source=source)
