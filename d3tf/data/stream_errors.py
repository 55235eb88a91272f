"""Bad examples met inside a tf.data stream: a clean DataError, no hang; skip reports.

The readers decode files in Python (``tf.numpy_function``) on tf.data's worker
threads. A :class:`~d3tf.data.validation.DataError` raised there reaches the
consumer (Keras ``fit``, a ``for`` loop) as a ``tf.errors.InvalidArgumentError``
whose message embeds the DataError and its Python traceback.

**Why a process could hang.** If that exception leaves the program uncaught,
its traceback keeps the consumer's frames, and with them the dataset iterator,
alive until the interpreter shuts down. The iterator is then destroyed during
interpreter finalization, while other workers are inside, or about to enter,
the reader's Python function (the stream runs ahead of the failed element).
CPython ends any thread that tries to take the GIL once finalization has
begun, so those calls never complete, and the destructor of tf.data's
map-and-batch (or parallel-map) iterator, which waits for its in-flight calls,
blocks forever. Where the bad file comes first, nothing is in flight and the
process exits.

**The fix.** :func:`call` runs the consumer, turns such an error into a plain
DataError, leaves the ``except`` block (dropping the traceback) and collects
garbage while the interpreter is fully alive, so that the iterator is
destroyed there (TensorFlow releases the GIL while it deletes a tensor
handle, so the in-flight Python calls finish), and only then raises.
:func:`d3tf.cli_errors.run` does the same for any error reaching a CLI's top.
"""

from __future__ import annotations

import gc
import json
import os
import re
from typing import Any, Callable, Iterable

from absl import logging

from d3tf.data.validation import DataError

#: Default file name of a run's report of skipped examples.
SKIPPED_FILENAME = "skipped_examples.json"

# The message ends at a newline: a real one (an exception's text) or the escaped one of the
# string a tf.debugging.Assert prints (the readers end their message with one).
_DATA_ERROR_RE = re.compile(r"DataError: (.*?)(?:\\n|\n|$)")
_UNESCAPE = (("\\'", "'"), ('\\"', '"'), ("\\\\", "\\"))


def data_error_from(error: BaseException) -> DataError | None:
  """The DataError carried by ``error`` (itself, or a TensorFlow op error's message), or None."""
  if isinstance(error, DataError):
    return error
  message = getattr(error, "message", None) or str(error)
  match = _DATA_ERROR_RE.search(message)
  if match is None:
    return None
  text = match.group(1).strip()
  for escaped, plain in _UNESCAPE:
    text = text.replace(escaped, plain)
  paths, sep, problem = text.partition(": ")
  if not sep:
    return DataError((), text)
  return DataError(paths.split(" + "), problem)


def release_iterators() -> None:
  """Collects garbage now, so that dataset iterators die while the interpreter is alive."""
  gc.collect()


def call(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """``fn(*args, **kwargs)``, with a bad example in a tf.data stream raised as a DataError.

  Use it around anything that consumes a reader's dataset (``model.fit``,
  ``model.evaluate``, a loop over the dataset). A ``tf.errors.OpError``
  carrying a DataError message is re-raised as that DataError, without the
  TensorFlow traceback, after the iterators it held are destroyed (see the
  module docstring); other errors pass unchanged.

  Raises:
    DataError: a bad example was met (the message names its file).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    return fn(*args, **kwargs)
  except tf.errors.OpError as e:
    data_error = data_error_from(e)
    if data_error is None:
      raise
  # Outside the except block: the OpError and its traceback (holding the iterator) are gone.
  release_iterators()
  raise data_error


def skip_report(readers: Iterable[Any], max_listed: int = 20) -> dict[str, Any]:
  """Summary of the examples the readers skipped (``on_error="skip"``).

  Args:
    readers: Readers (anything with an ``error_report()`` method; others
      are ignored).
    max_listed: Messages listed per reader at most.

  Returns:
    ``{"skipped": events, "distinct": bad samples, "sources": [per reader
    {"source", "skipped", "distinct", "examples": [messages]}]}``; a sample
    met again (once per epoch) counts once in ``distinct``.
  """
  sources = [r.error_report(max_listed) for r in readers if hasattr(r, "error_report")]
  return {"skipped": sum(s["skipped"] for s in sources),
          "distinct": sum(s["distinct"] for s in sources), "sources": sources}


def log_skip_report(report: dict[str, Any], first: int = 5) -> None:
  """Logs the count of skipped examples and the first few of them."""
  if not report["distinct"]:
    logging.info("No bad example was skipped")
    return
  examples = [m for s in report["sources"] for m in s["examples"]][:first]
  logging.warning("Skipped %d bad examples (%d times in all); the first: %s", report["distinct"],
                  report["skipped"], "; ".join(examples))


def write_skip_report(readers: Iterable[Any], folder: str,
                      filename: str = SKIPPED_FILENAME) -> dict[str, Any]:
  """Logs the skipped examples and writes their report (JSON) into ``folder``; returns it."""
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  report = skip_report(readers)
  log_skip_report(report)
  atomic_io.write_text(os.path.join(folder, filename), json.dumps(report, indent=2) + "\n")
  return report
