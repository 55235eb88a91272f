"""The serving graph of an export: uint8 images in, depth in metres out.

:class:`ServingGraph` wraps a trained Keras model in the TensorFlow functions
that :mod:`d3tf.serving.exporter` saves (see :mod:`d3tf.serving.protocol` for
the interface). Everything that :class:`d3tf.inference.Predictor` does in
NumPy happens inside the graph, so that TF Serving and TFLite give the same
depth as the Keras model:

* uint8 -> float32 in [0, 1] (``x * (1 / 255)``, as the Predictor);
* reflect padding to a multiple of 32, split between both sides (the extra
  pixel at the bottom / right), with NumPy's ``mode="reflect"`` semantics also
  for pads larger than the image: implemented as a ``tf.gather`` of reflected
  indices, a TFLite builtin, where ``tf.pad(mode="REFLECT")`` would need pads
  smaller than the image;
* Monte-Carlo sampling with a fixed number of samples T: the model's
  sampling layers (MC dropout, variational convolutions: every layer with an
  ``mc_enabled`` switch) are on while the graph is traced, the T samples of
  every image are drawn in one batched pass (each image repeated T times),
  or in T passes for layers that share one random draw across a batch
  (``shares_sample_in_batch``, e.g. reparameterisation), and the result is
  the samples' mean and standard deviation. The random draws are stateful
  ``tf.random`` ops (``RandomUniform``, ``RandomStandardNormal``: TFLite
  builtins);
* crop back to the input size.

A camera-aware model (inputs ``{"image", "camera"}``, ``docs/any_camera.md``)
gets each image's camera vector ``[B, 4]`` beside the images: the signatures
that take no camera use the default camera (the metadata's), a constant of the
graph tiled to the batch; ``serving_camera`` and ``predict_encoded_camera``
take it as the input ``camera``, repeated with its image for Monte-Carlo
samples.

With T > 1 the outputs are ``depth`` (the samples' mean), ``epistemic_std``
(their standard deviation) and ``depth_std`` (the total std, here equal to
``epistemic_std``). Models with an aleatoric head return a dict ``{"depth": [N, H, W, 1],
"log_scale": [N, H, W, 1]}``, ``log_scale`` being the log of the
likelihood's scale (the Gaussian's sigma, or the Laplace distribution's b, whose
standard deviation is ``sqrt(2) b``). For such a model the outputs are
``depth`` (the samples' mean), ``aleatoric_std`` (the root mean predicted
variance), ``epistemic_std`` (the samples' standard deviation; with T > 1
only) and ``depth_std`` (the total: ``sqrt(epistemic^2 + aleatoric^2)``), as
:class:`d3tf.inference.Predictor` returns them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import tensorflow as tf

from d3tf import artifacts
from d3tf import models
from d3tf.serving import protocol
from d3tf.sizes import SIZE_MULTIPLE

#: Key of the aleatoric head's output in a model's output dict.
LOG_SCALE_KEY = "log_scale"


def aleatoric_std_factor(model, metadata: artifacts.Metadata | None = None) -> float:
  """Standard deviation per unit of the aleatoric scale ``exp(log_scale)``.

  ``sqrt(2)`` for a Laplace likelihood (its std is ``sqrt(2) b``), 1 for a
  Gaussian (its scale is its std); the likelihood is the model's
  ``D3NetConfig.aleatoric``, else the metadata's (:func:`d3tf.models.aleatoric_of`).
  """
  kind = models.aleatoric_of(model, metadata.aleatoric if metadata is not None else "none")
  return math.sqrt(models.ALEATORIC_VARIANCE_FACTOR[kind])


def reflect_indices(size: tf.Tensor, before: tf.Tensor, after: tf.Tensor) -> tf.Tensor:
  """Indices into ``[0, size)`` of a reflect-padded axis (NumPy's ``mode="reflect"``).

  Position ``i`` of the padded axis (``-before <= i < size + after``) maps to
  the input index reached by bouncing off both ends, with period
  ``2 (size - 1)``; a single pixel repeats.

  Args:
    size: The axis length (int32 scalar, >= 1).
    before: Padding before the axis.
    after: Padding after the axis.

  Returns:
    int32 indices ``[before + size + after]``.
  """
  positions = tf.range(-before, size + after)
  period = tf.maximum(2 * size - 2, 1)
  folded = tf.math.floormod(positions, period)
  return tf.where(folded < size, folded, period - folded)


def split_depth_output(outputs) -> tuple[tf.Tensor, tf.Tensor | None]:
  """``(depth [N, H, W], log_scale [N, H, W] or None)`` from a model's raw output.

  Args:
    outputs: A tensor ``[N, H, W, 1]`` (or ``[N, H, W]``), a dict with
      ``"depth"`` (and optionally ``"log_scale"``), or a list / tuple whose
      first item is depth.

  Raises:
    ValueError: a dict without ``"depth"``.
  """
  log_scale = None
  if isinstance(outputs, Mapping):
    if protocol.DEPTH not in outputs:
      raise ValueError(f"the model returns a dict without '{protocol.DEPTH}' (keys "
                       f"{sorted(outputs)})")
    log_scale = outputs.get(LOG_SCALE_KEY)
    depth = outputs[protocol.DEPTH]
  elif isinstance(outputs, (list, tuple)):
    depth = outputs[0]
  else:
    depth = outputs

  def squeeze(tensor):
    tensor = tf.convert_to_tensor(tensor)
    if tensor.shape.rank == 4:
      tensor = tensor[..., 0]
    return tf.cast(tensor, tf.float32)

  return squeeze(depth), (None if log_scale is None else squeeze(log_scale))


class ServingGraph:
  """The serving functions of one model, for a fixed number of samples.

  Args:
    model: A Keras model mapping float32 images ``[N, H, W, 3]`` in [0, 1]
      (H, W multiples of 32) to depth ``[N, H, W, 1]`` in metres, or to a dict
      with ``"depth"`` and optionally ``"log_scale"``.
    samples: Monte-Carlo samples T drawn per image (>= 1). T > 1 turns the
      model's sampling layers on while the functions are traced.
    aleatoric_factor: Standard deviation per unit of ``exp(log_scale)`` (see
      :func:`aleatoric_std_factor`; :meth:`for_model` reads it from the model).
    default_camera: A camera-aware model's default camera vector ``[4]``
      (:data:`d3tf.serving.protocol.CAMERA_FIELDS`), used when a call gives
      no camera; required for such a model, refused for others.

  Attributes:
    camera_aware: The model takes a camera input.
    output_names: The output names (known after tracing).
    separate_passes: Whether the T samples are drawn in T passes (a layer
      shares one random draw across a batch) rather than one batched pass.
  """

  def __init__(self, model, samples: int = 1, *, aleatoric_factor: float = 1.0,
               default_camera=None):
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
      raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    self.camera_aware = is_camera_aware(model)
    name = getattr(model, "name", "")
    if self.camera_aware and default_camera is None:
      raise ValueError(f"model {name!r} is camera-aware (inputs image and camera): its export "
                       "needs a default camera (the metadata's camera), and none was given")
    if not self.camera_aware and default_camera is not None:
      raise ValueError(f"model {name!r} takes no camera input; got default_camera="
                       f"{default_camera!r}")
    self.default_camera = (None if default_camera is None else
                           protocol.as_camera_vectors(default_camera, 1, "default_camera")[0])
    self.model = model
    self.samples = int(samples)
    self.aleatoric_factor = float(aleatoric_factor)
    self.output_names: tuple[str, ...] = ()
    # Layers that draw one sample per call for the whole batch need one pass per sample.
    self.separate_passes = models.shares_sample_in_batch(model)

  @classmethod
  def for_model(cls, model, metadata: artifacts.Metadata | None, samples: int = 1
                ) -> "ServingGraph":
    """The serving graph of a model, its aleatoric scale read from it or its metadata.

    A camera-aware model's default camera is the metadata's camera.

    Raises:
      ValueError: a camera-aware model whose metadata has no camera.
    """
    default_camera = None
    if is_camera_aware(model):
      if metadata is None or metadata.camera is None:
        raise ValueError(f"model {getattr(model, 'name', '')!r} is camera-aware: its export "
                         "needs the metadata's camera as the default camera, and the metadata "
                         f"has none ({artifacts.describe(metadata)})")
      default_camera = metadata.camera
    return cls(model, samples, aleatoric_factor=aleatoric_std_factor(model, metadata),
               default_camera=default_camera)

  # ------------------------------------------------------------ the graph
  def _cameras(self, camera: tf.Tensor | None, batch: tf.Tensor) -> tf.Tensor | None:
    """The ``[B, 4]`` camera input: ``camera``, or the default camera tiled to the batch."""
    if not self.camera_aware:
      if camera is not None:
        raise ValueError("a camera was given for a model without a camera input")
      return None
    if camera is None:
      return tf.tile(tf.constant(self.default_camera, tf.float32)[None], tf.stack([batch, 1]))
    return tf.reshape(tf.cast(camera, tf.float32), tf.stack([batch, 4]))

  def _model(self, x: tf.Tensor, cameras: tf.Tensor | None):
    """The model on padded float images (and their cameras)."""
    if cameras is None:
      return self.model(x, training=False)
    return self.model({"image": x, protocol.CAMERA_INPUT: cameras}, training=False)

  def depth_outputs(self, images: tf.Tensor, camera: tf.Tensor | None = None
                    ) -> dict[str, tf.Tensor]:
    """Depth (and uncertainty) for uint8 images ``[B, H, W, 3]``, without input checks.

    ``camera``: a camera-aware model's float32 ``[B, 4]`` cameras, or None for
    its default camera (must be None for other models).

    Traced without the global seed: a seed set by ``tf.random.set_seed`` (or
    ``keras.utils.set_random_seed``) before the export would otherwise fix the
    random ops' seeds, and every call (every restart of a server) would draw
    the same dropout masks. Unseeded, the random kernels seed themselves from
    the system.
    """
    if not tf.executing_eagerly():
      tf.compat.v1.get_default_graph().seed = None
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    cameras = self._cameras(camera, shape[0])
    pad_h = tf.math.floormod(-height, SIZE_MULTIPLE)
    pad_w = tf.math.floormod(-width, SIZE_MULTIPLE)
    top, left = pad_h // 2, pad_w // 2
    x = tf.cast(images, tf.float32) * (1.0 / 255.0)
    x = tf.gather(x, reflect_indices(height, top, pad_h - top), axis=1)
    x = tf.gather(x, reflect_indices(width, left, pad_w - left), axis=2)
    samples = self.samples
    if samples > 1 and self.separate_passes:
      passes = [split_depth_output(self._model(x, cameras)) for _ in range(samples)]
      depth = tf.stack([d for d, _ in passes], axis=1)  # [B, T, Hp, Wp]
      log_scale = None if passes[0][1] is None else tf.stack([s for _, s in passes], axis=1)
    else:
      if samples > 1:
        # Image-major: the T copies of image 0 first. Not tf.repeat: its reshape forgets the
        # channel count, and TFLite lowers convolutions only with known input channels.
        x = tf.tile(x[:, None], [1, samples, 1, 1, 1])
        x = tf.reshape(x, tf.stack([-1, height + pad_h, width + pad_w, 3]))
        if cameras is not None:
          cameras = tf.reshape(tf.tile(cameras[:, None], [1, samples, 1]), [-1, 4])
      depth, log_scale = split_depth_output(self._model(x, cameras))
      grid = tf.stack([-1, samples, height + pad_h, width + pad_w])
      depth = tf.reshape(depth, grid)
      log_scale = None if log_scale is None else tf.reshape(log_scale, grid)
    depth = depth[:, :, top:top + height, left:left + width]  # [B, T, H, W]
    if log_scale is not None:
      log_scale = log_scale[:, :, top:top + height, left:left + width]
    outputs = {}
    if samples == 1:
      outputs[protocol.DEPTH] = depth[:, 0]
      if log_scale is not None:
        aleatoric = tf.exp(log_scale[:, 0]) * self.aleatoric_factor
        outputs[protocol.DEPTH_STD] = aleatoric
        outputs[protocol.ALEATORIC_STD] = aleatoric
    else:
      mean = tf.reduce_mean(depth, axis=1)
      epistemic_var = tf.reduce_mean(tf.math.squared_difference(depth, mean[:, None]), axis=1)
      outputs[protocol.DEPTH] = mean
      if log_scale is None:
        outputs[protocol.DEPTH_STD] = tf.sqrt(epistemic_var)
        outputs[protocol.EPISTEMIC_STD] = outputs[protocol.DEPTH_STD]  # As Predictor returns.
      else:
        scale = tf.exp(log_scale) * self.aleatoric_factor
        aleatoric_var = tf.reduce_mean(tf.square(scale), axis=1)
        outputs[protocol.DEPTH_STD] = tf.sqrt(tf.add(epistemic_var, aleatoric_var))
        outputs[protocol.EPISTEMIC_STD] = tf.sqrt(epistemic_var)
        outputs[protocol.ALEATORIC_STD] = tf.sqrt(aleatoric_var)
    self.output_names = tuple(outputs)
    return outputs

  @staticmethod
  def checked_camera(camera: tf.Tensor, batch: tf.Tensor) -> tf.Tensor:
    """The ``camera`` input after checks in the graph: float32 ``[batch, 4]``, plausible."""
    message = (f"input '{protocol.CAMERA_INPUT}' must be float32 [batch, 4] "
               f"({', '.join(protocol.CAMERA_FIELDS)}), one row per image")
    shape = tf.concat([[0], tf.shape(camera)], axis=0)  # Safe for any rank, as for images.
    flat = tf.reshape(camera, [-1])
    # Rows of 4 (padded with ones, so that a wrong shape reaches its own message).
    padding = tf.ones(tf.math.floormod(-tf.size(flat), 4)[None], camera.dtype)
    rows = tf.reshape(tf.concat([flat, padding], axis=0), [-1, 4])
    checks = [
        tf.debugging.assert_rank(camera, 2, message=message + "; wrong rank"),
        tf.debugging.assert_equal(shape[-1], 4, message=message + "; it does not have 4 values "
                                  "per row"),
        tf.debugging.assert_equal(shape[1], batch, message=message + "; the number of rows (x) "
                                  "differs from the number of images (y)"),
        tf.debugging.assert_equal(tf.reduce_all(tf.math.is_finite(flat) & (flat > 0)), True,
                                  message=message + "; every value must be finite and positive"),
        tf.debugging.assert_equal(tf.reduce_all(rows[:, 3] > rows[:, 0] * 1e-3), True,
                                  message=message + "; the focus distance (m) must lie beyond "
                                  "the focal length (mm)"),
    ]
    with tf.control_dependencies(checks):
      camera = tf.identity(camera)
    camera.set_shape([None, 4])  # Checked above, at run time.
    return camera

  def serve_images(self, images: tf.Tensor, camera: tf.Tensor | None = None
                   ) -> dict[str, tf.Tensor]:
    """``serving_default`` (``serving_camera`` with a camera): uint8 images checked in the graph."""
    message = ("input 'images' must be uint8 RGB [batch, height, width, 3] with batch, height "
               "and width >= 1")
    # Every check must be safe to run on any rank: the executor may run them in any order.
    shape = tf.concat([[0], tf.shape(images)], axis=0)  # A leading 0: [-1] exists for scalars.
    checks = [
        tf.debugging.assert_rank(images, 4, message=message + "; wrong rank"),
        tf.debugging.assert_equal(shape[-1], 3, message=message + "; channels are not 3"),
        tf.debugging.assert_positive(shape[1:4], message=message + "; it is empty"),
    ]
    with tf.control_dependencies(checks):
      images = tf.identity(images)
    images.set_shape([None, None, None, 3])  # Checked above, at run time.
    if camera is not None:
      camera = self.checked_camera(camera, tf.shape(images)[0])
    return self.depth_outputs(images, camera)

  def serve_encoded(self, image_bytes: tf.Tensor, camera: tf.Tensor | None = None
                    ) -> dict[str, tf.Tensor]:
    """``predict_encoded`` (``predict_encoded_camera``): encoded images, decoded in the graph."""
    checks = [tf.debugging.assert_rank(
        image_bytes, 1, message="input 'image_bytes' must be a string vector [batch] of encoded "
        "JPEG/PNG images")]
    with tf.control_dependencies(checks):
      count = tf.size(image_bytes)
    with tf.control_dependencies([tf.debugging.assert_positive(
        count, message="input 'image_bytes' holds no image")]):
      image_bytes = tf.identity(image_bytes)

    def decode(data):
      return tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)

    size = tf.shape(decode(image_bytes[0]))[:2]

    def decode_same_size(data):
      image = decode(data)
      check = tf.debugging.assert_equal(
          tf.shape(image)[:2], size, message="all images of one request must have the same "
          "height and width (the first image's, y); this one (x) differs")
      with tf.control_dependencies([check]):
        return tf.identity(image)

    images = tf.map_fn(decode_same_size, image_bytes,
                       fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    if camera is not None:
      camera = self.checked_camera(camera, tf.shape(images)[0])
    return self.depth_outputs(images, camera)

  # --------------------------------------------------------------- tracing
  def _traced(self, function: Callable, specs: Sequence[tf.TensorSpec]):
    """A concrete function, traced with the sampling layers on when samples > 1."""
    models.set_mc_sampling(self.model, self.samples > 1)
    try:
      return tf.function(function, input_signature=list(specs),
                         autograph=False).get_concrete_function()
    finally:
      models.set_mc_sampling(self.model, False)

  def signatures(self) -> dict[str, Any]:
    """The SavedModel signatures: ``serving_default`` and ``predict_encoded``.

    A camera-aware model also gets ``serving_camera`` and ``predict_encoded_camera``,
    which take the ``camera`` input (the first two use the default camera).
    """
    images = tf.TensorSpec(None, tf.uint8, name=protocol.IMAGES_INPUT)
    encoded = tf.TensorSpec(None, tf.string, name=protocol.ENCODED_INPUT)
    result = {
        protocol.SERVING_SIGNATURE: self._traced(self.serve_images, [images]),
        protocol.ENCODED_SIGNATURE: self._traced(self.serve_encoded, [encoded]),
    }
    if self.camera_aware:
      camera = tf.TensorSpec(None, tf.float32, name=protocol.CAMERA_INPUT)
      result[protocol.CAMERA_SIGNATURE] = self._traced(self.serve_images, [images, camera])
      result[protocol.ENCODED_CAMERA_SIGNATURE] = self._traced(self.serve_encoded,
                                                               [encoded, camera])
    return result

  def tflite_signature(self, input_size: tuple[int, int] | None):
    """``serving_default`` for TFLite: no assert ops, a known rank and channel count.

    A camera-aware model's has a second input, ``camera`` (float32 ``[batch,
    4]``, ``[1, 4]`` for a fixed size; no default: TFLite has no optional
    inputs, the caller passes the metadata's camera when it has none).

    Args:
      input_size: ``(height, width)`` for a model of fixed input
        ``[1, height, width, 3]``, or None for ``[batch, height, width, 3]``
        of any size.
    """
    shape = [None, None, None, 3] if input_size is None else [1, *input_size, 3]
    specs = [tf.TensorSpec(shape, tf.uint8, name=protocol.IMAGES_INPUT)]
    if not self.camera_aware:
      def serve(images):
        return self.depth_outputs(images)
    else:
      specs.append(tf.TensorSpec([shape[0], 4], tf.float32, name=protocol.CAMERA_INPUT))

      def serve(images, camera):
        return self.depth_outputs(images, camera)

    return self._traced(serve, specs)


def is_camera_aware(model) -> bool:
  """Whether a Keras model takes a camera input (inputs ``{"image", "camera"}``)."""
  inputs = getattr(model, "input", None)
  return isinstance(inputs, Mapping) and protocol.CAMERA_INPUT in inputs


class ExportModule(tf.Module):
  """What a SavedModel export tracks: the model's variables, as plain ``tf.Variable``.

  Tracking the raw variables (not the Keras model object) is what lets the
  TFLite converter freeze them into constants; with the Keras 3 model tracked
  it keeps them as resource variables (``VAR_HANDLE`` / ``READ_VARIABLE``),
  which the interpreter leaves uninitialised.
  """

  def __init__(self, model):
    super().__init__(name="d3tf_export")
    self.model_variables = [v if isinstance(v, tf.Variable) else v.value for v in model.variables]
