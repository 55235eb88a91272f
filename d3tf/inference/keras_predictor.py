"""The Keras predictor: depth (and its uncertainty) from a trained ``.keras`` model.

:meth:`Predictor.predict` takes images of any size: it pads them (reflect)
to a multiple of 32, predicts, and crops back. With ``samples > 1`` it turns
Monte-Carlo sampling on (MC dropout and variational layers) and draws the
samples in batched forward passes (each image repeated ``samples`` times,
chunked to ``max_batch_pixels``; for a model with reparameterisation layers,
which share one weight sample per pass, each pass holds every image at most
once).

**Uncertainty.** A model may have MC dropout and/or variational layers
(epistemic uncertainty, needs ``samples > 1``) and/or an aleatoric head
predicting a per-pixel log-scale (``D3NetConfig.aleatoric``: "gaussian" or
"laplace"). The result then has, besides ``"depth"`` (the mean of the
samples), ``"epistemic_std"`` (the standard deviation of the samples' depth),
``"aleatoric_std"`` (``sqrt`` of the mean over samples of the predicted
variance: ``exp(2 s)`` for a Gaussian, ``2 exp(2 s)`` for a Laplace) and
``"depth_std"``, the total ``sqrt(epistemic^2 + aleatoric^2)``; keys that do
not apply are absent. What the model has is read from the model itself (a
:class:`d3tf.models.D3Net`), else from the metadata's ``model_config``.

The images given to :meth:`Predictor.predict` must already look like the
model's training input: photographs from the metadata's camera for a
"defocus" model (``python -m d3tf.evaluate`` renders that blur on sharp
datasets itself).
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from absl import logging
import numpy as np

from d3tf import artifacts
from d3tf import model_files
from d3tf.sizes import SIZE_MULTIPLE

#: Default pixel budget of one forward pass (images x height x width after padding).
DEFAULT_MAX_BATCH_PIXELS = 2 ** 21


# ----------------------------------------------------------------- images
def _as_float_batch(images) -> tuple[np.ndarray, bool]:
  """float32 [B, H, W, 3] in [0, 1], and whether the input was a single image."""
  array = np.asarray(images)
  single = array.ndim == 3
  if single:
    array = array[None]
  if array.ndim != 4 or array.shape[-1] != 3:
    raise ValueError(f"images must be [B, H, W, 3] or [H, W, 3] RGB, got shape {np.shape(images)}")
  if min(array.shape[:3]) == 0:
    raise ValueError(f"images must not be empty, got shape {array.shape}")
  if array.dtype == np.uint8:
    return array.astype(np.float32) * np.float32(1.0 / 255.0), single
  if not np.issubdtype(array.dtype, np.floating):
    raise ValueError(f"images must be uint8 or float in [0, 1], got dtype {array.dtype}")
  array = array.astype(np.float32)
  if not np.all(np.isfinite(array)):
    raise ValueError("images contain NaN or infinite values")
  low, high = float(array.min()), float(array.max())
  if low < -1e-3 or high > 1.0 + 1e-3:
    raise ValueError(f"float images must lie in [0, 1], got values in [{low:g}, {high:g}] (pass "
                     "uint8 for 0-255 images)")
  return np.clip(array, 0.0, 1.0), single


def pad_to_multiple(images: np.ndarray, multiple: int = SIZE_MULTIPLE
                    ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
  """Reflect-pads ``[B, H, W, C]`` so that H and W are multiples of ``multiple``.

  The padding is split between both sides (the extra pixel, if odd, at the
  bottom / right); reflection repeats for pads larger than the image.

  Returns:
    ``(padded, (top, bottom, left, right))``.
  """
  height, width = images.shape[1:3]
  pad_h = -height % multiple
  pad_w = -width % multiple
  box = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
  if pad_h == 0 and pad_w == 0:
    return images, box
  padded = np.pad(images, ((0, 0), (box[0], box[1]), (box[2], box[3]), (0, 0)), mode="reflect")
  return padded, box


# -------------------------------------------------------------- predictor
class Predictor:
  """Predicts depth (and its uncertainty) with a trained model.

  Args:
    model: A Keras model mapping float32 images ``[N, H, W, 3]`` in [0, 1]
      (H, W multiples of 32) to depth ``[N, H, W, 1]`` in metres, or to a
      dict with ``"depth"`` (and, for an aleatoric head, ``"log_scale"``); a
      list whose first item is depth is accepted too.
    metadata: The model's :class:`d3tf.artifacts.Metadata`, or None.
    path: Where the model came from (for messages).
    max_batch_pixels: Pixel budget of one forward pass (images x padded
      height x width); at least one image is always passed.

  Attributes:
    model: The Keras model.
    metadata: The :class:`d3tf.artifacts.Metadata` (or None).
    path: The model file, if loaded from one.
    camera: The training camera (:class:`d3tf.optics.Camera`), or None for
      an all-in-focus model.
    input_kind: ``"defocus"`` or ``"sharp"``.
    aleatoric: ``"none"``, ``"gaussian"`` or ``"laplace"``: the likelihood
      of the model's log-scale head.
    num_mc_layers: MC dropout and variational layers (0: ``samples > 1``
      is refused).
    camera_aware: The model takes each image's camera as an input
      (``predict(..., camera=...)``; default the metadata's camera).
  """

  def __init__(self, model, metadata: artifacts.Metadata | None = None, *,
               path: str | None = None, max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS):
    if int(max_batch_pixels) < 1:
      raise ValueError(f"max_batch_pixels must be >= 1, got {max_batch_pixels!r}")
    from d3tf import models  # pylint: disable=g-import-not-at-top
    if metadata is not None and not isinstance(metadata, artifacts.Metadata):
      raise ValueError(f"metadata must be a d3tf.artifacts.Metadata or None, got "
                       f"{type(metadata).__name__}")
    self.model = model
    self.metadata = metadata
    self.path = path
    self.max_batch_pixels = int(max_batch_pixels)
    self.camera = metadata.camera if metadata is not None else None
    self.input_kind = metadata.input_kind if metadata is not None else "sharp"
    try:
      self.aleatoric = models.aleatoric_of(
          model, metadata.aleatoric if metadata is not None else "none")
    except ValueError as e:
      raise ValueError(f"model {self.path or ''}: {e}") from None
    self.num_mc_layers = models.set_mc_sampling(model, False)
    self._shared_samples = models.shares_sample_in_batch(model)
    self._forward_fns: dict[bool, Callable] = {}
    self.camera_aware = isinstance(getattr(model, "input", None), Mapping) and (
        "camera" in model.input)

  def __repr__(self) -> str:
    return f"Predictor({self.path or getattr(self.model, 'name', 'model')!r}: " \
           f"{artifacts.describe(self.metadata)})"

  @property
  def is_bayesian(self) -> bool:
    """True if the model can give an uncertainty (MC layers or an aleatoric head)."""
    return self.num_mc_layers > 0 or self.aleatoric != "none"

  def _forward(self, mc: bool) -> Callable:
    """A tf.function of the model, traced with MC sampling off or on (one per state).

    It returns ``(depth, log_scale or None)``.
    """
    if mc not in self._forward_fns:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      model, aleatoric = self.model, self.aleatoric != "none"

      def forward(x):
        out = model(x, training=False)
        log_scale = None
        if isinstance(out, Mapping):
          log_scale = out.get("log_scale") if aleatoric else None
          out = out["depth"]
        elif isinstance(out, (list, tuple)):
          out = out[0]
        return out, log_scale

      self._forward_fns[mc] = tf.function(forward, reduce_retracing=True)
    return self._forward_fns[mc]

  def _set_mc(self, enabled: bool) -> int:
    from d3tf.models import set_mc_sampling  # pylint: disable=g-import-not-at-top
    return set_mc_sampling(self.model, enabled)

  def _passes(self, batch: int, samples: int, chunk: int) -> list[np.ndarray]:
    """Row indices (``image * samples + sample``) of each forward pass."""
    if samples > 1 and self._shared_samples:
      # One weight sample per pass: never two samples of one image in a pass.
      chunk = min(chunk, batch)
      return [np.arange(start, min(start + chunk, batch)) * samples + t
              for t in range(samples) for start in range(0, batch, chunk)]
    total = batch * samples
    return [np.arange(start, min(start + chunk, total)) for start in range(0, total, chunk)]

  def _camera_vectors(self, camera, batch: int) -> np.ndarray | None:
    """The ``[batch, 4]`` camera vectors of a camera-aware model (None for other models)."""
    from d3tf.serving import protocol  # pylint: disable=g-import-not-at-top
    if not self.camera_aware:
      protocol.refuse_camera(camera, f"model {self.path or ''}")
      return None
    from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
    camera = self.camera if camera is None else camera
    if camera is None:
      raise ValueError(f"model {self.path or ''} is camera-aware: give the camera of the images "
                       "(focal length, f-number, pixel pitch, focus distance); its metadata "
                       "has no default camera")
    # The exports' camera input and this model's are the same [batch, 4] vectors.
    vectors = protocol.as_camera_vectors(camera, batch)
    for vector in vectors:
      camera_range.camera_from_vector(vector)  # Raises ValueError naming a bad value.
    return vectors

  def _run(self, padded: np.ndarray, samples: int, mc: bool, cameras: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Depth and log-scale (or None) ``[B, samples, Hp, Wp]``, in chunks of the pixel budget."""
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    batch, height, width = padded.shape[:3]
    chunk = max(1, self.max_batch_pixels // (height * width))
    forward = self._forward(mc)
    total = batch * samples
    depth_out = np.empty((total, height, width), np.float32)
    scale_out = np.empty((total, height, width), np.float32) if self.aleatoric != "none" else None
    for rows in self._passes(batch, samples, chunk):
      x = tf.constant(padded[rows // samples])  # image of each row.
      if cameras is not None:
        x = {"image": x, "camera": tf.constant(cameras[rows // samples])}
      depth, log_scale = forward(x)
      for name, values, out in (("depth", depth, depth_out), ("log_scale", log_scale, scale_out)):
        if out is None:
          continue
        if values is None:
          raise ValueError(f"model {self.path or ''} returned no {name!r}; expected a dict with "
                           "'depth' and 'log_scale' from an aleatoric model")
        values = values.numpy()
        if values.ndim == 4:
          values = values[..., 0]
        if values.shape != (rows.size, height, width):
          raise ValueError(f"model {self.path or ''} returned {name} of shape {values.shape} "
                           f"for input {(rows.size, height, width, 3)}; expected [N, H, W, 1]")
        out[rows] = values
    shape = (batch, samples, height, width)
    return depth_out.reshape(shape), None if scale_out is None else scale_out.reshape(shape)

  def predict(self, images, samples: int = 1, camera=None) -> dict[str, np.ndarray]:
    """Predicts depth in metres, and its uncertainty, at the images' own size.

    Args:
      images: ``uint8`` (0-255) or float (0-1) RGB, ``[B, H, W, 3]`` or one
        ``[H, W, 3]`` image, any H and W (reflect-padded to a multiple of 32
        and cropped back).
      samples: Number of Monte-Carlo samples T. 1: a single deterministic
        pass (dropout off, variational layers at their posterior mean).
        T > 1: MC dropout and variational weight sampling on, the T samples
        of every image drawn in batched passes (about 20 give a usable
        uncertainty map).
      camera: Camera-aware models only: the images' camera, a
        :class:`d3tf.optics.Camera`, a ``[4]`` vector (focal length mm,
        f-number, pixel pitch um, focus distance m) or ``[B, 4]``, one per
        image; None: the metadata's (default) camera.

    Returns:
      float32 ``[B, H, W]`` arrays (always batched, also for one image):

      * ``"depth"``: metres (the mean of the T samples);
      * ``"epistemic_std"`` (T > 1): standard deviation of the samples' depth;
      * ``"aleatoric_std"`` (aleatoric head): ``sqrt`` of the mean over the
        samples of the predicted variance (Gaussian ``exp(2 s)``, Laplace
        ``2 exp(2 s)``);
      * ``"depth_std"`` (either of the above): the total standard deviation
        ``sqrt(epistemic_std^2 + aleatoric_std^2)``.

    Raises:
      ValueError: bad images (shape, dtype, range), ``samples < 1``, or
        ``samples > 1`` with a model without MC-dropout or variational
        layers.
    """
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
      raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    samples = int(samples)
    x, _ = _as_float_batch(images)
    cameras = self._camera_vectors(camera, x.shape[0])
    height, width = x.shape[1:3]
    padded, (top, _, left, _) = pad_to_multiple(x)
    if samples == 1:
      draws, log_scales = self._run(padded, 1, mc=False, cameras=cameras)
    else:
      if self._set_mc(True) == 0:
        self._set_mc(False)
        raise ValueError(f"samples={samples} needs Monte-Carlo sampling, but model "
                         f"{self.path or getattr(self.model, 'name', '')!r} has no MCDropout "
                         "or variational layer")
      try:
        draws, log_scales = self._run(padded, samples, mc=True, cameras=cameras)
      finally:
        self._set_mc(False)
    crop = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
    draws = draws[crop]
    if not np.all(np.isfinite(draws)):
      logging.warning("Model %s predicted %d non-finite depth values", self.path or "",
                      int(np.count_nonzero(~np.isfinite(draws))))
    result = {"depth": draws.mean(axis=1).astype(np.float32)}
    variance = None
    if samples > 1:
      epistemic = draws.std(axis=1)
      result["epistemic_std"] = epistemic.astype(np.float32)
      variance = np.square(epistemic.astype(np.float64))
    if log_scales is not None:
      from d3tf import models  # pylint: disable=g-import-not-at-top
      factor = models.ALEATORIC_VARIANCE_FACTOR[self.aleatoric]
      aleatoric_var = (factor * np.exp(2.0 * log_scales[crop].astype(np.float64))).mean(axis=1)
      result["aleatoric_std"] = np.sqrt(aleatoric_var).astype(np.float32)
      variance = aleatoric_var if variance is None else variance + aleatoric_var
    if variance is not None:
      result["depth_std"] = np.sqrt(variance).astype(np.float32)
    return result


def load_model(path: str | os.PathLike, checkpoint: str = "auto"):
  """Loads a ``.keras`` model (uncompiled) with d3tf's custom layers registered.

  Args:
    path: A ``.keras`` file or a model_dir (see :func:`resolve_model_path`).
    checkpoint: ``"auto"``, ``"final"`` or ``"best"`` for a model_dir.

  Returns:
    ``(keras model, model file path)``.

  Raises:
    FileNotFoundError: nothing to load at ``path``.
    ValueError: a corrupt or incompatible model file (naming it).
  """
  import keras  # pylint: disable=g-import-not-at-top
  # Importing these registers d3tf's layers and losses with Keras.
  import d3tf.losses  # pylint: disable=g-import-not-at-top,unused-import
  import d3tf.models  # pylint: disable=g-import-not-at-top,unused-import

  model_path = artifacts.resolve_model_path(path, checkpoint)
  model_files.check_keras_file(model_path)  # Empty or truncated: say so (Keras: "not found").
  try:
    model = keras.models.load_model(model_path, compile=False)
  except Exception as e:  # Keras raises many types for bad archives.
    raise ValueError(f"{model_path}: cannot load the Keras model, corrupt or incompatible file "
                     f"({type(e).__name__}: {e})") from None
  return model, model_path
