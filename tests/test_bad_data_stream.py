"""A bad example in the middle of a training stream: a clean DataError and no hang, or a skip.

The library path runs in-process; one subprocess runs ``python -m d3tf.train``
on a folder whose 5th example is bad (the case that used to hang forever).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from d3tf.data import make_dataset
from d3tf.data import stream_errors
from d3tf.data.readers import folder
from d3tf.data.validation import DataError

_REPO = pathlib.Path(__file__).resolve().parents[1]


def _folder(root, bad: str, n: int = 10, bad_index: int = 4, size: int = 40):
  """rgb/ + depth/ (.npy, metres) with example ``bad_index`` bad (``nan`` or ``size``)."""
  rng = np.random.default_rng(0)
  (root / "rgb").mkdir(parents=True)
  (root / "depth").mkdir()
  for i in range(n):
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
        root / "rgb" / f"{i:04d}.png")
    depth = rng.uniform(1, 5, (size, size)).astype(np.float32)
    if i == bad_index:
      depth = np.full((size, size), np.nan, np.float32) if bad == "nan" else depth[:-8]
    np.save(root / "depth" / f"{i:04d}.npy", depth)
  return root


def _batches(reader, steps=6):
  ds = make_dataset(reader.as_dataset(), batch_size=2, crop_size=(32, 32), augment=False,
                    seed=0, deterministic=True)
  return [b for _, b in zip(range(steps), ds)]


@pytest.mark.parametrize("bad", ["nan", "size"])
def test_bad_example_mid_stream_raises_a_clean_data_error(tmp_path, bad):
  reader = folder.folder_reader_for(_folder(tmp_path, bad))
  with pytest.raises(DataError, match=r"0004\.(npy|png)") as info:
    stream_errors.call(_batches, reader)
  assert any(p.endswith("0004.npy") for p in info.value.paths)
  assert "Traceback" not in str(info.value)


def test_skip_counts_and_reports(tmp_path):
  reader = folder.folder_reader_for(_folder(tmp_path / "data", "size"), on_error="skip")
  batches = stream_errors.call(_batches, reader)
  assert len(batches) == 6
  report = stream_errors.write_skip_report([reader], str(tmp_path))
  assert report["distinct"] == 1 and report["skipped"] >= 1
  with open(tmp_path / stream_errors.SKIPPED_FILENAME) as f:
    saved = json.load(f)
  assert saved == report and "0004.npy" in saved["sources"][0]["examples"][0]


def test_data_error_from_parses_assert_and_traceback_messages():
  error = stream_errors.data_error_from(Exception(
      "Error in ...: assertion failed: [DataError: /d/a.tfrecord (record \\'x\\'): bad"
      "\\n]\n\t [[{{node Assert/Assert}}]]"))
  assert error.paths == ("/d/a.tfrecord (record 'x')",) and error.problem == "bad"
  error = stream_errors.data_error_from(Exception("x DataError: /a + /b: size\nTraceback"))
  assert error.paths == ("/a", "/b") and error.problem == "size"
  assert stream_errors.data_error_from(Exception("something else")) is None


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


@pytest.mark.slow
def test_train_exits_on_a_bad_file_mid_stream_and_skips_it(tmp_path):
  data = _folder(tmp_path / "data", "nan")
  args = [sys.executable, "-m", "d3tf.train", "--dataset=folder", f"--data_path={data}",
          "--model_size=tiny", "--crop_size=32", "--batch_size=2", "--epochs=1",
          "--steps_per_epoch=6", "--validation_steps=0", "--progress=none"]
  # Used to hang forever (the timeout only guards the test run).
  result = subprocess.run([*args, f"--model_dir={tmp_path / 'raise'}"], cwd=_REPO, env=_env(),
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 1, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("d3tf.train: error: ") and "0004.npy" in last, last
  assert "Traceback" not in result.stderr
  result = subprocess.run([*args, f"--model_dir={tmp_path / 'skip'}", "--on_error=skip"],
                          cwd=_REPO, env=_env(), capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "skip" / stream_errors.SKIPPED_FILENAME) as f:
    assert json.load(f)["distinct"] == 1
  assert "Skipped 1 bad examples" in result.stderr


def test_check_lists_every_bad_file(tmp_path):
  from d3tf.data import check  # pylint: disable=g-import-not-at-top
  data = _folder(tmp_path / "data", "nan")
  np.save(data / "depth" / "0007.npy", np.zeros((40, 32), np.float32))  # Second bad one.
  report = check.check(check.make_reader("folder", str(data), "all", 0.001))
  assert report["good"] == 8 and report["distinct"] == 2
  assert "0004.npy" in report["examples"][0] and "0007.npy" in report["examples"][1]
