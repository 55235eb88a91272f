"""Tests of `python -m d3tf.evaluate`, run as a user would (a subprocess)."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from d3tf import artifacts
from d3tf import inference
from d3tf import metrics
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera

_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def _run(*args, check=True):
  result = subprocess.run([sys.executable, "-m", "d3tf.evaluate", *map(str, args)],
                          capture_output=True, text=True, env=_ENV, timeout=300)
  if check and result.returncode != 0:
    raise AssertionError(f"d3tf.evaluate failed ({result.returncode}):\n{result.stderr[-3000:]}")
  return result


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny D3-Net trained (nominally) on defocus from the NYU camera focused at 2 m."""
  keras.utils.set_random_seed(0)
  path = tmp_path_factory.mktemp("run")
  build_d3net(D3NetConfig.tiny()).save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=D3NetConfig.tiny(), train_data="procedural"))
  return path


def test_procedural_scenes_rendered_with_the_models_camera(model_dir, tmp_path):
  out = tmp_path / "eval.json"
  result = _run(f"--model={model_dir}", "--dataset=procedural", "--num_examples=3",
                "--height=64", "--width=64", "--batch_size=2", f"--output_json={out}")
  assert "per-image mean" in result.stderr and "pixel-weighted" in result.stderr
  assert "RMS per depth bin" in result.stderr and str(out) in result.stderr
  report = json.loads(out.read_text())
  assert report["dataset"] == "procedural" and report["split"] == "test"
  assert report["num_images"] == 3 and len(report["per_image"]) == 3
  assert report["camera"] == Camera.nyu(2.0).to_dict()
  assert report["camera_source"] == "model metadata" and report["rendered_defocus"] is True
  assert report["eigen_crop"] is False and report["averaging"] == "per_image_mean"
  assert report["metrics"] == report["metrics_per_image_mean"]
  assert set(metrics.METRIC_NAMES) <= set(report["metrics_pixel_weighted"])
  bins = report["rms_per_depth_bin"]
  assert len(bins) == 10 and (bins[0]["lo_m"], bins[-1]["hi_m"]) == (0.0, 10.0)
  assert sum(b["n_pixels"] for b in bins) == report["metrics"]["n_pixels"] == 3 * 64 * 64
  assert "uncertainty" not in report  # One deterministic pass: no std, and no plot of it.
  assert not (tmp_path / "eval_sparsification.png").exists()

  # The same numbers in-process: render with the camera, predict, score.
  from d3tf.data import procedural
  from d3tf.optics import render_defocus
  scenes = procedural.scene_batch(range(3), split="test", height=64, width=64)
  blurred = render_defocus(scenes["image"] / np.float32(255.0), scenes["depth"],
                           Camera.nyu(2.0)).numpy()
  depth = inference.load_predictor(model_dir).predict(blurred)["depth"]
  acc = metrics.MetricsAccumulator()
  acc.update(scenes["depth"], depth)
  expected = acc.result()
  for name in metrics.METRIC_NAMES:
    assert report["metrics"][name] == pytest.approx(expected["per_image_mean"][name], rel=1e-3)
    assert report["metrics_pixel_weighted"][name] == pytest.approx(
        expected["pixel_weighted"][name], rel=1e-3)


def test_render_bits_rounds_the_rendered_test_images(model_dir, tmp_path):
  out = tmp_path / "eight_bit.json"
  _run(f"--model={model_dir}", "--dataset=procedural", "--num_examples=2", "--height=64",
       "--width=64", "--render_bits=8", f"--output_json={out}")
  report = json.loads(out.read_text())
  assert report["render_options"]["output_bits"] == 8
  from d3tf.data import procedural
  from d3tf.optics import render_defocus
  scenes = procedural.scene_batch(range(2), split="test", height=64, width=64)
  image = scenes["image"] / np.float32(255.0)
  predictor = inference.load_predictor(model_dir)
  scores = {}
  for bits in (0, 8):
    blurred = render_defocus(image, scenes["depth"], Camera.nyu(2.0), output_bits=bits).numpy()
    acc = metrics.MetricsAccumulator()
    acc.update(scenes["depth"], predictor.predict(blurred)["depth"])
    scores[bits] = acc.result()["per_image_mean"]["rel"]
  assert report["metrics"]["rel"] == pytest.approx(scores[8], rel=1e-4)
  assert scores[8] != scores[0]  # The rounding reaches the model.


def test_two_real_nyu_images_in_the_eigen_crop_with_mc_samples(model_dir, tmp_path,
                                                                shared_subdir):
  nyu = shared_subdir("nyuv2_samples")
  out = tmp_path / "nyu.json"
  _run(f"--model={model_dir}", "--dataset=nyu_png", f"--data_path={nyu}", "--num_examples=2",
       "--samples=2", "--median_scaling", f"--output_json={out}")
  report = json.loads(out.read_text())
  assert report["num_images"] == 2 and report["num_available"] >= 2
  assert report["split"] == "all"  # no splits.mat beside the samples: every image.
  assert report["eigen_crop"] is True and report["rendered_defocus"] is True
  assert report["median_scaling"] is True
  eigen_pixels = (471 - 45) * (601 - 41)
  assert all(0.9 * eigen_pixels < m["n_pixels"] <= eigen_pixels for m in report["per_image"])
  assert report["mean_depth_std_m"] > 0 and report["samples"] == 2
  with Image.open(tmp_path / "nyu_sparsification.png") as plot:  # Beside the JSON.
    assert plot.format == "PNG" and plot.width > 300 and plot.height > 200
  assert 0 < report["metrics"]["rms"] < 10
  assert [m["name"] for m in report["per_image"]] == sorted(m["name"] for m in
                                                            report["per_image"])


def test_depth_in_the_wild_pairs_give_wkdr(model_dir, tmp_path):
  from d3tf.data import procedural
  from d3tf.data.readers.diw import write_diw_csv
  records = []
  for i in range(2):
    scene = procedural.generate_scene(i, split="test", height=40, width=56)
    Image.fromarray(scene["image"]).save(tmp_path / f"img{i}.png")
    records.append((f"img{i}.png", 1, 1, 40, 56, ">" if i else "<", 56, 40))
  write_diw_csv(tmp_path / "DIW_test.csv", records)
  # A sharp-input copy of the model: no camera, nothing rendered.
  sharp = tmp_path / "sharp"
  sharp.mkdir()
  shutil.copy(model_dir / "model.keras", sharp / "model.keras")
  artifacts.write_metadata(sharp, artifacts.Metadata.for_training(model_config=D3NetConfig.tiny()))
  _run(f"--model={sharp}", "--dataset=diw", f"--data_path={tmp_path / 'DIW_test.csv'}")
  report = json.loads((sharp / "eval_diw.json").read_text())  # default: beside the model.
  assert report["metrics"]["n_pairs"] == 2 and report["camera"] is None
  assert report["metrics"]["wkdr"] in (0.0, 0.5, 1.0)
  assert [m["n_pairs"] for m in report["per_image"]] == [1, 1]


def test_bad_flags_name_the_problem(tmp_path):
  result = _run(f"--model={tmp_path / 'missing'}", check=False)
  assert result.returncode != 0 and str(tmp_path / "missing") in result.stderr
  result = _run(f"--model={tmp_path}", "--dataset=nyu_png", check=False)
  assert result.returncode != 0 and "--dataset=nyu_png needs --data_path" in result.stderr
  (tmp_path / "m.keras").write_bytes(b"")
  result = _run(f"--model={tmp_path / 'm.keras'}", check=False)
  assert result.returncode != 0
  assert str(tmp_path / artifacts.METADATA_FILENAME) in result.stderr
