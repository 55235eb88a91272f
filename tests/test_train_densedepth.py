"""``python -m d3tf.train --dataset=nyu_densedepth`` (real frames, split by scene, mixing)."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _train(args, timeout=300):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return subprocess.run([sys.executable, "-m", "d3tf.train", *args], cwd=_REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  """Three scenes of 64 x 96 frames (JPEG + uint8 depth PNG): two train, 'val' validates."""
  root = tmp_path_factory.mktemp("nyu_densedepth")
  rng = np.random.default_rng(0)
  for scene in ("kitchen", "lab", "val"):
    directory = root / f"{scene}_out"
    directory.mkdir()
    for n in range(1, 5):
      Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(
          directory / f"{n}.jpg")
      Image.fromarray(rng.integers(40, 250, (64, 96), dtype=np.uint8)).save(
          directory / f"{n}.png")
  return root


@pytest.mark.slow
def test_trains_on_frames_mixed_with_procedural_scenes(tree, tmp_path):
  model_dir = tmp_path / "run"
  result = _train([f"--model_dir={model_dir}", "--dataset=nyu_densedepth", f"--data_path={tree}",
                   "--val_scenes=val", "--mix_procedural=0.5", "--model_size=tiny",
                   "--crop_size=32", "--batch_size=2", "--epochs=1", "--steps_per_epoch=2",
                   "--validation_steps=1", "--tensorboard_images=0", "--seed=3"])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output[-5000:]
  assert "8 frames of scenes kitchen,lab" in output and "0.5 procedural" in output
  with open(model_dir / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 1 and np.isfinite(float(rows[0]["val_rel"]))
  with open(model_dir / "d3tf_metadata.json") as f:
    metadata = json.load(f)
  text = json.dumps(metadata)
  assert '"val_scenes": ["val"]' in text and '"mix_procedural": 0.5' in text
  assert (model_dir / "best.keras").exists()


def test_bad_densedepth_flags_are_named(tree, tmp_path):
  result = _train(["--mix_procedural=0.5", "--model_dir=/nonexistent/never"])
  assert result.returncode != 0
  assert "--mix_procedural applies to --dataset=nyu_densedepth" in result.stderr
  result = _train(["--mix_procedural=1.5"])
  assert result.returncode != 0 and "mix_procedural" in result.stderr
  result = _train(["--dataset=nyu_densedepth", f"--data_path={tree}", "--val_scenes=nope",
                   f"--model_dir={tmp_path / 'run'}"])
  assert result.returncode != 0 and "val_scenes ['nope'] not among" in result.stderr
