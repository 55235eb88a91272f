"""Tests of d3tf.average / d3tf.experiment.average_lib: weight averaging of checkpoints."""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from d3tf import artifacts
from d3tf import inference
from d3tf.experiment import average_lib
from d3tf.models import D3NetConfig
from d3tf.models import build_d3net
from d3tf.optics import Camera

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_dir(path, seed, camera=None, config=None, filename="best.keras"):
  """A tiny untrained D3-Net saved as a model_dir with its metadata and a config.json."""
  keras.utils.set_random_seed(seed)
  config = config or D3NetConfig.tiny()
  model = build_d3net(config)
  os.makedirs(path, exist_ok=True)
  model.save(os.path.join(path, filename))
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=camera or Camera.nyu(2.0), model_config=config, train_data="procedural (test)",
      extra={"crop_size": 32, "loss": "l1", "seed": seed}))
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump({"seed": seed}, f)
  return model


def test_the_average_holds_the_mean_of_every_weight_and_predicts(tmp_path):
  a = _model_dir(tmp_path / "a", 0)
  b = _model_dir(tmp_path / "b", 1)
  out = tmp_path / "avg"
  written = average_lib.run_average([str(tmp_path / "a"), str(tmp_path / "b")], str(out))
  assert written["model"] == str(out / "model.keras")
  averaged, _ = inference.load_model(str(out))
  for wa, wb, w in zip(a.get_weights(), b.get_weights(), averaged.get_weights()):
    np.testing.assert_allclose(w, (wa + wb) / 2, rtol=1e-6, atol=1e-7)
  assert any(not np.allclose(wa, wb) for wa, wb in zip(a.get_weights(), b.get_weights()))
  meta = artifacts.read_metadata(str(out))
  assert meta.extra["averaged_from"] == [
      {"model": str(tmp_path / "a" / "best.keras"), "coefficient": 0.5},
      {"model": str(tmp_path / "b" / "best.keras"), "coefficient": 0.5}]
  assert meta.camera == Camera.nyu(2.0)
  assert meta.extra["seed"] == 0  # The first ingredient's run facts.
  with open(out / "config.json") as f:
    assert json.load(f) == {"seed": 0}
  depth = inference.load_predictor(str(out)).predict(
      np.full((1, 32, 32, 3), 0.5, np.float32))["depth"]
  assert depth.shape[:3] == (1, 32, 32) and np.all(np.isfinite(depth))


def test_coefficients_weigh_the_ingredients_and_are_normalised(tmp_path):
  a = _model_dir(tmp_path / "a", 0)
  b = _model_dir(tmp_path / "b", 1, filename="model.keras")
  average_lib.run_average([str(tmp_path / "a"), str(tmp_path / "b" / "model.keras")],
                          str(tmp_path / "avg"), coefficients=[3, 1])
  averaged, _ = inference.load_model(str(tmp_path / "avg"))
  for wa, wb, w in zip(a.get_weights(), b.get_weights(), averaged.get_weights()):
    np.testing.assert_allclose(w, 0.75 * wa + 0.25 * wb, rtol=1e-5, atol=1e-6)
  assert [i["coefficient"] for i in artifacts.read_metadata(
      str(tmp_path / "avg")).extra["averaged_from"]] == [0.75, 0.25]


@pytest.mark.parametrize("coefficients, count, message", [
    (None, 1, "at least 2 models"),
    ([1.0], 2, r"1 values \(\[1.0\]\) for 2 models"),
    ([1.0, -1.0], 2, r"got \[1.0, -1.0\]"),
    ([0.0, 0.0], 2, "not all 0"),
])
def test_bad_coefficients_are_refused(coefficients, count, message):
  with pytest.raises(ValueError, match=message):
    average_lib.normalised_coefficients(coefficients, count)


def test_ingredients_for_other_inputs_or_networks_are_refused(tmp_path):
  _model_dir(tmp_path / "a", 0)
  _model_dir(tmp_path / "f8", 1, camera=Camera.nyu(8.0))
  _model_dir(tmp_path / "wide", 2, config=dataclasses.replace(D3NetConfig.tiny(),
                                                               init_features=12))
  with pytest.raises(ValueError, match="differ in their metadata's camera"):
    average_lib.run_average([str(tmp_path / "a"), str(tmp_path / "f8")], str(tmp_path / "x"))
  with pytest.raises(ValueError, match="model_config"):
    average_lib.run_average([str(tmp_path / "a"), str(tmp_path / "wide")], str(tmp_path / "x"))
  with pytest.raises(ValueError, match="the same model file is given twice"):
    average_lib.run_average([str(tmp_path / "a"), str(tmp_path / "a" / "best.keras")],
                            str(tmp_path / "x"))
  assert not (tmp_path / "x" / "model.keras").exists()
  with pytest.raises(ValueError, match=r"weight 0 has shape \(3, 3, 3, 12\) in model 2"):
    average_lib.average_weights([[np.zeros((3, 3, 3, 8))], [np.zeros((3, 3, 3, 12))]],
                                [0.5, 0.5])


def test_an_ingredient_on_part_of_the_first_camera_range_is_accepted():
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  metas = {name: artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=D3NetConfig.tiny(), train_data="procedural (test)",
      extra={"camera_range": camera_range.get_range(name).to_dict()})
           for name in ("anycamera", "anycamera_weighted", "anycamera_wide", "dfd_dslr")}
  # The same cameras in other proportions; one family of the first's.
  average_lib.check_metadata_agree([metas["anycamera"], metas["anycamera_weighted"]],
                                   ["a", "weighted"])
  average_lib.check_metadata_agree([metas["anycamera"], metas["dfd_dslr"]], ["a", "dslr"])
  with pytest.raises(ValueError, match="any was trained on camera range 'anycamera', whose "
                     "families 'nyu', 'phone', 'mirrorless' the first ingredient's range "
                     r"\(dslr: 'dfd_dslr'\)"):
    average_lib.check_metadata_agree([metas["dfd_dslr"], metas["anycamera"]], ["dslr", "any"])
  with pytest.raises(ValueError, match="families 'nyu_lens'.*put the widest range first"):
    average_lib.check_metadata_agree([metas["anycamera"], metas["anycamera_wide"]],
                                     ["a", "wide"])
  plain = dataclasses.replace(metas["anycamera"], extra={})
  with pytest.raises(ValueError, match="differ in their metadata's camera_range"):
    average_lib.check_metadata_agree([plain, metas["anycamera"]], ["plain", "a"])


def test_an_existing_average_is_kept_unless_overwrite(tmp_path):
  _model_dir(tmp_path / "a", 0)
  _model_dir(tmp_path / "b", 1)
  paths = [str(tmp_path / "a"), str(tmp_path / "b")]
  average_lib.run_average(paths, str(tmp_path / "avg"))
  before = (tmp_path / "avg" / "model.keras").stat().st_mtime_ns
  with pytest.raises(FileExistsError, match="--overwrite"):
    average_lib.run_average(paths, str(tmp_path / "avg"), coefficients=[1, 2])
  assert (tmp_path / "avg" / "model.keras").stat().st_mtime_ns == before
  average_lib.run_average(paths, str(tmp_path / "avg"), coefficients=[1, 2], overwrite=True)
  assert artifacts.read_metadata(str(tmp_path / "avg")).extra["averaged_from"][1][
      "coefficient"] == pytest.approx(2 / 3)


def test_the_command_line_writes_the_average_and_names_a_bad_coefficient(tmp_path):
  _model_dir(tmp_path / "a", 0)
  _model_dir(tmp_path / "b", 1)
  command = [sys.executable, "-m", "d3tf.average", f"--model={tmp_path / 'a'}",
             f"--model={tmp_path / 'b'}", f"--output_dir={tmp_path / 'avg'}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  bad = subprocess.run(command + ["--coefficients=1,x"], cwd=_REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 1
  assert "--coefficients=1,x: expected numbers" in bad.stderr
  good = subprocess.run(command, cwd=_REPO, env=env, capture_output=True, text=True,
                        timeout=300)
  assert good.returncode == 0, good.stderr[-2000:]
  assert (tmp_path / "avg" / "model.keras").is_file()
  assert "Wrote the average of 2 models" in good.stderr


def test_the_recorded_average_flagfiles_name_their_ingredients_and_output():
  folder = os.path.join(_REPO, "pipelines", "average")
  paths = sorted(p for p in os.listdir(folder) if p.endswith(".flags"))
  assert paths
  for name in paths:
    with open(os.path.join(folder, name)) as f:
      lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    models = [line.split("=", 1)[1] for line in lines if line.startswith("--model=")]
    assert len(models) >= 2 and len(set(models)) == len(models), name
    assert f"--output_dir=runs/{name[:-len('.flags')]}" in lines, name
    assert all(line.startswith(("--model=", "--output_dir=", "--coefficients=",
                                "--checkpoint=")) for line in lines), name
