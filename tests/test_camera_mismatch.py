"""benchmarks/camera_mismatch.py: the camera-mismatch table on a 2 x 2 grid of tiny scenes."""

import importlib.util
import json
import os
import sys
import types

import keras
import numpy as np
from PIL import Image
import pytest

from d3tf import artifacts
from d3tf import inference
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera
from d3tf.optics import camera_range as camera_range_lib

_SCRIPT = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "camera_mismatch.py")


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location("camera_mismatch", _SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # Its dataclasses look their module up.
  spec.loader.exec_module(module)  # Defines no flags at import.
  yield module
  del sys.modules[spec.name]


def _tiny(camera_aware):
  """A tiny untrained D3-Net and its metadata: single-camera (NYU, 2 m) or camera-aware."""
  keras.utils.set_random_seed(0)
  config = D3NetConfig.tiny(camera_aware=camera_aware)
  extra = {"camera_range": camera_range_lib.get_range("anycamera").to_dict()} if (
      camera_aware) else None
  return build_d3net(config), artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=config, train_data="procedural", extra=extra)


def _nyu_tree(root):
  """A DenseDepth layout with one scene of 4 frames of 64 x 96."""
  scene = root / "office_0011_out"
  scene.mkdir(parents=True)
  rng = np.random.default_rng(0)
  for number in range(1, 5):
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(
        scene / f"{number}.jpg", quality=95)
    Image.fromarray(rng.integers(30, 250, (64, 96), dtype=np.uint8)).save(scene / f"{number}.png")
  return str(root)


def test_table_has_the_grid_the_models_own_camera_and_feeds_the_camera(bench, tmp_path):
  models = [bench.model_of(name, inference.Predictor(*_tiny(aware), path=name))
            for name, aware in (("f2", False), ("any", True))]
  assert [m.kind for m in models] == [bench.SINGLE, bench.AWARE]
  calls = []  # The cameras the camera-aware predictor is given.
  predict = models[1].predictor.predict
  models[1].predictor.predict = lambda x, **kw: calls.append(kw.get("camera")) or predict(x, **kw)

  cameras = bench.grid_cameras([2.0, 8.0], [2.8, 5.6])
  assert [c.label for c in cameras] == ["2 m, f/2.8", "2 m, f/5.6", "8 m, f/2.8", "8 m, f/5.6"]
  assert bench.add_model_cameras(cameras, models) == cameras  # NYU at 2 m, f/2.8 is in it.
  sets = [bench.procedural_set(2, height=32, width=48),
          bench.nyu_set(_nyu_tree(tmp_path / "nyu"), frame_stride=2, num_frames=2,
                        downscale_factor=2)]
  assert sets[1].images.shape == (2, 32, 48, 3) and sets[1].mask.shape == (32, 48)
  assert not sets[1].mask.all() and sets[1].mask.any()  # The Eigen crop, scaled.
  output = tmp_path / "out" / "mismatch.md"
  report = bench.run(models, cameras, sets, output=str(output), batch_size=2,
                     command_line="python benchmarks/camera_mismatch.py --model=...")

  # The camera-aware model got each test camera, once per batch (one batch per set).
  assert calls == [c.camera for _ in sets for c in cameras]
  text = output.read_text()
  assert text.startswith("# Camera mismatch") and "python benchmarks/camera_mismatch.py" in text
  for name in ("procedural", "nyu"):
    section = text.split(f"## {name}:")[1].split("Goal")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert rows[0] == "| test camera (focus, f-number) | f2 | any |"
    assert [r.split(" | ")[0][2:] for r in rows[1:]] == [c.label for c in cameras]
    own = [r for r in rows[1:] if "(own)" in r]
    assert len(own) == 1 and own[0].startswith("| 2 m, f/2.8 |")
    assert own[0].split(" | ")[1].endswith("(own)")  # In the single-camera model's column.
    # anycamera has the NYU lens at f/2.8 only: f/5.6 is outside its range.
    assert all(("†" in r) == ("f/5.6" in r) for r in rows[1:])
    assert all(r.count("**") == 2 for r in rows[1:])  # One best cell per row.
  saved = json.loads(output.with_suffix(".json").read_text())
  assert saved["models"]["any"]["kind"] == bench.AWARE
  for name in ("procedural", "nyu"):
    results = saved["datasets"][name]["results"]
    assert list(results) == [c.label for c in cameras]
    for label in results:
      for model in ("f2", "any"):
        scores = results[label][model]["per_image_mean"]
        assert {"rel", "rms", "delta1"} <= set(scores) and np.isfinite(scores["rel"])
    (check,) = saved["datasets"][name]["goal_check"]
    assert list(check["own_cameras"]) == ["2 m, f/2.8"] and len(check["other_cameras"]) == 3
    assert check["passed"] == (all(check["own_cameras"].values())
                               and all(check["other_cameras"].values()))
  # An untrained camera-aware net predicts about its focus distance: other depths at 8 m.
  procedural = report["datasets"]["procedural"]["results"]
  assert procedural["2 m, f/2.8"]["any"]["per_image_mean"]["rel"] != pytest.approx(
      procedural["8 m, f/2.8"]["any"]["per_image_mean"]["rel"], rel=0.05)


def test_models_load_from_model_dirs_best_checkpoint(bench, tmp_path):
  model, metadata = _tiny(False)
  model.save(tmp_path / "best.keras")
  artifacts.write_metadata(tmp_path, metadata)
  (loaded,) = bench.load_models([f"f2={tmp_path}"])
  assert loaded.name == "f2" and loaded.kind == bench.SINGLE
  assert loaded.predictor.path.endswith("best.keras") and loaded.own_camera == Camera.nyu(2.0)
  (flipped,) = bench.load_models([f"f2={tmp_path}"], flip_average=True)
  assert type(flipped.predictor).__name__ == "FlipAveragingPredictor"
  assert flipped.kind == bench.SINGLE and flipped.own_camera == Camera.nyu(2.0)


def test_bad_model_specs_and_cameras_name_the_value(bench):
  with pytest.raises(ValueError, match="--model='nopath'"):
    bench.parse_model_spec("nopath")
  with pytest.raises(ValueError, match="--focus_m=0.01"):
    bench.grid_cameras([0.01], [2.8])
  with pytest.raises(FileNotFoundError, match="--model=a=/no/such"):
    bench.load_models(["a=/no/such"])


def test_a_single_camera_models_camera_missing_from_the_grid_is_added(bench):
  model = bench.Model("dslr", types.SimpleNamespace(camera=Camera.dslr_d200_35mm()), bench.SINGLE)
  grid = bench.grid_cameras([2.0], [2.8])
  rows = bench.add_model_cameras(grid, [model])
  assert rows[:1] == grid and len(rows) == 2 and not rows[1].in_grid
  assert rows[1].camera == Camera.dslr_d200_35mm() and rows[1].label.endswith("(dslr's)")
  assert bench.add_model_cameras(rows, [model]) == rows  # Once.
  assert "focus 1.7, 2 m" in bench.describe_grid(rows)
