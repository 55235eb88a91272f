"""Checks of saved ``.keras`` files: clear errors for empty or truncated ones; repair on resume.

A ``.keras`` file is a zip archive. Keras answers an empty or truncated one
with "File not found", which misleads; :func:`check_keras_file` names the real
problem. :func:`ensure_saved` is what a resumed training run uses to rewrite a
final model that a killed run left missing or unreadable.
"""

from __future__ import annotations

import os
import zipfile

from absl import logging


def check_keras_file(path: str) -> None:
  """Raises ValueError (naming ``path``) unless it looks like a complete ``.keras`` archive.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: empty, truncated or not a zip archive.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such model file")
  size = os.path.getsize(path)
  if size == 0:
    raise ValueError(f"{path}: model file is empty (0 bytes), e.g. from an interrupted save; "
                     "use best.keras, or rerun the training command to write it again")
  if not zipfile.is_zipfile(path):
    raise ValueError(f"{path}: not a complete .keras archive ({size} bytes; truncated or "
                     "corrupt, e.g. an interrupted save or copy); rerun the training command "
                     "or copy the file again")
  try:
    with zipfile.ZipFile(path) as archive:
      bad = archive.testzip()
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise ValueError(f"{path}: corrupt .keras archive ({e})") from None
  if bad is not None:
    raise ValueError(f"{path}: corrupt .keras archive (member {bad!r} fails its checksum)")


def keras_file_loads(path: str) -> bool:
  """True if ``path`` is a ``.keras`` file that Keras loads."""
  try:
    check_keras_file(path)
    import keras  # pylint: disable=g-import-not-at-top
    import d3tf.losses  # pylint: disable=g-import-not-at-top,unused-import
    import d3tf.models  # pylint: disable=g-import-not-at-top,unused-import
    keras.models.load_model(path, compile=False)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning("%s does not load: %s", path, e)
    return False
  return True


def ensure_saved(model, path: str) -> bool:
  """Writes ``model`` to ``path`` (atomically) if the file there is missing or unreadable.

  Returns:
    True if it was written.
  """
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  stale = atomic_io.temp_path(path)
  if os.path.exists(stale):  # Left by a save that was killed.
    os.remove(stale)
  if os.path.exists(path) and keras_file_loads(path):
    return False
  logging.warning("%s is %s: writing it again from the restored state", path,
                  "unreadable" if os.path.exists(path) else "missing")
  atomic_io.save_model(model, path)
  return True
