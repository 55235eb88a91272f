r"""Writes a PNG grid of data samples for a person to look at.

Columns: the all-in-focus image, its depth map (colour-mapped, with a colour
bar in metres; invalid pixels black), and the image defocused by the camera.
Rows: samples. The camera flags are those of every d3tf CLI (``--camera``
preset, parameters overriding it: the preset's own focus distance unless
``--focus_distance_m`` is given).

Usage::

  python -m d3tf.preview --output=grid.png --num=4 \
      --focus_distance_m=2.0 --psf=gaussian --height=256 --width=256
"""

from __future__ import annotations

from typing import Sequence

from absl import app
from absl import flags
from absl import logging

from d3tf import flags as flags_lib

flags_lib.define_render_cli_flags()
FLAGS = flags.FLAGS


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.output:
    raise app.UsageError("--output is required (path of the PNG to write)")
  if flags_lib.dataset_from_flags() != "procedural":
    raise app.UsageError(f"--dataset={FLAGS.dataset}: the preview shows procedural scenes only")
  from d3tf.data.plots import write_preview  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import render_lib  # pylint: disable=g-import-not-at-top
  camera = flags_lib.camera_from_flags("nyu")
  if camera is None:
    raise app.UsageError("--camera=none renders nothing: name a camera (nyu, dslr)")
  render = flags_lib.render_config_from_flags()
  split = flags_lib.procedural_split_from_flags("train")
  _, images, depths = render_lib.procedural_samples(
      FLAGS.num, split, FLAGS.height, FLAGS.width, start_index=FLAGS.start_index,
      seed=FLAGS.seed, supersample=FLAGS.supersample)
  defocused = render_lib.render(images, depths, camera, render, seed=FLAGS.seed)
  defocus_title = (f"defocused ({FLAGS.camera or 'nyu'}, f/{camera.f_number:g}, "
                   f"focus {camera.focus_distance_m:g} m, {render.psf})")
  title = (f"procedural '{split}' scenes {FLAGS.start_index}-"
           f"{FLAGS.start_index + FLAGS.num - 1}, seed {FLAGS.seed}")
  write_preview(images, depths, defocused, FLAGS.output, defocus_title, title, FLAGS.dpi)
  logging.info("Wrote %s", FLAGS.output)


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
