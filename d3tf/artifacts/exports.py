"""The layout of an export folder (``savedmodels/`` by default), TF Serving's::

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
beside its target (:func:`staging_dir`) and renamed into place when complete
(:func:`publish`), so that a running TF Serving never sees half a version.

An export's ``d3tf_metadata.json`` is the model's training metadata with an
``export`` entry (:meth:`d3tf.artifacts.Metadata.with_export`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import tempfile
from typing import Any, Mapping

from d3tf.artifacts.metadata import Metadata
from d3tf.artifacts.metadata import METADATA_FILENAME
from d3tf.artifacts.metadata import read_metadata

SAVED_MODEL_FILENAME = "saved_model.pb"
TFLITE_FILENAME = "model.tflite"
#: Sub-folder of a model's base folder that holds its TFLite versions.
TFLITE_SUBDIR = "tflite"
#: Where a SavedModel export keeps its metadata (TF Serving's folder for extras).
ASSETS_EXTRA = "assets.extra"
#: Export formats.
FORMATS = ("saved_model", "tflite")
_VERSION_RE = re.compile(r"^\d+$")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# ---------------------------------------------------------------- versions
def check_name(name: str) -> str:
  """``name`` if it can name a model's export folder, else a ValueError echoing it."""
  if not name or not _NAME_RE.fullmatch(name):
    raise ValueError(f"name must be a folder name of letters, digits, '_', '-' and '.', got "
                     f"{name!r}")
  return name


def base_dir(export_dir: str | os.PathLike, name: str, fmt: str = "saved_model") -> str:
  """The folder whose integer sub-folders are the versions of ``name`` in ``fmt``."""
  if fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  base = os.path.join(os.fspath(export_dir), check_name(name))
  return base if fmt == "saved_model" else os.path.join(base, TFLITE_SUBDIR)


def list_versions(base: str | os.PathLike) -> list[int]:
  """Integer version folders of a model base folder, ascending (empty if none or no folder)."""
  base = os.fspath(base)
  if not os.path.isdir(base):
    return []
  return sorted(int(name) for name in os.listdir(base)
                if _VERSION_RE.match(name) and os.path.isdir(os.path.join(base, name)))


def next_version(base: str | os.PathLike) -> int:
  """One more than the highest version in ``base`` (1 for a new model)."""
  versions = list_versions(base)
  return versions[-1] + 1 if versions else 1


def version_dir(base: str | os.PathLike, version: int | None, name: str) -> tuple[str, int]:
  """The folder of the version to write, and its number; refuses an existing one.

  Args:
    base: The model's base folder (SavedModel) or its ``tflite/`` folder.
    version: The version asked for, or None for :func:`next_version`.
    name: The model's name, for messages.

  Raises:
    ValueError: a bad ``version``.
    FileExistsError: the version exists.
  """
  base = os.fspath(base)
  if version is None:
    version = next_version(base)
  if isinstance(version, bool) or int(version) != version or version < 1:
    raise ValueError(f"version must be an integer >= 1, got {version!r}")
  version = int(version)
  if version in list_versions(base):
    raise FileExistsError(
        f"{os.path.join(base, str(version))}: version {version} of {name} exists already; "
        f"exports never overwrite a version (omit --version to write version "
        f"{next_version(base)}, or delete that folder)")
  return os.path.join(base, str(version)), version


def staging_dir(base: str | os.PathLike, version: int) -> str:
  """A new hidden folder in ``base`` to write version ``version`` into."""
  os.makedirs(base, exist_ok=True)
  return tempfile.mkdtemp(prefix=f".{version}.export-", dir=os.fspath(base))


def publish(staging: str, target: str) -> None:
  """Renames a complete export into place (atomic on one file system)."""
  if os.path.exists(target):
    raise FileExistsError(f"{target}: appeared while exporting; not overwritten (the export is "
                          f"left in {staging})")
  os.rename(staging, target)


def metadata_file(version_folder: str, fmt: str) -> str:
  """Where the metadata of the export in ``version_folder`` lives."""
  if fmt == "saved_model":
    return os.path.join(version_folder, ASSETS_EXTRA, METADATA_FILENAME)
  return os.path.join(version_folder, METADATA_FILENAME)


def export_metadata(metadata: Metadata | None, export_info: Mapping[str, Any]) -> Metadata:
  """The training metadata with an ``export`` entry, stamped with d3tf's version and the time."""
  import d3tf  # pylint: disable=g-import-not-at-top
  info = dict(export_info)
  info.setdefault("d3tf_version", d3tf.__version__)
  info.setdefault("exported_at", datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
  return (metadata if metadata is not None else Metadata()).with_export(info)


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
    return ExportRef("saved_model", folder, metadata_file(folder, "saved_model"), version)
  if os.path.isfile(os.path.join(folder, TFLITE_FILENAME)):
    return ExportRef("tflite", os.path.join(folder, TFLITE_FILENAME),
                     metadata_file(folder, "tflite"), version)
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
    return ExportRef("tflite", path, metadata_file(folder, "tflite"),
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


def read_export(path: str | os.PathLike) -> tuple[ExportRef, Metadata]:
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
  return ref, read_metadata(ref.metadata_path)


def describe_export(ref: ExportRef, meta: Metadata) -> str:
  """Human-readable lines about an export: camera, training data, versions, interface."""
  info = meta.export or {}
  kind = {"saved_model": "SavedModel", "tflite": "TFLite"}[ref.kind]
  version = ref.version if ref.version is not None else "-"
  camera = (meta.camera.describe() if meta.camera is not None
            else "none (the model takes all-in-focus images)")
  lines = [f"Export: {ref.path} ({kind}, version {version})",
           f"Input: {meta.describe()}",
           f"Camera: {camera}"]
  if meta.camera is not None:
    options = meta.render_options or {}
    lines.append(f"Defocus rendering in training: {meta.render_kwargs()['psf']} PSF, mode "
                 f"{options.get('mode', 'improved')}")
  extras = {k: meta.extra[k] for k in ("crop_size", "loss", "real_defocus") if k in meta.extra}
  lines.append(f"Training data: {meta.train_data or 'not recorded'}"
               + (f" ({', '.join(f'{k} {v}' for k, v in extras.items())})" if extras else ""))
  if meta.model_config:
    lines.append(f"Model config: {json.dumps(dict(meta.model_config), sort_keys=True)}")
  lines.append(f"Trained with d3tf {meta.d3tf_version or '?'}"
               + (f" (TensorFlow {meta.tf_version})" if meta.tf_version else "")
               + f"; exported with d3tf {info.get('d3tf_version', '?')} at "
               f"{info.get('exported_at', '?')} from {info.get('source', '?')}")
  samples = info.get("samples", 1)
  lines.append(f"Samples per prediction: {samples}"
               + (f" ({info.get('uncertainty')})" if samples > 1 else " (deterministic)"))
  camera_input = info.get("camera_input")
  if info.get("camera_aware") and camera_input:  # docs/any_camera.md#export-and-serving
    lines.append(f"Camera-aware: input {camera_input['name']} {camera_input['dtype']} "
                 f"{camera_input['shape']} ({', '.join(camera_input['fields'])}); the camera "
                 f"above is the default, {camera_input['default']}: {camera_input['default_use']}")
  for signature, spec in (info.get("signatures") or {}).items():
    lines.append(f"Signature {signature}: {spec['input']} -> {', '.join(spec['outputs'])}")
  if ref.kind == "tflite":
    lines.append(f"TFLite: {info.get('quantize')} weights, input size "
                 f"{info.get('input_size') or 'any'}, ops {', '.join(info.get('ops') or [])}")
  return "\n".join(lines)
