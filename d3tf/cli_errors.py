"""One-line errors for every command-line program: ``cli_errors.run(main)``.

``run(main)`` replaces ``absl.app.run(main)``. A user-facing error (a bad flag,
a bad or missing file, a bad camera value, a bad example in a dataset, a
corrupt model file) ends the program with **one line** on stderr,
``<program>: error: <message>``, where the message names the file or flag, the
value, and what to do, and exit status 1; no Python or TensorFlow traceback.
Ctrl-C ends with ``<program>: interrupted`` and status 130.

User-facing errors are :class:`~d3tf.data.validation.DataError` (also when it
arrives wrapped in a TensorFlow op error from a tf.data stream), ValueError
(d3tf's messages name the parameter and its value, e.g. the camera's),
OSError (FileNotFoundError, permissions, a full disk), ``absl.app.UsageError``
and flag-parsing errors. Anything else is a bug: its traceback is printed,
then the same one line, status 1.

The traceback of a user-facing error is shown with ``--verbosity=1`` (or
higher, absl's flag) or the environment variable ``D3TF_TRACEBACK=1``.

Before exiting, the exception and its traceback are dropped and garbage is
collected, so that any tf.data iterator they held is destroyed while the
interpreter is alive (see :mod:`d3tf.data.stream_errors`: destroyed during
interpreter shutdown, an iterator with Python work in flight blocks forever).
"""

from __future__ import annotations

import functools
import gc
import os
import sys
import traceback
from typing import Any, Callable

from absl import app
from absl import flags

#: Environment variable that shows tracebacks of user-facing errors.
TRACEBACK_ENV = "D3TF_TRACEBACK"
#: Exit status of a failed run and of an interrupted one.
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _program() -> str:
  name = os.path.basename(sys.argv[0] or "d3tf")
  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  if spec is not None and spec.name:  # python -m d3tf.train
    return spec.name
  return name


def one_line(text: str) -> str:
  """``text`` on one line (newlines and runs of spaces collapsed)."""
  return " ".join(str(text).split())


def user_message(error: BaseException) -> str | None:
  """The one-line message of a user-facing error, or None for anything else (a bug)."""
  from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
  data_error = stream_errors.data_error_from(error)
  if data_error is not None:
    return one_line(data_error)
  if isinstance(error, (app.UsageError, flags.Error)):
    return one_line(error)
  if isinstance(error, OSError):
    if error.filename is not None and error.strerror:
      return one_line(f"{error.filename}: {error.strerror}")
    return one_line(error)
  if isinstance(error, ValueError):
    return one_line(error)
  return None


def show_tracebacks() -> bool:
  """True if ``--verbosity`` >= 1 or ``D3TF_TRACEBACK`` is set to a true value."""
  if os.environ.get(TRACEBACK_ENV, "").lower() in ("1", "true", "yes"):
    return True
  try:
    return flags.FLAGS["verbosity"].value >= 1
  except (KeyError, flags.UnparsedFlagAccessError):
    return False


def _fail(line: str, status: int) -> None:
  gc.collect()  # Destroy the iterators the dropped traceback held, before shutdown.
  sys.stderr.flush()
  sys.stderr.write(f"{_program()}: {line}\n")
  sys.stderr.flush()
  sys.exit(status)


def wrap(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
  """``main`` with its errors turned into one line and a non-zero exit (see the module doc)."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except SystemExit:
      raise
    except KeyboardInterrupt:
      line, status = "interrupted", EXIT_INTERRUPTED
    except BaseException as e:  # pylint: disable=broad-except
      message = user_message(e)
      if message is None:  # A bug: keep its traceback.
        traceback.print_exc()
        message = one_line(f"{type(e).__name__}: {e}")
      elif show_tracebacks():
        traceback.print_exc()
      line, status = f"error: {message}", EXIT_ERROR
    # Outside the except block: the exception and its frames are released.
    _fail(line, status)

  return wrapped


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag reported on one line (exit status 1)."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = one_line(e)
  _fail(f"error: {message} (--helpshort lists the flags)", EXIT_ERROR)
  return []  # Not reached.


def run(main: Callable[[list[str]], Any]) -> None:
  """``absl.app.run(main)`` with one-line errors (see the module docstring)."""
  app.run(wrap(main), flags_parser=parse_flags)
