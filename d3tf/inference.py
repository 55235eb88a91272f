"""Loading trained models and predicting depth: shared by evaluate, predict and export.

A trained model lives in a *model_dir* written by ``python -m d3tf.train``::

  model_dir/model.keras           the final model
  model_dir/best.keras            the best checkpoint (by validation error)
  model_dir/d3tf_metadata.json    what the model expects (see below)

or in any ``.keras`` file with ``d3tf_metadata.json`` beside it. The metadata
records how the model was trained::

  {"camera": Camera.to_dict() or null (trained on all-in-focus images),
   "psf": "gaussian" | "disk", "render_options": RenderOptions.to_dict(),
   "model_config": D3NetConfig.to_dict(), "input": "defocus" | "sharp",
   "train_data": "...", "d3tf_version": "..."}

Typical use::

  predictor = load_predictor("runs/nyu_focus2m")       # or ".../best.keras"
  out = predictor.predict(images)                       # uint8 [B, H, W, 3]
  out["depth"]                                          # float32 [B, H, W] metres
  out = predictor.predict(images, samples=20)           # + out["depth_std"], ...

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

import json
import os
from typing import Any, Callable, Mapping

from absl import logging
import numpy as np

#: File name of the metadata beside a model.
METADATA_FILENAME = "d3tf_metadata.json"
#: Model file names inside a model_dir.
FINAL_MODEL_FILENAME = "model.keras"
BEST_MODEL_FILENAME = "best.keras"
#: ``checkpoint`` values of :func:`resolve_model_path` / :func:`load_predictor`.
CHECKPOINTS = ("auto", "final", "best")
#: What a model takes as input.
INPUT_KINDS = ("defocus", "sharp")
#: Input height and width are padded to a multiple of this.
SIZE_MULTIPLE = 32
#: Default pixel budget of one forward pass (images x height x width after padding).
DEFAULT_MAX_BATCH_PIXELS = 2 ** 21


def define_checkpoint_flag():
  """Defines the ``--checkpoint`` flag the command-line programs share.

  Returns:
    The absl ``FlagHolder`` of ``--checkpoint`` (one of :data:`CHECKPOINTS`).
  """
  from absl import flags  # pylint: disable=g-import-not-at-top
  return flags.DEFINE_enum(
      "checkpoint", "auto", list(CHECKPOINTS),
      f"Which model of a model_dir: 'final' ({FINAL_MODEL_FILENAME}), 'best' "
      f"({BEST_MODEL_FILENAME}), or 'auto' ({FINAL_MODEL_FILENAME} if present, else "
      f"{BEST_MODEL_FILENAME}).")


# ------------------------------------------------------------------ paths
def resolve_model_path(path: str | os.PathLike, checkpoint: str = "auto") -> str:
  """The ``.keras`` file that ``path`` names.

  Args:
    path: A ``.keras`` file, or a model_dir holding ``model.keras`` and/or
      ``best.keras``.
    checkpoint: For a model_dir: ``"final"`` (``model.keras``), ``"best"``
      (``best.keras``) or ``"auto"`` (``model.keras`` if present, else
      ``best.keras``). Ignored for a file.

  Returns:
    The model file's path.

  Raises:
    FileNotFoundError: nothing to load at ``path`` (the message names it and
      what was looked for).
    ValueError: a bad ``checkpoint`` or a file that is not ``.keras``.
  """
  path = os.fspath(path)
  if checkpoint not in CHECKPOINTS:
    raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
  if os.path.isdir(path):
    names = {"final": [FINAL_MODEL_FILENAME], "best": [BEST_MODEL_FILENAME],
             "auto": [FINAL_MODEL_FILENAME, BEST_MODEL_FILENAME]}[checkpoint]
    for name in names:
      candidate = os.path.join(path, name)
      if os.path.isfile(candidate):
        return candidate
    raise FileNotFoundError(f"{path}: model_dir holds no {' or '.join(names)} (found "
                            f"{sorted(os.listdir(path))[:20]})")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such model file or model_dir")
  if not path.endswith(".keras"):
    raise ValueError(f"{path}: expected a .keras file or a model_dir")
  return path


def metadata_path(path: str | os.PathLike) -> str:
  """Where the metadata of ``path`` (a model_dir, a ``.keras`` file or the JSON itself) lives."""
  path = os.fspath(path)
  if path.endswith(".json"):
    return path
  if os.path.isdir(path) or not os.path.splitext(path)[1]:
    return os.path.join(path, METADATA_FILENAME)
  return os.path.join(os.path.dirname(os.path.abspath(path)), METADATA_FILENAME)


# --------------------------------------------------------------- metadata
def _to_dict(value: Any, what: str) -> dict[str, Any] | None:
  """A dataclass-like value (``to_dict()``), a mapping, or None, as a plain dict."""
  if value is None:
    return None
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if not isinstance(value, Mapping):
    raise ValueError(f"{what} must be a mapping or have to_dict(), got {value!r}")
  return json.loads(json.dumps(dict(value)))  # JSON-ready (tuples -> lists), checked now.


def _check_metadata(meta: Any, where: str) -> dict[str, Any]:
  """Validates metadata read from or about to be written to ``where``."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  from d3tf.optics import RenderOptions  # pylint: disable=g-import-not-at-top

  if not isinstance(meta, dict):
    raise ValueError(f"{where}: metadata must be a JSON object, got {type(meta).__name__}")
  kind = meta.get("input")
  if kind not in INPUT_KINDS:
    raise ValueError(f"{where}: 'input' must be one of {INPUT_KINDS}, got {kind!r}")
  camera = meta.get("camera")
  if camera is not None:
    if not isinstance(camera, dict):
      raise ValueError(f"{where}: 'camera' must be an object or null, got {camera!r}")
    try:
      Camera.from_dict(camera)
    except (ValueError, TypeError) as e:
      raise ValueError(f"{where}: bad 'camera': {e}") from None
  if kind == "defocus" and camera is None:
    raise ValueError(f"{where}: input 'defocus' needs a 'camera' (null means all-in-focus input)")
  psf = meta.get("psf")
  if psf not in (None, "gaussian", "disk"):
    raise ValueError(f"{where}: 'psf' must be 'gaussian' or 'disk', got {psf!r}")
  options = meta.get("render_options")
  if options is not None:
    if not isinstance(options, dict):
      raise ValueError(f"{where}: 'render_options' must be an object or null, got {options!r}")
    try:
      RenderOptions.for_mode(**_render_kwargs(options))
    except (ValueError, TypeError) as e:
      raise ValueError(f"{where}: bad 'render_options': {e}") from None
  return meta


def _render_kwargs(options: Mapping[str, Any] | None) -> dict[str, Any]:
  """RenderOptions fields from JSON (lists back to tuples), for render_defocus(**kwargs)."""
  out = {}
  for key, value in (options or {}).items():
    out[key] = tuple(value) if isinstance(value, list) else value
  return out


def write_metadata(path: str | os.PathLike, *, camera: Any = None, input_kind: str | None = None,
                   psf: str = "gaussian", render_options: Any = None, model_config: Any = None,
                   train_data: str | None = None,
                   extra: Mapping[str, Any] | None = None) -> str:
  """Writes ``d3tf_metadata.json`` for a model.

  Args:
    path: A model_dir, a ``.keras`` file (the JSON goes beside it) or the
      JSON path itself.
    camera: The :class:`d3tf.optics.Camera` (or its dict) whose blur the
      model was trained on; None for all-in-focus training.
    input_kind: ``"defocus"`` or ``"sharp"`` (the JSON's ``"input"``);
      default ``"defocus"`` with a camera, else ``"sharp"``.
    psf: ``"gaussian"`` or ``"disk"``.
    render_options: :class:`d3tf.optics.RenderOptions` or its dict; default
      (with a camera) the improved mode's defaults.
    model_config: ``D3NetConfig`` or its dict.
    train_data: A description of the training data (dataset, path).
    extra: More JSON-ready keys to store (they may not replace the above).

  Returns:
    The path of the JSON written.

  Raises:
    ValueError: inconsistent or invalid values (e.g. ``"defocus"`` without a
      camera), naming the file.
  """
  import d3tf  # pylint: disable=g-import-not-at-top
  from d3tf.optics import RenderOptions  # pylint: disable=g-import-not-at-top

  target = metadata_path(path)
  camera_dict = _to_dict(camera, "camera")
  if input_kind is None:
    input_kind = "defocus" if camera_dict is not None else "sharp"
  if render_options is None and camera_dict is not None:
    render_options = RenderOptions.for_mode()
  meta = {"camera": camera_dict, "psf": psf,
          "render_options": _to_dict(render_options, "render_options"),
          "model_config": _to_dict(model_config, "model_config"), "input": input_kind,
          "train_data": train_data, "d3tf_version": d3tf.__version__}
  for key, value in (extra or {}).items():
    if key in meta:
      raise ValueError(f"{target}: extra key {key!r} would replace a standard metadata key")
    meta[key] = value
  _check_metadata(meta, target)
  os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_text(target, json.dumps(meta, indent=2))
  return target


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """Reads and checks ``d3tf_metadata.json``.

  Args:
    path: A model_dir, a ``.keras`` file (the JSON beside it) or the JSON.

  Returns:
    The metadata dict (keys as written by :func:`write_metadata`).

  Raises:
    FileNotFoundError: no metadata file (the message names the path).
    ValueError: unreadable JSON or invalid content, naming the file.
  """
  target = metadata_path(path)
  try:
    with open(target) as f:
      text = f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f"{target}: model metadata not found (d3tf.train writes it beside "
                            "the model; d3tf.inference.write_metadata makes one)") from None
  except OSError as e:
    raise ValueError(f"{target}: cannot read model metadata ({e})") from None
  try:
    meta = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{target}: corrupt model metadata, not valid JSON ({e})") from None
  return _check_metadata(meta, target)


def camera_from_metadata(meta: Mapping[str, Any] | None):
  """The :class:`d3tf.optics.Camera` of the metadata, or None (all-in-focus / no metadata)."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  if not meta or meta.get("camera") is None:
    return None
  return Camera.from_dict(meta["camera"])


def render_kwargs_from_metadata(meta: Mapping[str, Any] | None) -> dict[str, Any]:
  """``psf`` and render options of the metadata as keyword arguments of render_defocus."""
  meta = meta or {}
  kwargs = _render_kwargs(meta.get("render_options"))
  kwargs["psf"] = meta.get("psf") or "gaussian"
  return kwargs


def describe_metadata(meta: Mapping[str, Any] | None) -> str:
  """One line saying what input the model expects, for logs."""
  if not meta:
    return "no metadata (input assumed all-in-focus)"
  camera = meta.get("camera")
  if meta.get("input") == "sharp" or camera is None:
    text = "all-in-focus (sharp) input"
  else:
    text = (f"defocused input from a {camera['focal_length_m'] * 1e3:g} mm f/"
            f"{camera['f_number']:g} camera focused at {camera['focus_distance_m']:g} m (pixel "
            f"pitch {camera['pixel_pitch_m'] * 1e6:g} um, {meta.get('psf') or 'gaussian'} PSF)")
  if meta.get("train_data"):
    text += f", trained on {meta['train_data']}"
  return text


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
    metadata: The model's metadata (see the module docstring), or None.
    path: Where the model came from (for messages).
    max_batch_pixels: Pixel budget of one forward pass (images x padded
      height x width); at least one image is always passed.

  Attributes:
    model: The Keras model.
    metadata: The metadata dict (or None).
    path: The model file, if loaded from one.
    camera: The training camera (:class:`d3tf.optics.Camera`), or None for
      an all-in-focus model.
    input_kind: ``"defocus"`` or ``"sharp"``.
    aleatoric: ``"none"``, ``"gaussian"`` or ``"laplace"``: the likelihood
      of the model's log-scale head.
    num_mc_layers: MC dropout and variational layers (0: ``samples > 1``
      is refused).
  """

  def __init__(self, model, metadata: Mapping[str, Any] | None = None, *,
               path: str | None = None, max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS):
    if int(max_batch_pixels) < 1:
      raise ValueError(f"max_batch_pixels must be >= 1, got {max_batch_pixels!r}")
    from d3tf.models import set_mc_sampling  # pylint: disable=g-import-not-at-top
    from d3tf.models import variational_layers  # pylint: disable=g-import-not-at-top
    self.model = model
    self.metadata = dict(metadata) if metadata is not None else None
    self.path = path
    self.max_batch_pixels = int(max_batch_pixels)
    self.camera = camera_from_metadata(self.metadata)
    self.input_kind = (self.metadata or {}).get("input") or "sharp"
    self.aleatoric = self._aleatoric_kind()
    self.num_mc_layers = set_mc_sampling(model, False)
    self._shared_samples = any(layer.shares_sample_in_batch
                               for layer in variational_layers(model))
    self._forward_fns: dict[bool, Callable] = {}

  def __repr__(self) -> str:
    return f"Predictor({self.path or getattr(self.model, 'name', 'model')!r}: " \
           f"{describe_metadata(self.metadata)})"

  def _aleatoric_kind(self) -> str:
    config = getattr(self.model, "d3net_config", None)
    kind = getattr(config, "aleatoric", None)
    if kind is None:
      kind = ((self.metadata or {}).get("model_config") or {}).get("aleatoric") or "none"
    if kind not in ("none", "gaussian", "laplace"):
      raise ValueError(f"model {self.path or ''}: unknown aleatoric likelihood {kind!r} (expected "
                       "'none', 'gaussian' or 'laplace')")
    return kind

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

  def _run(self, padded: np.ndarray, samples: int, mc: bool
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
      depth, log_scale = forward(tf.constant(padded[rows // samples]))  # image of each row.
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

  def predict(self, images, samples: int = 1) -> dict[str, np.ndarray]:
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
    height, width = x.shape[1:3]
    padded, (top, _, left, _) = pad_to_multiple(x)
    if samples == 1:
      draws, log_scales = self._run(padded, 1, mc=False)
    else:
      if self._set_mc(True) == 0:
        self._set_mc(False)
        raise ValueError(f"samples={samples} needs Monte-Carlo sampling, but model "
                         f"{self.path or getattr(self.model, 'name', '')!r} has no MCDropout "
                         "or variational layer")
      try:
        draws, log_scales = self._run(padded, samples, mc=True)
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
      factor = 2.0 if self.aleatoric == "laplace" else 1.0
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

  from d3tf import model_files  # pylint: disable=g-import-not-at-top
  model_path = resolve_model_path(path, checkpoint)
  model_files.check_keras_file(model_path)  # Empty or truncated: say so (Keras: "not found").
  try:
    model = keras.models.load_model(model_path, compile=False)
  except Exception as e:  # Keras raises many types for bad archives.
    raise ValueError(f"{model_path}: cannot load the Keras model, corrupt or incompatible file "
                     f"({type(e).__name__}: {e})") from None
  return model, model_path


def load_predictor(path: str | os.PathLike, *, checkpoint: str = "auto",
                   require_metadata: bool = True,
                   max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS) -> Predictor:
  """Loads a trained model and its metadata into a :class:`Predictor`.

  Args:
    path: A model_dir (``model.keras`` / ``best.keras`` +
      ``d3tf_metadata.json``) or a ``.keras`` file with the metadata beside
      it; or an export of ``d3tf.export`` (a SavedModel version folder, a
      model's export folder (its latest version) or a ``.tflite`` file), for
      which a predictor of :mod:`d3tf.serving.backends` with the same
      interface is returned.
    checkpoint: ``"auto"`` (``model.keras``, else ``best.keras``),
      ``"final"`` or ``"best"``, for a model_dir.
    require_metadata: If False, a missing metadata file is only a warning
      (the model is then taken to expect all-in-focus input).
    max_batch_pixels: See :class:`Predictor`.

  Returns:
    The predictor.

  Raises:
    FileNotFoundError: missing model file or (with ``require_metadata``)
      metadata, naming the path.
    ValueError: corrupt model file or metadata, naming it.
  """
  from d3tf.serving import backends  # pylint: disable=g-import-not-at-top
  exported = backends.load_export_predictor(path, max_batch_pixels=max_batch_pixels)
  if exported is not None:
    return exported
  model, model_path = load_model(path, checkpoint)
  try:
    meta = read_metadata(model_path)
  except FileNotFoundError:
    if require_metadata:
      raise
    logging.warning("%s: no %s beside the model; assuming all-in-focus input", model_path,
                    METADATA_FILENAME)
    meta = None
  predictor = Predictor(model, meta, path=model_path, max_batch_pixels=max_batch_pixels)
  logging.info("Loaded %s: %s", model_path, describe_metadata(meta))
  return predictor
