"""Rendering as a library: defocus for RGB-D samples, written as files; no flags read.

``python -m d3tf.render`` and ``python -m d3tf.data.preview`` call it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

from absl import logging
import numpy as np

from d3tf.experiment import config as config_lib


def load_image_and_depth(image_path: str, depth_path: str, depth_scale: float = 0.001):
  """Returns (names, uint8 images [1,H,W,3], depths float32 [1,H,W] metres) of one pair."""
  from d3tf.data import validation  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import common  # pylint: disable=g-import-not-at-top
  image = common.read_image(image_path)
  depth = common.read_depth_file(depth_path, png_scale=depth_scale)
  image, depth = validation.validate_sample(image, depth, image_path=image_path,
                                            depth_path=depth_path)
  name = os.path.splitext(os.path.basename(image_path))[0]
  return [name], image[None], depth[None]


def procedural_samples(num: int, split: str = "test", height: int = 256, width: int = 256,
                      start_index: int = 0, seed: int = 0, supersample: int = 1):
  """Returns (names, uint8 images [N,H,W,3], depths float32 [N,H,W] metres)."""
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  indices = range(start_index, start_index + num)
  scenes = [procedural.generate_scene(i, split=split, seed=seed, height=height, width=width,
                                      supersample=supersample) for i in indices]
  names = [f"{split}_{i:04d}" for i in indices]
  return names, np.stack([s["image"] for s in scenes]), np.stack([s["depth"] for s in scenes])


def render_options(render: config_lib.RenderConfig, near_m: float = 0.5, far_m: float = 10.0):
  """The :class:`d3tf.optics.RenderOptions` of ``render`` and the slab depth range."""
  from d3tf.optics import RenderOptions  # pylint: disable=g-import-not-at-top
  return RenderOptions.for_mode(render.mode, depth_range_m=(near_m, far_m),
                                noise_shot_gain=render.noise_shot_gain,
                                noise_read_std=render.noise_read_std,
                                engine=render.engine_for())


def render(images: np.ndarray, depths: np.ndarray, camera, render: config_lib.RenderConfig,
           near_m: float = 0.5, far_m: float = 10.0, seed: int = 0) -> np.ndarray:
  """Defocused float images in [0, 1] of uint8 ``images`` and ``depths`` (metres)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top
  options = render_options(render, near_m, far_m)
  overrides = {k: v for k, v in options.to_dict().items() if k != "mode"}
  if render.bits:
    overrides["output_bits"] = render.bits
  return render_defocus(tf.constant(images, tf.float32) / 255.0, depths, camera, psf=render.psf,
                        seed=seed, mode=render.mode, **overrides).numpy()


def _save_png(path: str, array: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  Image.fromarray(array).save(path)


def render_to_folder(names: Sequence[str], images: np.ndarray, depths: np.ndarray, camera,
                     render_config: config_lib.RenderConfig, output_dir: str, *,
                     near_m: float = 0.5, far_m: float = 10.0, seed: int = 0,
                     inputs: dict[str, Any] | None = None,
                     command_line: str = "") -> dict[str, Any]:
  """Renders the samples and writes NAME_sharp/_depth_mm/_defocus.png, preview.png, render_config.json.

  Returns:
    The render config written (camera, psf, render options, inputs, seed).
  """
  from d3tf.data.plots import write_preview  # pylint: disable=g-import-not-at-top
  options = render_options(render_config, near_m, far_m)
  logging.info("Camera: %s; blur diameter %.1f px at %.2f m, %.1f px at %.2f m.",
               camera.to_dict(), camera.blur_diameter_px(near_m), near_m,
               camera.blur_diameter_px(far_m), far_m)
  logging.info("Rendering %d image(s) of %dx%d with a %s PSF (%s mode, %d depth slabs).",
               len(names), images.shape[1], images.shape[2], render_config.psf,
               render_config.mode, options.layer_grid(camera, render_config.psf).num_layers)
  defocused = render(images, depths, camera, render_config, near_m, far_m, seed)
  defocused_u8 = np.round(defocused * 255.0).astype(np.uint8)
  os.makedirs(output_dir, exist_ok=True)
  for name, image, depth, blurred in zip(names, images, depths, defocused_u8):
    _save_png(os.path.join(output_dir, f"{name}_sharp.png"), image)
    _save_png(os.path.join(output_dir, f"{name}_depth_mm.png"),
              np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16))
    _save_png(os.path.join(output_dir, f"{name}_defocus.png"), blurred)
  shown = slice(0, min(len(names), 8))
  write_preview(images[shown], depths[shown], defocused_u8[shown],
                os.path.join(output_dir, "preview.png"),
                defocus_title=f"defocused ({render_config.psf}, focus "
                f"{camera.focus_distance_m:g} m)")
  config = {"camera": camera.to_dict(), "psf": render_config.psf,
            "render_options": options.to_dict(), "inputs": inputs or {}, "seed": seed,
            "command_line": command_line}
  with open(os.path.join(output_dir, "render_config.json"), "w") as f:
    json.dump(config, f, indent=2)
  logging.info("Wrote %d defocused image(s), preview.png and render_config.json to %s",
               len(names), os.path.abspath(output_dir))
  return config
