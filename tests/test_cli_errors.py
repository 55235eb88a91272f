"""Every CLI ends on bad input with one line on stderr and a non-zero status (d3tf.cli_errors).

The wrapper is tested in-process; one subprocess per CLI checks a bad input
end to end (the table of bad inputs in the docs comes from these cases).
"""

import os
import pathlib
import subprocess
import sys

from absl import app
import numpy as np
import pytest
import tensorflow as tf

from d3tf import cli_errors
from d3tf.data.validation import DataError

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _run_wrapped(main, capsys, monkeypatch, env=None):
  monkeypatch.setenv(cli_errors.TRACEBACK_ENV, env or "")
  with pytest.raises(SystemExit) as info:
    cli_errors.wrap(main)(["prog"])
  err = capsys.readouterr().err
  return info.value.code, err


def _raises(error):
  def main(argv):
    del argv
    raise error
  return main


@pytest.mark.parametrize("error, expected", [
    (DataError("/d/0004.npy", "depth map has no valid pixel"),
     "error: /d/0004.npy: depth map has no valid pixel"),
    (ValueError("Camera parameter focal_length_m must be within 0.1-5000 mm, got 1e+09 mm"),
     "error: Camera parameter focal_length_m must be within"),
    (FileNotFoundError(2, "No such file or directory", "/x/model.keras"),
     "error: /x/model.keras: No such file or directory"),
    (app.UsageError("--crop_size must be a multiple of 32, got 48"),
     "error: --crop_size must be a multiple of 32, got 48"),
    (tf.errors.InvalidArgumentError(
        None, None, "Error in user-defined function: assertion failed: [DataError: "
        "/d/rgb/1.png + /d/depth/1.npy: depth map size 40x48 (HxW) differs\\n]\n\t [[{{node}}]]"),
     "error: /d/rgb/1.png + /d/depth/1.npy: depth map size 40x48 (HxW) differs"),
])
def test_user_errors_end_with_one_line(error, expected, capsys, monkeypatch):
  code, err = _run_wrapped(_raises(error), capsys, monkeypatch)
  assert code == 1
  lines = err.strip().splitlines()
  assert len(lines) == 1 and expected in lines[0] and "Traceback" not in err, err


def test_traceback_on_request_and_for_bugs(capsys, monkeypatch):
  code, err = _run_wrapped(_raises(ValueError("bad value 3")), capsys, monkeypatch, env="1")
  assert code == 1 and "Traceback" in err and err.strip().splitlines()[-1].endswith(
      "error: bad value 3")
  code, err = _run_wrapped(_raises(KeyError("bug")), capsys, monkeypatch)
  assert code == 1 and "Traceback" in err and "error: KeyError: 'bug'" in err.splitlines()[-1]


def test_interrupt_and_success(capsys, monkeypatch):
  code, err = _run_wrapped(_raises(KeyboardInterrupt()), capsys, monkeypatch)
  assert code == cli_errors.EXIT_INTERRUPTED and err.strip().endswith("interrupted")
  assert cli_errors.wrap(lambda argv: None)(["prog"]) is None


def test_one_line_collapses_newlines():
  assert cli_errors.one_line("a\n  b\tc") == "a b c"


# ------------------------------------------------------- one subprocess per CLI
def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  env.pop(cli_errors.TRACEBACK_ENV, None)
  return env


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
  """A truncated model (with metadata), a photo and a folder dataset in metres-as-mm PNGs."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("bad")
  model_dir = root / "model"
  model_dir.mkdir()
  (model_dir / "model.keras").write_bytes(b"PK\x03\x04" + b"\x00" * 100)  # Truncated.
  artifacts.write_metadata(str(model_dir), artifacts.Metadata.for_training(
      camera=Camera.nyu(), model_config=models.D3NetConfig.tiny()))
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(root / "photo.png")
  data = root / "data"
  (data / "rgb").mkdir(parents=True)
  (data / "depth").mkdir()
  for i in range(3):
    Image.fromarray(np.full((40, 40, 3), 100 + i, np.uint8)).save(data / "rgb" / f"{i}.png")
    Image.fromarray(np.full((40, 40), 3, np.uint16)).save(data / "depth" / f"{i}.png")  # 3 m.
  return root


# (CLI module, arguments, substrings of the last line). {root}: the fixture's folder.
CASES = [
    ("d3tf.train", ["--focal_length_mm=1e9", "--model_dir={root}/refused"],
     ["focal_length_m must be within 0.1-5000 mm", "1e+09 mm", "wrong unit"]),
    ("d3tf.evaluate", ["--model={root}/model", "--dataset=folder", "--data_path={root}/data"],
     ["model.keras: not a complete .keras archive"]),
    ("d3tf.predict", ["--model={root}/nonexistent", "--input={root}/photo.png",
                      "--focal_length_mm=1e9"],
     ["focal_length_m must be within"]),
    ("d3tf.render", ["--image={root}/photo.png", "--depth={root}/missing.png",
                     "--output_dir={root}/renders"],
     ["missing.png", "file not found"]),
    ("d3tf.export", ["--model={root}/model", "--name=bad", "--export_dir={root}/exports"],
     ["model.keras: not a complete .keras archive"]),
    ("d3tf.preview", ["--output={root}/preview.png", "--focus_distance_m=0.001"],
     ["focus_distance_m"]),
    ("d3tf.data.write_procedural", ["--output_prefix={root}/shards/x", "--num_scenes=0"],
     ["num_scenes"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("module, args, expected", CASES, ids=[c[0] for c in CASES])
def test_cli_bad_input_one_line(bad_inputs, module, args, expected):
  args = [a.format(root=bad_inputs) for a in args]
  result = subprocess.run([sys.executable, "-m", module, *args], cwd=_REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"{module}: error: "), result.stderr[-3000:]
  for text in expected:
    assert text in last, last
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  if module == "d3tf.train":
    assert not (bad_inputs / "refused").exists()  # A refused run leaves nothing behind.


@pytest.mark.slow
def test_train_metres_depth_png_read_as_millimetres(bad_inputs, tmp_path):
  args = ["--dataset=folder", f"--data_path={bad_inputs / 'data'}", "--model_size=tiny",
          "--crop_size=32", "--batch_size=2", "--epochs=1", "--steps_per_epoch=1",
          "--validation_steps=0", f"--model_dir={tmp_path / 'run'}"]
  result = subprocess.run([sys.executable, "-m", "d3tf.train", *args], cwd=_REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert "metres read as millimetres" in last and "--depth_scale=1" in last, last
