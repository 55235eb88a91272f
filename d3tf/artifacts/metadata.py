"""The metadata of a trained model or an export: one versioned dataclass.

``d3tf_metadata.json`` sits beside every trained model (in its model_dir) and
inside every export. It says what the model expects and how it was made::

  {"schema_version": 2,
   "input": "defocus" | "sharp",
   "camera": Camera.to_dict() or null (trained on all-in-focus images),
   "psf": a PSF name of d3tf.optics.psf | null,
   "render_options": RenderOptions.to_dict() (or some of its fields) | null,
   "model_config": D3NetConfig.to_dict() | null,
   "train_data": "procedural" | "nyu:/path" | ...,
   "d3tf_version": "...", "tf_version": "...",
   ...run facts (e.g. "crop_size", "loss", "real_defocus"),
   "export": {...} (exports only: format, version, samples, outputs, ...)}

Files written before the schema had a version (d3tf 0.1.0: the same keys
without ``schema_version`` and ``tf_version``) read as schema 1.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
from typing import Any, Mapping

from d3tf import atomic_io
from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera

#: File name of the metadata beside a model and inside an export.
METADATA_FILENAME = "d3tf_metadata.json"
#: The schema this d3tf writes. 1: d3tf 0.1.0 (no "schema_version" key);
#: 2: adds "schema_version" and "tf_version".
SCHEMA_VERSION = 2
#: What a model takes as input.
INPUT_KINDS = ("defocus", "sharp")
#: Likelihoods of an aleatoric head (``D3NetConfig.aleatoric``).
_ALEATORIC = ("none", "gaussian", "laplace")
#: The JSON keys of the standard fields (everything else is a run fact in ``extra``).
_STANDARD_KEYS = ("schema_version", "input", "camera", "psf", "render_options", "model_config",
                  "train_data", "d3tf_version", "tf_version", "export")


def _json_ready(value: Any, what: str) -> Any:
  """A dataclass-like value (``to_dict()``), a mapping or None, as JSON-ready data."""
  if value is None:
    return None
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if not isinstance(value, Mapping):
    raise ValueError(f"{what} must be a mapping or have to_dict(), got {value!r}")
  return json.loads(json.dumps(dict(value), default=str))  # Tuples -> lists, checked now.


def _tf_version() -> str | None:
  """The installed TensorFlow's version, read without importing TensorFlow."""
  try:
    return importlib.metadata.version("tensorflow")
  except importlib.metadata.PackageNotFoundError:
    return None


@dataclasses.dataclass(frozen=True)
class Metadata:
  """What a trained model expects and how it was made (``d3tf_metadata.json``).

  Build one for a new model with :meth:`for_training`; read one with
  :func:`read_metadata`.

  Attributes:
    input_kind: ``"defocus"`` or ``"sharp"`` (the JSON's ``"input"``).
    camera: The camera whose blur the model was trained on; None for
      all-in-focus input.
    psf: The PSF of the rendered blur (a name of :mod:`d3tf.optics.psf`), or
      None (real blur, or no blur).
    render_options: :class:`d3tf.optics.RenderOptions` fields (JSON-ready),
      or None.
    model_config: ``D3NetConfig.to_dict()``, or None.
    train_data: What the model was trained on (dataset, path).
    d3tf_version: The d3tf that trained the model.
    tf_version: The TensorFlow that trained it (None before schema 2).
    extra: Further run facts, JSON-ready (``crop_size``, ``loss``, ...).
    export: For an export, what the export holds (format, version, samples,
      outputs, signatures, ...); None for a trained model.
    schema_version: The schema the data follows (see :data:`SCHEMA_VERSION`).
  """

  input_kind: str = "sharp"
  camera: Camera | None = None
  psf: str | None = None
  render_options: Mapping[str, Any] | None = None
  model_config: Mapping[str, Any] | None = None
  train_data: str | None = None
  d3tf_version: str | None = None
  tf_version: str | None = None
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  export: Mapping[str, Any] | None = None
  schema_version: int = SCHEMA_VERSION

  def __post_init__(self):
    self.check()

  # ---------------------------------------------------------- constructors
  @classmethod
  def for_training(cls, *, camera: Camera | Mapping[str, Any] | None = None,
                   input_kind: str | None = None, psf: str = "gaussian",
                   render_options: Any = None, model_config: Any = None,
                   train_data: str | None = None,
                   extra: Mapping[str, Any] | None = None) -> "Metadata":
    """The metadata of a model trained now, with this d3tf's and TensorFlow's versions.

    Args:
      camera: The camera (or its dict) whose blur the model is trained on;
        None for all-in-focus training.
      input_kind: ``"defocus"`` or ``"sharp"``; default ``"defocus"`` with a
        camera, else ``"sharp"``.
      psf: The PSF name (kept only with a camera).
      render_options: :class:`d3tf.optics.RenderOptions` or its dict; default
        (with a camera) the improved mode's defaults.
      model_config: ``D3NetConfig`` or its dict.
      train_data: A description of the training data.
      extra: More JSON-ready run facts (they may not replace a standard key).

    Raises:
      ValueError: inconsistent or invalid values (e.g. ``"defocus"`` without a
        camera).
    """
    import d3tf  # pylint: disable=g-import-not-at-top
    if isinstance(camera, Mapping):
      camera = Camera.from_dict(camera)
    if input_kind is None:
      input_kind = "defocus" if camera is not None else "sharp"
    if render_options is None and camera is not None:
      from d3tf.optics.render import RenderOptions  # pylint: disable=g-import-not-at-top
      render_options = RenderOptions.for_mode()
    return cls(input_kind=input_kind, camera=camera, psf=psf,
               render_options=_json_ready(render_options, "render_options"),
               model_config=_json_ready(model_config, "model_config"), train_data=train_data,
               d3tf_version=d3tf.__version__, tf_version=_tf_version(),
               extra=_json_ready(extra or {}, "extra"))

  @classmethod
  def from_dict(cls, data: Any, where: str = "metadata") -> "Metadata":
    """Reads the JSON form (any schema up to :data:`SCHEMA_VERSION`).

    Args:
      data: The parsed JSON object.
      where: Where it came from, for messages (a file path).

    Raises:
      ValueError: not an object, a newer schema, or invalid content; the
        message names ``where`` and echoes the bad value.
    """
    if not isinstance(data, Mapping):
      raise ValueError(f"{where}: metadata must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
      raise ValueError(f"{where}: 'schema_version' must be an integer >= 1, got {version!r}")
    if version > SCHEMA_VERSION:
      raise ValueError(f"{where}: metadata schema {version} is newer than this d3tf reads "
                       f"({SCHEMA_VERSION}); update d3tf")
    camera = data.get("camera")
    if camera is not None:
      if not isinstance(camera, Mapping):
        raise ValueError(f"{where}: 'camera' must be an object or null, got {camera!r}")
      try:
        camera = Camera.from_dict(camera)
      except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: bad 'camera': {e}") from None
    for key in ("render_options", "model_config", "export"):
      if data.get(key) is not None and not isinstance(data[key], Mapping):
        raise ValueError(f"{where}: {key!r} must be an object or null, got {data[key]!r}")
    try:
      return cls(input_kind=data.get("input"), camera=camera, psf=data.get("psf"),
                 render_options=data.get("render_options"),
                 model_config=data.get("model_config"), train_data=data.get("train_data"),
                 d3tf_version=data.get("d3tf_version"), tf_version=data.get("tf_version"),
                 extra={k: v for k, v in data.items() if k not in _STANDARD_KEYS},
                 export=data.get("export"), schema_version=version)
    except ValueError as e:
      raise ValueError(f"{where}: {e}") from None

  # ------------------------------------------------------------- checking
  def check(self) -> None:
    """Raises ValueError (echoing the value) if the fields do not fit together."""
    if self.input_kind not in INPUT_KINDS:
      raise ValueError(f"'input' must be one of {INPUT_KINDS}, got {self.input_kind!r}")
    if self.camera is not None and not isinstance(self.camera, Camera):
      raise ValueError(f"'camera' must be a Camera or None, got {self.camera!r}")
    if self.input_kind == "defocus" and self.camera is None:
      raise ValueError("input 'defocus' needs a 'camera' (null means all-in-focus input)")
    if self.psf is not None and self.psf not in psf_lib.names():
      raise ValueError(f"'psf' must be one of {psf_lib.names()}, got {self.psf!r}")
    if self.render_options is not None:
      from d3tf.optics.render import RenderOptions  # pylint: disable=g-import-not-at-top
      try:
        RenderOptions.for_mode(**_tuples(self.render_options))
      except (ValueError, TypeError) as e:
        raise ValueError(f"bad 'render_options': {e}") from None
    clash = sorted(set(self.extra) & set(_STANDARD_KEYS))
    if clash:
      raise ValueError(f"extra keys {clash} would replace standard metadata keys")

  # ---------------------------------------------------------------- views
  def to_dict(self) -> dict[str, Any]:
    """The JSON form (schema :data:`SCHEMA_VERSION`; run facts at the top level)."""
    out = {"schema_version": SCHEMA_VERSION,
           "camera": self.camera.to_dict() if self.camera is not None else None,
           "psf": self.psf, "render_options": _json_ready(self.render_options, "render_options"),
           "model_config": _json_ready(self.model_config, "model_config"),
           "input": self.input_kind, "train_data": self.train_data,
           "d3tf_version": self.d3tf_version, "tf_version": self.tf_version}
    out.update(_json_ready(self.extra, "extra"))
    if self.export is not None:
      out["export"] = _json_ready(self.export, "export")
    return out

  def with_export(self, info: Mapping[str, Any]) -> "Metadata":
    """A copy with the ``export`` entry set to ``info`` (JSON-ready)."""
    return dataclasses.replace(self, export=_json_ready(info, "export"))

  def render_kwargs(self) -> dict[str, Any]:
    """``psf`` and the render options as keyword arguments of ``render_defocus``."""
    kwargs = _tuples(self.render_options or {})
    kwargs["psf"] = self.psf or psf_lib.DEFAULT_PSF
    return kwargs

  @property
  def aleatoric(self) -> str:
    """The likelihood of the model's aleatoric head: ``"none"``, ``"gaussian"``, ``"laplace"``."""
    kind = (self.model_config or {}).get("aleatoric") or "none"
    if kind not in _ALEATORIC:
      raise ValueError(f"unknown aleatoric likelihood {kind!r} in model_config (expected one of "
                       f"{_ALEATORIC})")
    return kind

  @property
  def variational(self) -> bool:
    """Whether the model config has variational blocks."""
    return bool((self.model_config or {}).get("variational_blocks"))

  @property
  def camera_range_name(self) -> str | None:
    """The camera range a camera-aware model was trained on (``extra["camera_range"]``), or None."""
    return (self.extra.get("camera_range") or {}).get("name")

  @property
  def camera_range(self):
    """The :class:`d3tf.optics.camera_range.CameraRange` of ``extra["camera_range"]``, or None."""
    values = self.extra.get("camera_range")
    if not values:
      return None
    from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
    return camera_range.CameraRange.from_dict(values)

  def _blur_text(self) -> str:
    if self.psf is None and self.extra.get("real_defocus"):
      return "real blur"
    return f"{self.psf or psf_lib.DEFAULT_PSF} PSF"

  def describe(self) -> str:
    """One line saying what input the model expects, for logs."""
    if self.input_kind == "sharp" or self.camera is None:
      text = "all-in-focus (sharp) input"
    elif (self.model_config or {}).get("camera_aware"):  # docs/any_camera.md
      trained = self.camera_range_name
      text = (f"defocused input from any camera, given with each image "
              f"({'trained on camera range ' + trained + '; ' if trained else ''}default "
              f"camera {self.camera.describe()}; {self._blur_text()})")
    else:
      text = (f"defocused input from a camera with {self.camera.describe()} "
              f"({self._blur_text()})")
    if self.train_data:
      text += f", trained on {self.train_data}"
    return text


def describe(meta: Metadata | None) -> str:
  """:meth:`Metadata.describe`, or what a missing metadata means."""
  return meta.describe() if meta is not None else "no metadata (input assumed all-in-focus)"


def _tuples(options: Mapping[str, Any]) -> dict[str, Any]:
  """JSON lists back to tuples (RenderOptions fields)."""
  return {key: tuple(value) if isinstance(value, list) else value
          for key, value in options.items()}


# ------------------------------------------------------------------- files
def metadata_path(path: str | os.PathLike) -> str:
  """Where the metadata of ``path`` (a model_dir, a ``.keras`` file or the JSON) lives."""
  path = os.fspath(path)
  if path.endswith(".json"):
    return path
  if os.path.isdir(path) or not os.path.splitext(path)[1]:
    return os.path.join(path, METADATA_FILENAME)
  return os.path.join(os.path.dirname(os.path.abspath(path)), METADATA_FILENAME)


def write_metadata(path: str | os.PathLike, meta: Metadata) -> str:
  """Writes ``meta`` as JSON.

  Args:
    path: A model_dir, a ``.keras`` file (the JSON goes beside it) or the
      JSON path itself.
    meta: The metadata.

  Returns:
    The path of the JSON written.
  """
  target = metadata_path(path)
  if not isinstance(meta, Metadata):
    raise ValueError(f"{target}: expected a Metadata to write, got {type(meta).__name__}")
  os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
  atomic_io.write_text(target, json.dumps(meta.to_dict(), indent=2))
  return target


def read_metadata(path: str | os.PathLike) -> Metadata:
  """Reads ``d3tf_metadata.json`` of any schema version.

  Args:
    path: A model_dir, a ``.keras`` file (the JSON beside it) or the JSON.

  Raises:
    FileNotFoundError: no metadata file (the message names the path).
    ValueError: unreadable or invalid content, naming the file.
  """
  target = metadata_path(path)
  try:
    with open(target) as f:
      text = f.read()
  except FileNotFoundError:
    raise FileNotFoundError(f"{target}: model metadata not found (d3tf.train writes it beside "
                            "the model; d3tf.artifacts.write_metadata makes one)") from None
  except (OSError, UnicodeDecodeError) as e:
    raise ValueError(f"{target}: cannot read model metadata ({e})") from None
  try:
    data = json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f"{target}: corrupt model metadata, not valid JSON ({e})") from None
  return Metadata.from_dict(data, target)
