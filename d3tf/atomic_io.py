"""Atomic file writes: a kill at any moment leaves the old file or the new one, never half.

Every writer here writes a temporary file in the destination's folder
(``.<name>.tmp-<pid>``, or ``<stem>.tmp.keras`` for Keras models, whose saver
wants the ``.keras`` suffix), flushes and fsyncs it, then renames it over the
destination with :func:`os.replace` (atomic on POSIX within one file system)
and fsyncs the folder. A leftover temporary file from a killed writer is
harmless and is replaced by the next write.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator


def _fsync_dir(folder: str) -> None:
  try:
    fd = os.open(folder or ".", os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def temp_path(path: str) -> str:
  """The temporary name used while ``path`` is written (same folder)."""
  folder, name = os.path.split(os.fspath(path))
  if name.endswith(".keras"):
    return os.path.join(folder, name[:-len(".keras")] + ".tmp.keras")
  return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def publish(tmp: str, path: str) -> None:
  """Makes the finished temporary file ``tmp`` durable and renames it to ``path``."""
  with open(tmp, "rb") as f:
    os.fsync(f.fileno())
  os.replace(tmp, path)
  _fsync_dir(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def writing(path: str) -> Iterator[str]:
  """Yields a temporary path to write; on success it replaces ``path`` atomically.

  On an exception the temporary file is removed and ``path`` is untouched.
  """
  path = os.fspath(path)
  tmp = temp_path(path)
  try:
    yield tmp
    publish(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` atomically."""
  with writing(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)


def write_text(path: str, text: str) -> None:
  """Writes ``text`` (UTF-8) to ``path`` atomically."""
  write_bytes(path, text.encode("utf-8"))


def append_text(path: str, text: str) -> None:
  """Appends ``text`` to ``path`` by rewriting it atomically (for small log files)."""
  old = b""
  with contextlib.suppress(FileNotFoundError):
    with open(path, "rb") as f:
      old = f.read()
  write_bytes(path, old + text.encode("utf-8"))


def write_json(path: str, value: Any, **kwargs) -> None:
  """Writes ``value`` as JSON (``indent=2`` unless given) to ``path`` atomically."""
  kwargs.setdefault("indent", 2)
  write_text(path, json.dumps(value, **kwargs) + "\n")


def save_model(model, path: str) -> None:
  """``model.save(path)`` atomically: saved to ``<stem>.tmp.keras``, then renamed."""
  with writing(path) as tmp:
    model.save(tmp)
