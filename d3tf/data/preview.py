"""Old name of ``python -m d3tf.preview`` (the data preview grid), kept working.

The command-line programs sit above every library floor; this module only
runs :mod:`d3tf.preview` (without importing it, so that ``d3tf.data`` stays
below the flags and experiment layers).
"""

import runpy

if __name__ == "__main__":
  runpy.run_module("d3tf.preview", run_name="__main__", alter_sys=True)
