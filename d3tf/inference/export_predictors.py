"""Predicting from exports: SavedModel and TFLite predictors.

:func:`d3tf.inference.load_predictor` returns a :class:`SavedModelPredictor`
or a :class:`TFLitePredictor` for an export path. Both have the interface of
:class:`d3tf.inference.Predictor`: ``predict(images, samples=None) -> dict``
and the attributes ``metadata``, ``camera``, ``input_kind`` and ``path``
(plus ``samples``, ``outputs``, ``version`` and ``kind``).

An export draws a fixed number of Monte-Carlo samples T (chosen at export);
``predict`` accepts ``samples=None`` or T, and ``samples=1`` (the default of
d3tf's CLIs) gives the export's own output (logged when T > 1).

The export of a camera-aware model (``camera_aware``, ``docs/any_camera.md``)
takes ``predict(images, camera=...)`` as the Keras predictor does: a
:class:`d3tf.optics.Camera`, a ``[4]`` vector or one per image ``[B, 4]``;
without one, the export's default camera (its metadata's). The SavedModel
runs ``serving_camera`` with a camera and ``serving_default`` without; the
TFLite model always gets a camera input, the default one filled in here.
"""

from __future__ import annotations

import os
from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf.inference.keras_predictor import DEFAULT_MAX_BATCH_PIXELS
from d3tf.serving import protocol
from d3tf.sizes import round_up


class _ExportPredictor:
  """What both export predictors share: metadata, sample checks, logging.

  Args:
    ref: Where the export lives.
    metadata: Its metadata (with the ``export`` entry).

  Attributes:
    kind: ``"saved_model"`` or ``"tflite"``.
    path: The SavedModel version folder or the ``.tflite`` file.
    version: The export's version number (or None).
    metadata: The :class:`d3tf.artifacts.Metadata`.
    camera: The training camera (:class:`d3tf.optics.Camera`), or None.
    input_kind: ``"defocus"`` or ``"sharp"``.
    samples: Monte-Carlo samples drawn per prediction (fixed at export).
    outputs: The output names.
    camera_aware: The export takes each image's camera (``predict(...,
      camera=...)``); its default camera is :attr:`default_camera_vector`.
    default_camera_vector: float32 ``[4]`` (camera-aware exports), or None.
  """

  kind = ""

  def __init__(self, ref: artifacts.ExportRef, metadata: artifacts.Metadata):
    self.ref = ref
    self.path = ref.path
    self.version = ref.version
    self.metadata = metadata
    self.camera = metadata.camera
    self.input_kind = metadata.input_kind
    info = metadata.export or {}
    self.samples = int(info.get("samples", 1))
    self.outputs = tuple(info.get("outputs") or (protocol.DEPTH,))
    self._warned_samples = False
    self.camera_aware = bool(info.get("camera_aware"))
    self.default_camera_vector = None
    if self.camera_aware:
      default = (info.get("camera_input") or {}).get("default")
      if default is None and metadata.camera is None:
        raise ValueError(f"{ref.path}: a camera-aware export whose metadata has no default "
                         f"camera ({ref.metadata_path}: export.camera_input.default)")
      self.default_camera_vector = protocol.as_camera_vectors(
          default if default is not None else metadata.camera, 1,
          f"{ref.metadata_path}: the default camera")[0]

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.path!r}: {self.metadata.describe()}, "
            f"{self.samples} samples)")

  def _check_samples(self, samples) -> None:
    if samples is None or samples == self.samples:
      return
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
      raise ValueError(f"samples must be an integer >= 1 or None, got {samples!r}")
    if samples == 1:  # The default of d3tf's CLIs: take the export as it is.
      if not self._warned_samples:
        logging.info("%s draws %d Monte-Carlo samples per prediction (fixed at export); "
                     "samples=1 gives that output", self.path, self.samples)
        self._warned_samples = True
      return
    raise ValueError(f"{self.path} was exported with {self.samples} Monte-Carlo sample(s) per "
                     f"prediction (fixed at export: d3tf.export --samples); got samples={samples}. "
                     f"Pass samples=None, or export again with --samples={samples}")

  def _finish(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    depth = outputs[protocol.DEPTH]
    if not np.all(np.isfinite(depth)):
      logging.warning("Export %s predicted %d non-finite depth values", self.path,
                      int(np.count_nonzero(~np.isfinite(depth))))
    return {name: np.asarray(outputs[name], np.float32) for name in protocol.OUTPUTS
            if name in outputs}

  def _cameras(self, camera, batch: int) -> np.ndarray | None:
    """The ``[batch, 4]`` camera input, or None (no camera given, or a one-camera export)."""
    if not self.camera_aware:
      protocol.refuse_camera(camera, str(self.path))
      return None
    return None if camera is None else protocol.as_camera_vectors(camera, batch)

  def predict(self, images, samples: int | None = None, camera=None) -> dict[str, np.ndarray]:
    """Predicts depth in metres at the images' own size.

    Args:
      images: uint8 (0-255) or float (0-1, rounded to 8 bits: exports take
        uint8) RGB, ``[B, H, W, 3]`` or one ``[H, W, 3]`` image.
      samples: None or the export's number of samples (1 is accepted too
        when the export draws more: it gives the export's output).
      camera: Camera-aware exports only: the images' camera (a
        :class:`d3tf.optics.Camera`, a ``[4]`` vector of focal length mm,
        f-number, pixel pitch um, focus distance m, or ``[B, 4]``); None:
        the export's default camera.

    Returns:
      ``{"depth": float32 [B, H, W] metres}`` plus the export's uncertainty
      outputs (``"depth_std"``, ...), always batched.

    Raises:
      ValueError: bad images, ``samples`` or camera (see above), or (TFLite)
        a size other than the model's fixed input size.
    """
    self._check_samples(samples)
    batch, _ = protocol.as_uint8_images(images)
    return self._finish(self._predict(batch, self._cameras(camera, len(batch))))

  def _predict(self, batch: np.ndarray, cameras: np.ndarray | None) -> dict[str, np.ndarray]:
    raise NotImplementedError


class SavedModelPredictor(_ExportPredictor):
  """Runs the ``serving_default`` signature of a SavedModel export in TensorFlow.

  Args:
    ref: The export (a SavedModel version folder).
    metadata: Its metadata.
    max_batch_pixels: Pixel budget of one call (images x samples x padded
      height x width); at least one image per call.
  """

  kind = "saved_model"

  def __init__(self, ref: artifacts.ExportRef, metadata: artifacts.Metadata, *,
               max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS):
    super().__init__(ref, metadata)
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    if int(max_batch_pixels) < 1:
      raise ValueError(f"max_batch_pixels must be >= 1, got {max_batch_pixels!r}")
    self.max_batch_pixels = int(max_batch_pixels)
    try:
      self.model = tf.saved_model.load(ref.path)
    except Exception as e:  # pylint: disable=broad-except  # TF raises many kinds.
      raise ValueError(f"{ref.path}: cannot load the SavedModel ({type(e).__name__}: "
                       f"{str(e)[:500]})") from None
    if protocol.SERVING_SIGNATURE not in self.model.signatures:
      raise ValueError(f"{ref.path}: the SavedModel has no '{protocol.SERVING_SIGNATURE}' "
                       f"signature (has {sorted(self.model.signatures)})")
    self._signature = self.model.signatures[protocol.SERVING_SIGNATURE]
    self._camera_signature = None
    if self.camera_aware:
      if protocol.CAMERA_SIGNATURE not in self.model.signatures:
        raise ValueError(f"{ref.path}: a camera-aware export without the "
                         f"'{protocol.CAMERA_SIGNATURE}' signature (has "
                         f"{sorted(self.model.signatures)})")
      self._camera_signature = self.model.signatures[protocol.CAMERA_SIGNATURE]

  def _predict(self, batch: np.ndarray, cameras: np.ndarray | None) -> dict[str, np.ndarray]:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    height, width = batch.shape[1:3]
    padded = round_up(height) * round_up(width)
    chunk = max(1, self.max_batch_pixels // (padded * self.samples))
    parts = []
    for start in range(0, len(batch), chunk):
      inputs = {protocol.IMAGES_INPUT: tf.constant(batch[start:start + chunk])}
      if cameras is None:
        out = self._signature(**inputs)
      else:  # serving_camera: the given cameras.
        inputs[protocol.CAMERA_INPUT] = tf.constant(cameras[start:start + chunk])
        out = self._camera_signature(**inputs)
      parts.append({name: value.numpy() for name, value in out.items()})
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


class TFLitePredictor(_ExportPredictor):
  """Runs a TFLite export with the LiteRT interpreter, one image per invocation.

  Args:
    ref: The export (a ``.tflite`` file).
    metadata: Its metadata.
    num_threads: Interpreter threads; default all CPU cores.

  Attributes:
    input_size: ``(height, width)`` of a fixed-size model, or None (any size).
  """

  kind = "tflite"

  def __init__(self, ref: artifacts.ExportRef, metadata: artifacts.Metadata, *,
               num_threads: int | None = None):
    super().__init__(ref, metadata)
    try:
      from ai_edge_litert.interpreter import Interpreter  # pylint: disable=g-import-not-at-top
    except ImportError:
      raise ImportError("TFLite exports run with LiteRT: pip install 'ai-edge-litert>=2.3,<2.4' "
                        "(or d3tf[export])") from None
    try:
      self.model = Interpreter(model_path=ref.path, num_threads=num_threads or os.cpu_count())
      self._runner = self.model.get_signature_runner(protocol.SERVING_SIGNATURE)
    except (ValueError, RuntimeError) as e:
      raise ValueError(f"{ref.path}: cannot load the TFLite model ({e})") from None
    details = self._runner.get_input_details()[protocol.IMAGES_INPUT]
    shape = [int(v) for v in details["shape_signature"]]
    self.input_size = None if -1 in shape[1:3] else (shape[1], shape[2])

  def _predict(self, batch: np.ndarray, cameras: np.ndarray | None) -> dict[str, np.ndarray]:
    height, width = batch.shape[1:3]
    if self.input_size is not None and (height, width) != self.input_size:
      raise ValueError(f"{self.path} takes {self.input_size[0]}x{self.input_size[1]} images "
                       f"(fixed at export: --input_size), got {height}x{width}; crop or resize "
                       "the photos (for a defocus model, resizing changes the blur per pixel), "
                       "or export with --input_size=any")
    if self.camera_aware and cameras is None:  # TFLite has no optional input: the default.
      cameras = protocol.as_camera_vectors(self.default_camera_vector, len(batch))
    parts = []
    for index, image in enumerate(batch):
      inputs = {protocol.IMAGES_INPUT: image[None]}
      if cameras is not None:
        inputs[protocol.CAMERA_INPUT] = cameras[index:index + 1]
      parts.append(self._runner(**inputs))
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def load_export_predictor(ref: artifacts.ExportRef, *,
                          max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS):
  """A predictor for the export ``ref`` (see :func:`d3tf.artifacts.find_export`).

  Args:
    ref: The export.
    max_batch_pixels: Pixel budget of one SavedModel call.

  Returns:
    A :class:`SavedModelPredictor` or :class:`TFLitePredictor`.

  Raises:
    FileNotFoundError: an export without metadata.
    ValueError: an export that cannot be loaded, naming it.
  """
  meta = artifacts.read_metadata(ref.metadata_path)
  if ref.kind == "saved_model":
    predictor = SavedModelPredictor(ref, meta, max_batch_pixels=max_batch_pixels)
  else:
    predictor = TFLitePredictor(ref, meta)
  for line in artifacts.describe_export(ref, meta).splitlines():
    logging.info("%s", line)
  return predictor
