r"""Writes procedural RGB-D scenes into TFRecord shards (a fixed, reusable dataset).

The procedural generator renders scenes on the fly, which is cheap at small
sizes. At a camera's native resolution (NYU: 480 x 640, where the paper's blur
sizes in pixels hold) a scene costs about 0.15 s of one core, too slow to feed
training; writing a fixed set once and training on random crops of it (as the
paper trains on 256 x 256 crops of 480 x 640 NYU images) is faster and makes
the experiment's data identical for every run that reads it.

Usage::

  python -m d3tf.data.write_procedural --output_prefix=data/procedural_480x640/train \
      --split=train --num_scenes=2000 --height=480 --width=640 --workers=2

Train on it with ``python -m d3tf.train --dataset=tfrecord
--data_path='data/procedural_480x640/train-*.tfrecord'``. The scenes are
identical to the ones :func:`d3tf.data.procedural.generate_scene` renders for
the same split, indices, seed and size; the depth is stored as 16-bit PNG in
millimetres (``--depth_format=png16``, 1 mm steps) or as raw float32.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import time
from typing import Iterator, Sequence

from absl import app
from absl import flags
from absl import logging

_OUTPUT = flags.DEFINE_string("output_prefix", None,
                              "Path prefix of the shards: <prefix>-NNNNN-of-MMMMM.tfrecord "
                              "(its folder is created).")
_SPLIT = flags.DEFINE_enum("split", "train", ["train", "validation", "test"],
                           "Split of the procedural source (disjoint scene streams).")
_NUM = flags.DEFINE_integer("num_scenes", 100, "Number of scenes to write.", lower_bound=1)
_START = flags.DEFINE_integer("start_index", 0, "Index of the first scene.", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "Global seed of the procedural scenes.", lower_bound=0)
_HEIGHT = flags.DEFINE_integer("height", 480, "Image height in pixels (NYU: 480).")
_WIDTH = flags.DEFINE_integer("width", 640, "Image width in pixels (NYU: 640).")
_SUPERSAMPLE = flags.DEFINE_integer("supersample", 1,
                                    "Rays per pixel side of the procedural renderer (1-4).")
_PER_SHARD = flags.DEFINE_integer("samples_per_shard", 250, "Scenes per shard.", lower_bound=1)
_DEPTH_FORMAT = flags.DEFINE_enum("depth_format", "png16", ["png16", "float32"],
                                  "Depth storage: 16-bit PNG in millimetres, or raw float32 "
                                  "metres.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Processes rendering scenes in parallel.",
                                lower_bound=1)


def _render(args: tuple[str, int, int, int, int, int]):
  """Renders one scene in a worker process: (name, image, depth)."""
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  split, index, seed, height, width, supersample = args
  scene = procedural.generate_scene(index, split=split, seed=seed, height=height, width=width,
                                    supersample=supersample)
  return f"{split}_{index:06d}", scene["image"], scene["depth"]


def iter_scenes(split: str, start: int, num: int, *, seed: int, height: int, width: int,
                supersample: int, workers: int) -> Iterator[tuple[str, object, object]]:
  """Yields ``(name, uint8 image, float32 depth)`` for scenes ``start .. start+num-1``.

  Args:
    split: Procedural split.
    start: First scene index.
    num: Number of scenes.
    seed: Global procedural seed.
    height: Image height, pixels.
    width: Image width, pixels.
    supersample: Rays per pixel side.
    workers: Worker processes (1: render in this process).

  Yields:
    The scenes in index order, with a progress log line every 50 scenes.
  """
  jobs = [(split, start + k, seed, height, width, supersample) for k in range(num)]
  began = time.monotonic()

  def progress(done: int) -> None:
    if done % 50 == 0 or done == num:
      elapsed = time.monotonic() - began
      rate = done / max(elapsed, 1e-9)
      logging.info("%d/%d scenes, %.1f scenes/s, ETA %.0f s", done, num, rate,
                   (num - done) / max(rate, 1e-9))

  if workers == 1:
    for done, job in enumerate(jobs, 1):
      yield _render(job)
      progress(done)
    return
  with concurrent.futures.ProcessPoolExecutor(workers) as pool:
    for done, result in enumerate(pool.map(_render, jobs, chunksize=4), 1):
      yield result
      progress(done)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not _OUTPUT.value:
    raise app.UsageError("--output_prefix is required (path prefix of the shards)")
  from d3tf.data.readers.tfrecord import write_tfrecords  # pylint: disable=g-import-not-at-top

  scenes = iter_scenes(_SPLIT.value, _START.value, _NUM.value, seed=_SEED.value,
                       height=_HEIGHT.value, width=_WIDTH.value,
                       supersample=_SUPERSAMPLE.value, workers=_WORKERS.value)
  paths = write_tfrecords(scenes, _OUTPUT.value, samples_per_shard=_PER_SHARD.value,
                          depth_format=_DEPTH_FORMAT.value, depth_scale=0.001)
  description = {
      "source": "procedural", "split": _SPLIT.value, "start_index": _START.value,
      "num_scenes": _NUM.value, "seed": _SEED.value, "height": _HEIGHT.value,
      "width": _WIDTH.value, "supersample": _SUPERSAMPLE.value,
      "depth_format": _DEPTH_FORMAT.value, "shards": [os.path.basename(p) for p in paths],
  }
  description_path = f"{_OUTPUT.value}.json"
  with open(description_path, "w", encoding="utf-8") as f:
    json.dump(description, f, indent=2)
  logging.info("Wrote %d scenes into %d shards %s-*.tfrecord (description: %s)", _NUM.value,
               len(paths), _OUTPUT.value, description_path)


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
