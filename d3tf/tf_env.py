"""TensorFlow settings the command-line programs start with, unless the user set them.

TensorFlow reads these environment variables once, when it starts, so they
must be set before it is imported: :mod:`d3tf.flags`, which every CLI imports
before anything that imports TensorFlow, imports this module first, and
importing it applies :data:`DEFAULTS` to ``os.environ`` (a variable the user
set, to any value, is left as it is). Library users who import d3tf directly
get TensorFlow's own defaults; set the variables yourself, or import this
module before TensorFlow.

* ``TF_CPU_ALLOCATOR_USE_BFC=true``: TensorFlow's best-fit-with-coalescing
  allocator for CPU tensors keeps freed memory for reuse, where the default
  CPU allocator hands large temporaries back to the system on every step and
  faults them in again (system time). Measured in
  ``benchmarks/results/allocator.md``; ``TF_CPU_ALLOCATOR_USE_BFC=false``
  restores TensorFlow's default.
* ``D3TF_LEAN_KERAS_IMPORT=true``: Keras imports IPython, matplotlib and
  scikit-learn when it starts, if they are installed, for features the CLIs
  never use (notebook display, its image-gallery plots, its scikit-learn
  wrappers); together about 105 MB of resident memory and 2-3 s of start-up
  in every process (``benchmarks/results/train_step.md``, run 6). With this
  setting, :class:`KerasOptionalImportBlocker` refuses those three imports
  when Keras or TensorFlow asks for them, and Keras treats them as not
  installed (it imports each in a ``try``, as optional). d3tf's own imports
  of matplotlib (its plots and colour maps) and the user's are served as
  usual. ``D3TF_LEAN_KERAS_IMPORT=false`` imports Keras as it comes.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from typing import MutableMapping

#: Environment defaults of the command-line programs.
DEFAULTS = {"TF_CPU_ALLOCATOR_USE_BFC": "true", "D3TF_LEAN_KERAS_IMPORT": "true"}

#: Packages Keras imports when it starts if they are installed, none of them needed by d3tf's
#: use of Keras.
KERAS_OPTIONAL_IMPORTS = ("IPython", "matplotlib", "sklearn")
#: Top-level packages whose imports of :data:`KERAS_OPTIONAL_IMPORTS` are refused.
_BLOCKED_IMPORTERS = ("keras", "tensorflow")


def _importing_module() -> str:
  """The name of the module whose code runs the import being resolved ('' if none)."""
  frame = sys._getframe(2)  # pylint: disable=protected-access
  while frame is not None:
    name = frame.f_globals.get("__name__", "")
    if not (name.startswith(("importlib", "_frozen_importlib")) or name == __name__):
      return name
    frame = frame.f_back
  return ""


class KerasOptionalImportBlocker(importlib.abc.MetaPathFinder):
  """Refuses Keras' and TensorFlow's imports of :data:`KERAS_OPTIONAL_IMPORTS`.

  Installed first on ``sys.meta_path``; any other import (d3tf's, the user's,
  or one of those packages importing itself) passes to the usual finders.
  """

  def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
    """Raises ModuleNotFoundError for a blocked import, else returns None (not handled here)."""
    if fullname.partition(".")[0] not in KERAS_OPTIONAL_IMPORTS:
      return None
    importer = _importing_module()
    if importer.partition(".")[0] in _BLOCKED_IMPORTERS:
      raise ModuleNotFoundError(
          f"{fullname} is not imported for {importer} in d3tf's command-line programs "
          "(d3tf.tf_env; set D3TF_LEAN_KERAS_IMPORT=false to allow it)", name=fullname)
    return None


def install_import_blocker(environ: MutableMapping[str, str] | None = None) -> bool:
  """Puts a :class:`KerasOptionalImportBlocker` first on ``sys.meta_path`` unless disabled.

  Args:
    environ: Where ``D3TF_LEAN_KERAS_IMPORT`` is read (default ``os.environ``); anything but
      "false", "0" or "no" (any case) installs the blocker.

  Returns:
    Whether a blocker is installed after the call (installed once per process).
  """
  environ = os.environ if environ is None else environ
  if environ.get("D3TF_LEAN_KERAS_IMPORT", "true").strip().lower() in ("false", "0", "no"):
    return False
  if not any(isinstance(finder, KerasOptionalImportBlocker) for finder in sys.meta_path):
    sys.meta_path.insert(0, KerasOptionalImportBlocker())
  return True


def apply_defaults(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
  """Sets every variable of :data:`DEFAULTS` that ``environ`` (default ``os.environ``) lacks.

  Returns:
    The variables this call set, with their values.
  """
  environ = os.environ if environ is None else environ
  applied = {}
  for name, value in DEFAULTS.items():
    if name not in environ:
      environ[name] = value
      applied[name] = value
  return applied


APPLIED = apply_defaults()
BLOCKING_KERAS_OPTIONAL_IMPORTS = install_import_blocker()
