"""Tests of rendering: `python -m d3tf.render` once as a user would (a subprocess), the library in-process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from d3tf.experiment import config as config_lib
from d3tf.experiment import render_lib

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run(*args, check=True):
  return subprocess.run([sys.executable, "-m", "d3tf.render", *args], capture_output=True,
                        text=True, env=_ENV, check=check, timeout=300)


def _render_files(image, depth, out, depth_scale=0.001):
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  names, images, depths = render_lib.load_image_and_depth(str(image), str(depth), depth_scale)
  return render_lib.render_to_folder(names, images, depths, Camera.nyu(),
                                     config_lib.RenderConfig(), str(out))


def test_renders_procedural_scenes_with_depth_in_millimetres(tmp_path):
  """The CLI smoke test (old flag name --mode for --render_mode)."""
  _run(f"--output_dir={tmp_path}", "--num=2", "--height=64", "--width=96", "--psf=disk",
       "--focus_distance_m=1.5", "--mode=improved")
  config = json.loads((tmp_path / "render_config.json").read_text())
  assert config["camera"]["focus_distance_m"] == 1.5
  assert config["camera"]["focal_length_m"] == pytest.approx(0.015)
  assert config["psf"] == "disk" and "--psf=disk" in config["command_line"]
  from d3tf.data import procedural
  scene = procedural.generate_scene(1, split="test", height=64, width=96)
  sharp = np.asarray(Image.open(tmp_path / "test_0001_sharp.png"))
  depth_mm = np.asarray(Image.open(tmp_path / "test_0001_depth_mm.png"))
  defocus = np.asarray(Image.open(tmp_path / "test_0001_defocus.png"))
  np.testing.assert_array_equal(sharp, scene["image"])
  np.testing.assert_allclose(depth_mm / 1000.0, scene["depth"], atol=0.0006)
  assert defocus.shape == sharp.shape and defocus.dtype == np.uint8
  assert 0 < np.abs(defocus.astype(int) - sharp).mean() < 40  # blurred, still the same scene.
  assert (tmp_path / "preview.png").stat().st_size > 10_000


def test_renders_a_users_own_photo_and_depth(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
  depth = np.full((48, 64), 2000, np.uint16)  # millimetres: everything at the focus distance.
  Image.fromarray(image).save(tmp_path / "photo.png")
  Image.fromarray(depth).save(tmp_path / "depth.png")
  out = tmp_path / "out"
  _render_files(tmp_path / "photo.png", tmp_path / "depth.png", out)
  rendered = np.asarray(Image.open(out / "photo_defocus.png")).astype(int)
  assert np.abs(rendered - image).max() <= 1  # a plane in focus stays sharp.


def test_bad_input_is_reported_with_the_file_name(tmp_path):
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
  np.save(tmp_path / "depth.npy", np.full((8, 9), 2.0, np.float32))
  with pytest.raises(ValueError, match="differs from image size") as info:
    _render_files(tmp_path / "photo.png", tmp_path / "depth.npy", tmp_path / "out")
  assert "depth.npy" in str(info.value)


def test_image_without_depth_is_refused_before_rendering(tmp_path):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from d3tf import render  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["render", f"--image={tmp_path / 'photo.png'}"])
    with pytest.raises(app.UsageError, match="--image and --depth go together"):
      render.main(["render"])
