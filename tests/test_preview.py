"""Tests of the sample-grid preview CLI."""

import numpy as np
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from d3tf.data import plots
from d3tf import preview


def test_write_preview_marks_invalid_depth(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
  depths = rng.uniform(0.5, 10.0, (2, 32, 48)).astype(np.float32)
  depths[0, :4] = 0.0
  path = plots.write_preview(images, depths, images, str(tmp_path / "sub" / "grid.png"))
  picture = np.asarray(Image.open(path).convert("RGB"))
  assert picture.shape[0] > 100 and picture.shape[1] > 200
  assert picture.std() > 10


def test_cli_writes_a_png(tmp_path):
  output = tmp_path / "grid.png"
  argv = ["preview", f"--output={output}", "--num=2", "--height=32", "--width=48",
          "--focus_distance_m=2.0", "--psf=disk"]
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    preview.main(["preview"])
  picture = np.asarray(Image.open(output).convert("RGB"))
  # Two rows of three panels, not a blank canvas.
  assert picture.shape[0] > 200 and picture.shape[1] > 300
  assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 100
