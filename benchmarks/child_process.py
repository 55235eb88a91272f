"""One measurement per child process: start it, read its JSON, and its own resource use.

The benchmarks that compare settings read when TensorFlow starts (the
allocator, thread pools, precision) or whose peak memory is the process's
run each configuration in a child process of its own: the script reruns
itself with ``--child=...``, the child prints one JSON line last, and the
parent reads it with :func:`run_json_child`. Inside the child,
:func:`cpu_times` and :func:`max_rss_mb` read the process's own use.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Mapping, Sequence


def cpu_times() -> tuple[float, float]:
  """User and system CPU seconds this process has used so far (all its threads)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime, usage.ru_stime


def cpu_seconds() -> float:
  """User + system CPU seconds this process has used so far (all its threads)."""
  return sum(cpu_times())


def max_rss_mb() -> float:
  """This process's peak resident set so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_json_child(script: str, args: Sequence[str], env: Mapping[str, str] | None = None,
                   cwd: str | None = None) -> dict:
  """Runs ``python SCRIPT ARGS...`` to the end and returns the JSON of its last stdout line.

  Args:
    script: The benchmark script (usually ``__file__`` of the caller).
    args: Its arguments (e.g. ``["--child=NAME", ...]``).
    env: The child's environment (default: this process's).
    cwd: The child's working directory (default: this process's).

  Raises:
    RuntimeError: the child failed or printed no JSON line; the message holds
      the command and the end of its stderr.
  """
  command = [sys.executable, os.path.abspath(script), *args]
  result = subprocess.run(command, env=None if env is None else dict(env), cwd=cwd,
                          capture_output=True, text=True, check=False)
  lines = result.stdout.strip().splitlines()
  if result.returncode or not lines:
    raise RuntimeError(f"{' '.join(command)} failed (exit status {result.returncode}):\n"
                       f"{result.stderr[-3000:]}")
  try:
    return json.loads(lines[-1])
  except json.JSONDecodeError as error:
    raise RuntimeError(f"{' '.join(command)}: the last line of its output is not JSON: "
                       f"{lines[-1][:200]!r}") from error
