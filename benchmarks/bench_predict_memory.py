r"""Peak memory of ``python -m d3tf.predict`` on one large photo, untiled and tiled.

Writes a synthetic 6000x4000 JPEG (smooth random texture), builds untrained
D3-Nets of the requested sizes (memory does not depend on the weights) with
the NYU-camera metadata, and runs ``python -m d3tf.predict`` on the photo
once per model size and ``--max_tile_pixels`` setting (0: one pass over the
whole photo, the behaviour before tiling; the default 1048576: 1024 px
tiles). The peak resident memory of each predict process is read with
``os.wait4`` (``ru_maxrss``). A run whose estimated need exceeds the memory
available is skipped (its row says so).

Usage::

  nice -n 10 python benchmarks/bench_predict_memory.py \
      --output=benchmarks/results/predict_memory.md
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

_OUTPUT = flags.DEFINE_string("output", "benchmarks/results/predict_memory.md",
                              "Markdown file for the results ('' to only log them).")
_SIZES = flags.DEFINE_list("model_sizes", ["tiny", "small"], "D3-Net sizes.")
_TILES = flags.DEFINE_list("max_tile_pixels", ["0", "1048576"],
                           "--max_tile_pixels settings of predict (0: untiled).")
_WIDTH = flags.DEFINE_integer("width", 6000, "Photo width, pixels.")
_HEIGHT = flags.DEFINE_integer("height", 4000, "Photo height, pixels.")
# Measured before tiling (issue 18): GB per megapixel of an untiled pass, to skip runs that
# would not fit.
_GB_PER_MP_UNTILED = {"tiny": 0.25, "small": 0.45, "full": 2.0}

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _REPO)  # This checkout's d3tf, also for the models written here.


def _available_gb() -> float:
  with open("/proc/meminfo") as f:
    for line in f:
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) / 2**20
  return float("inf")


def _write_photo(path: str, height: int, width: int) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  small = rng.integers(0, 255, (height // 50 + 1, width // 50 + 1, 3), dtype=np.uint8)
  image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
  noise = rng.integers(-20, 20, (height, width, 3), dtype=np.int16)
  pixels = np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8)
  Image.fromarray(pixels).save(path, quality=90)


def _write_model(folder: str, size: str) -> None:
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  config = getattr(models.D3NetConfig, size)()
  os.makedirs(folder, exist_ok=True)
  models.build_d3net(config).save(os.path.join(folder, "model.keras"))
  inference.write_metadata(folder, camera=Camera.nyu(), model_config=config)


def _peak_rss_gb(cmd: list[str]) -> tuple[float, float, int]:
  """(peak RSS GB, seconds, exit status) of ``cmd``."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([_REPO, env.get("PYTHONPATH", "")])
  start = time.time()
  process = subprocess.Popen(cmd, cwd=_REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
  _, status, usage = os.wait4(process.pid, 0)
  seconds = time.time() - start
  err = process.stderr.read().decode(errors="replace")
  code = os.waitstatus_to_exitcode(status)
  if code:
    logging.warning("%s failed (%d): %s", " ".join(cmd), code, err[-2000:])
  return usage.ru_maxrss / 2**20, seconds, code


def main(argv):
  del argv
  megapixels = _WIDTH.value * _HEIGHT.value / 1e6
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    photo = os.path.join(tmp, "photo.jpg")
    _write_photo(photo, _HEIGHT.value, _WIDTH.value)
    for size in _SIZES.value:
      model_dir = os.path.join(tmp, size)
      _write_model(model_dir, size)
      for tiles in _TILES.value:
        tiles = int(tiles)
        need = _GB_PER_MP_UNTILED.get(size, 2.0) * megapixels if tiles == 0 else 0.0
        available = _available_gb()
        if need > 0.8 * available:
          rows.append((size, tiles, None, None, f"skipped: needs ~{need:.1f} GB, "
                       f"{available:.1f} GB available"))
          continue
        cmd = [sys.executable, "-m", "d3tf.predict", f"--model={model_dir}",
               f"--input={photo}", f"--output_dir={os.path.join(tmp, 'out')}",
               f"--max_tile_pixels={tiles}"]
        gb, seconds, code = _peak_rss_gb(cmd)
        rows.append((size, tiles, gb, seconds, "ok" if code == 0 else f"exit {code}"))
        logging.info("%s, --max_tile_pixels=%d: peak RSS %.2f GB, %.0f s", size, tiles, gb,
                     seconds)
  lines = [
      "# Peak memory of `python -m d3tf.predict` on one large photo",
      "",
      f"{_WIDTH.value}x{_HEIGHT.value} JPEG ({megapixels:.0f} MP, synthetic), untrained models "
      "(memory does not depend on the weights), `--samples=1`. Peak resident memory of the "
      "predict process (`ru_maxrss`), including Python, TensorFlow and the output files "
      "(depth .npy, 16-bit PNG, colour PNG).",
      "",
      f"Measured {datetime.date.today()} on {platform.machine()} ({os.cpu_count()} CPUs, "
      "shared with other jobs: times are indicative), TensorFlow CPU:",
      "",
      "```",
      "nice -n 10 python benchmarks/bench_predict_memory.py "
      "--output=benchmarks/results/predict_memory.md",
      "```",
      "",
      "| model | --max_tile_pixels | peak RSS (GB) | seconds | note |",
      "|---|---|---|---|---|",
  ]
  for size, tiles, gb, seconds, note in rows:
    label = "0 (untiled, before)" if tiles == 0 else f"{tiles} (1024 px tiles, default)"
    lines.append(f"| {size} | {label} | {'' if gb is None else f'{gb:.2f}'} | "
                 f"{'' if seconds is None else f'{seconds:.0f}'} | {note} |")
  text = "\n".join(lines) + "\n"
  logging.info("\n%s", text)
  if _OUTPUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
    with open(_OUTPUT.value, "w") as f:
      f.write(text)


if __name__ == "__main__":
  app.run(main)
