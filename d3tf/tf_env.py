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
"""

from __future__ import annotations

import os
from typing import MutableMapping

#: Environment defaults of the command-line programs.
DEFAULTS = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}


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
