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
  python -m d3tf.render --image=photo.png --depth=depth.png --depth_scale=0.001 \
      --focal_length_mm=50 --f_number=1.8 --pixel_pitch_um=4.3 --focus_distance_m=1.2
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import numpy as np

from d3tf.optics import psf as psf_lib

_OUTPUT_DIR = flags.DEFINE_string("output_dir", "renders", "Folder for the rendered files.")
_IMAGE = flags.DEFINE_string("image", None, "All-in-focus RGB image of your own (any format "
                             "Pillow reads); needs --depth. Default: procedural scenes.")
_DEPTH = flags.DEFINE_string("depth", None, "Depth map registered to --image: a 16-bit PNG "
                             "(times --depth_scale) or a .npy in metres.")
_DEPTH_SCALE = flags.DEFINE_float("depth_scale", 0.001, "Metres per unit of a depth PNG "
                                  "(0.001 for millimetres).")
_NUM = flags.DEFINE_integer("num", 4, "Procedural scenes to render.", lower_bound=1)
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "validation", "test"],
                           "Split of the procedural scenes.")
_HEIGHT = flags.DEFINE_integer("height", 256, "Height of procedural scenes, pixels.")
_WIDTH = flags.DEFINE_integer("width", 256, "Width of procedural scenes, pixels.")
_CAMERA = flags.DEFINE_enum("camera", "nyu", ["nyu", "dslr"], "Camera preset: 'nyu' (15 mm, "
                            "f/2.8, 5.6 um, the paper's NYU camera) or 'dslr' (Nikon D200 35 mm, "
                            "f/2.8, 36 um after x6 downsampling).")
_FOCAL = flags.DEFINE_float("focal_length_mm", None, "Overrides the preset's focal length, mm.")
_F_NUMBER = flags.DEFINE_float("f_number", None, "Overrides the preset's f-number.")
_PITCH = flags.DEFINE_float("pixel_pitch_um", None, "Overrides the preset's pixel pitch, um.")
_FOCUS = flags.DEFINE_float("focus_distance_m", None, "Overrides the preset's focus distance "
                            "(NYU preset: 2 m; DSLR: 1.7 m).")
_PSF = flags.DEFINE_enum("psf", psf_lib.DEFAULT_PSF, list(psf_lib.names()),
                         "Point-spread function.")
_MODE = flags.DEFINE_enum("mode", "improved", ["improved", "paper"], "Renderer mode: d3tf's "
                          "improved compositing, or the paper's choices for comparison.")
_NEAR = flags.DEFINE_float("near_m", 0.5, "Nearest depth the depth slabs cover, metres.")
_FAR = flags.DEFINE_float("far_m", 10.0, "Farthest depth the depth slabs cover, metres.")
_SHOT = flags.DEFINE_float("noise_shot_gain", 0.0, "Shot-noise variance per unit of linear "
                           "signal (1/photo-electrons at white; 0: none).")
_READ = flags.DEFINE_float("noise_read_std", 0.0, "Read-noise standard deviation, linear units.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sensor noise.")


def camera_from_flags():
  """The Camera named by --camera, with any explicit parameter overriding it."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  camera = Camera.nyu() if _CAMERA.value == "nyu" else Camera.dslr_d200_35mm()
  return camera.with_parameters(_FOCAL.value, _F_NUMBER.value, _PITCH.value, _FOCUS.value)


def _load_inputs():
  """Returns (names, uint8 images [N,H,W,3], depths float32 [N,H,W] metres)."""
  if (_IMAGE.value is None) != (_DEPTH.value is None):
    raise app.UsageError("--image and --depth go together: give both, or neither for "
                         "procedural scenes")
  if _IMAGE.value is not None:
    from d3tf.data import validation  # pylint: disable=g-import-not-at-top
    from d3tf.data.readers import common  # pylint: disable=g-import-not-at-top
    image = common.read_image(_IMAGE.value)
    depth = common.read_depth_file(_DEPTH.value, png_scale=_DEPTH_SCALE.value)
    image, depth = validation.validate_sample(image, depth, image_path=_IMAGE.value,
                                              depth_path=_DEPTH.value)
    name = os.path.splitext(os.path.basename(_IMAGE.value))[0]
    return [name], image[None], depth[None]
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  scenes = [procedural.generate_scene(i, split=_SPLIT.value, height=_HEIGHT.value,
                                      width=_WIDTH.value) for i in range(_NUM.value)]
  names = [f"{_SPLIT.value}_{i:04d}" for i in range(_NUM.value)]
  return (names, np.stack([s["image"] for s in scenes]), np.stack([s["depth"] for s in scenes]))


def _save_png(path: str, array: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(array).save(path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.data.plots import write_preview  # pylint: disable=g-import-not-at-top
  from d3tf.optics import RenderOptions  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top

  camera = camera_from_flags()
  options = RenderOptions.for_mode(_MODE.value, depth_range_m=(_NEAR.value, _FAR.value),
                                   noise_shot_gain=_SHOT.value, noise_read_std=_READ.value)
  names, images, depths = _load_inputs()
  logging.info("Camera: %s; blur diameter %.1f px at %.2f m, %.1f px at %.2f m.",
               camera.to_dict(), camera.blur_diameter_px(_NEAR.value), _NEAR.value,
               camera.blur_diameter_px(_FAR.value), _FAR.value)
  logging.info("Rendering %d image(s) of %dx%d with a %s PSF (%s mode, %d depth slabs).",
               len(names), images.shape[1], images.shape[2], _PSF.value, _MODE.value,
               options.layer_grid(camera, _PSF.value).num_layers)
  option_overrides = {k: v for k, v in options.to_dict().items() if k != "mode"}
  defocused = render_defocus(tf.constant(images, tf.float32) / 255.0, depths, camera,
                             psf=_PSF.value, seed=_SEED.value, mode=_MODE.value,
                             **option_overrides).numpy()
  defocused_u8 = np.round(defocused * 255.0).astype(np.uint8)

  out = _OUTPUT_DIR.value
  os.makedirs(out, exist_ok=True)
  for name, image, depth, blurred in zip(names, images, depths, defocused_u8):
    _save_png(os.path.join(out, f"{name}_sharp.png"), image)
    _save_png(os.path.join(out, f"{name}_depth_mm.png"),
              np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
    _save_png(os.path.join(out, f"{name}_defocus.png"), blurred)
  shown = slice(0, min(len(names), 8))
  write_preview(images[shown], depths[shown], defocused_u8[shown],
                os.path.join(out, "preview.png"),
                defocus_title=f"defocused ({_PSF.value}, focus {camera.focus_distance_m:g} m)")
  config = {"camera": camera.to_dict(), "psf": _PSF.value, "render_options": options.to_dict(),
            "inputs": {"image": _IMAGE.value, "depth": _DEPTH.value,
                       "depth_scale": _DEPTH_SCALE.value} if _IMAGE.value else
                      {"procedural_split": _SPLIT.value, "num": _NUM.value},
            "seed": _SEED.value, "command_line": " ".join(sys.argv)}
  with open(os.path.join(out, "render_config.json"), "w") as f:
    json.dump(config, f, indent=2)
  logging.info("Wrote %d defocused image(s), preview.png and render_config.json to %s",
               len(names), os.path.abspath(out))


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
