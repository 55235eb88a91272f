r"""Renders defocused images from RGB-D input: ``python -m d3tf.render``.

With no input flags it renders procedural scenes (the embedded default data,
nothing to download); with ``--image`` and ``--depth`` it renders the user's
own all-in-focus photo and depth map. For every sample it writes, into
``--output_dir``:

* ``NAME_sharp.png``: the all-in-focus input;
* ``NAME_depth_mm.png``: depth as 16-bit millimetres (0 = invalid);
* ``NAME_defocus.png``: the image as the camera would have taken it;

plus ``preview.png`` (a grid a person can look at: image, colour-mapped depth
with a colour bar in metres, defocused image) and ``render_config.json`` with
the camera parameters, the renderer's settings and the command line.

Examples::

  python -m d3tf.render --output_dir=renders
  python -m d3tf.render --camera=dslr --psf=disk --num=8 --output_dir=renders_dslr
  python -m d3tf.render --render_mode=paper     # old name: --mode=paper
  python -m d3tf.render --image=photo.png --depth=depth.png --depth_scale=0.001 \
      --focal_length_mm=50 --f_number=1.8 --pixel_pitch_um=4.3 --focus_distance_m=1.2
"""

from __future__ import annotations

from absl import app
from absl import flags

from d3tf import flags as flags_lib

flags_lib.define_render_cli_flags()
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if (FLAGS.image is None) != (FLAGS.depth is None):
    raise app.UsageError("--image and --depth go together: give both, or neither for "
                         "procedural scenes")
  from d3tf.experiment import render_lib  # pylint: disable=g-import-not-at-top
  camera = flags_lib.camera_from_flags("nyu")
  if camera is None:
    raise app.UsageError("--camera=none renders nothing: name a camera (nyu, dslr)")
  render = flags_lib.render_config_from_flags()
  try:
    if FLAGS.image is not None:
      names, images, depths = render_lib.load_image_and_depth(FLAGS.image, FLAGS.depth,
                                                              FLAGS.depth_scale)
      inputs = {"image": FLAGS.image, "depth": FLAGS.depth, "depth_scale": FLAGS.depth_scale}
    else:
      split = flags_lib.procedural_split_from_flags("test")
      names, images, depths = render_lib.procedural_samples(FLAGS.num, split, FLAGS.height,
                                                           FLAGS.width)
      inputs = {"procedural_split": split, "num": FLAGS.num}
    render_lib.render_to_folder(names, images, depths, camera, render,
                                FLAGS.output_dir or "renders", near_m=FLAGS.near_m,
                                far_m=FLAGS.far_m, seed=FLAGS.seed, inputs=inputs,
                                command_line=flags_lib.command_line())
  except (FileNotFoundError, ValueError) as e:
    raise flags_lib.usage_error(e) from None


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
