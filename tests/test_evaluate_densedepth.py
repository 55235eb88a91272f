"""`python -m d3tf.evaluate --dataset=nyu_densedepth`: scoring held-out scenes by scene."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
from PIL import Image
import pytest

from d3tf import artifacts
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "d3tf.evaluate", *map(str, args)],
                        capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """A tiny defocus model and three scenes (a: 4 frames, b: 3, c: 2) of 64 x 96 frames."""
  keras.utils.set_random_seed(0)
  model = tmp_path_factory.mktemp("run")
  build_d3net(D3NetConfig.tiny()).save(model / "model.keras")
  artifacts.write_metadata(model, artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=D3NetConfig.tiny(), train_data="procedural"))
  root = tmp_path_factory.mktemp("frames")
  rng = np.random.default_rng(1)
  for scene, count in (("a", 4), ("b", 3), ("c", 2)):
    (root / f"{scene}_out").mkdir()
    for n in range(count):
      Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(
          root / f"{scene}_out" / f"{n}.jpg")
      Image.fromarray(rng.integers(30, 250, (64, 96), dtype=np.uint8)).save(
          root / f"{scene}_out" / f"{n}.png")
  return model, root


def test_scores_the_validation_scene_and_named_scenes(setup, tmp_path):
  model, root = setup
  out = tmp_path / "val.json"
  result = _run(f"--model={model}", "--dataset=nyu_densedepth", f"--data_path={root}",
                "--split=validation", "--val_scenes=b", f"--output_json={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["split"] == "validation" and report["num_images"] == 3
  assert [m["name"] for m in report["per_image"]] == ["b/0", "b/1", "b/2"]
  assert report["rendered_defocus"] is True and report["eigen_crop"] is False
  out = tmp_path / "scenes.json"
  result = _run(f"--model={model}", "--dataset=nyu_densedepth", f"--data_path={root}",
                "--split=c,a", "--frame_stride=2", "--camera=none", f"--output_json={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert [m["name"] for m in report["per_image"]] == ["c/0", "a/0", "a/2"]
  assert report["rendered_defocus"] is False and report["split"] == "c,a"


def test_unknown_scene_is_named(setup, tmp_path):
  model, root = setup
  result = _run(f"--model={model}", "--dataset=nyu_densedepth", f"--data_path={root}",
                "--split=validation", f"--output_json={tmp_path / 'x.json'}")
  assert result.returncode != 0
  assert "val_scenes ['office_0011'] not among the scenes ['a', 'b', 'c']" in result.stderr
