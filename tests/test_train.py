"""Tests of ``python -m d3tf.train`` (run as subprocesses, tiny model, 32x32 crops).

One uninterrupted run is shared by the tests: its loss must fall, its
model_dir must hold the documented files, and a copy of the same run that is
killed (SIGKILL) after a checkpoint and restarted must end at the same step
with the same weights.
"""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
_STEPS_PER_EPOCH = 5
_EPOCHS = 3
_TOTAL = _STEPS_PER_EPOCH * _EPOCHS
# Dropout off: MCDropout draws its masks from a stateful tf.random op whose
# state is not checkpointed, so only without dropout are resumed weights
# expected to equal uninterrupted ones exactly.
_ARGS = ["--model_size=tiny", "--crop_size=32", "--batch_size=4", f"--epochs={_EPOCHS}",
         f"--steps_per_epoch={_STEPS_PER_EPOCH}", "--validation_steps=1", "--learning_rate=3e-3",
         "--dropout_rate=0", "--save_every_steps=3", "--log_every_steps=3",
         "--tensorboard_images=2", "--seed=1"]


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _train(args, timeout=240):
  return subprocess.run([sys.executable, "-m", "d3tf.train", *args], cwd=_REPO, env=_env(),
                        capture_output=True, text=True, timeout=timeout)


def _check(result):
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
  return result.stdout + result.stderr


def _epoch_rows(model_dir):
  with open(os.path.join(model_dir, "metrics.csv")) as f:
    return list(csv.DictReader(f))


def _weights(path):
  import keras  # pylint: disable=g-import-not-at-top
  import d3tf.models  # pylint: disable=g-import-not-at-top,unused-import
  return keras.models.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
  model_dir = tmp_path_factory.mktemp("train") / "run"
  output = _check(_train([f"--model_dir={model_dir}", *_ARGS]))
  return model_dir, output


def test_loss_falls(full_run):
  model_dir, _ = full_run
  rows = _epoch_rows(model_dir)
  assert [int(r["epoch"]) for r in rows] == list(range(_EPOCHS))
  losses = [float(r["loss"]) for r in rows]
  assert all(np.isfinite(losses))
  assert losses[-1] < 0.85 * losses[0], losses
  val = [float(r["val_rel"]) for r in rows]
  assert val[-1] < val[0], val


def test_model_dir_contents(full_run):
  model_dir, output = full_run
  for name in ("flags.txt", "command_line.txt", "camera.json", "d3tf_metadata.json",
               "model.keras", "best.keras", "metrics.csv", "backup/state.json"):
    assert (model_dir / name).is_file(), name
  assert str(model_dir) in output  # It says where the outputs went.
  assert "examples/s" in output and "ETA" in output
  camera = json.loads((model_dir / "camera.json").read_text())
  assert camera["focus_distance_m"] == 2.0 and camera["focal_length_m"] == 0.015
  meta = json.loads((model_dir / "d3tf_metadata.json").read_text())
  assert meta["input"] == "defocus" and meta["camera"] == camera
  assert meta["model_config"]["dropout_rate"] == 0.0
  assert json.loads((model_dir / "backup/state.json").read_text())["global_step"] == _TOTAL
  flags_txt = (model_dir / "flags.txt").read_text()
  assert f"--model_dir={model_dir}" in flags_txt and "--model_size=tiny" in flags_txt
  events = {d: list((model_dir / "tensorboard" / d).glob("events.out.tfevents.*"))
            for d in ("train", "validation")}
  assert all(events.values()), events
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = set()
  for event in tf.compat.v1.train.summary_iterator(str(events["validation"][0])):
    tags.update(v.tag for v in event.summary.value)
  assert {"input", "ground_truth", "prediction", "abs_error", "epoch_rel"} <= tags, tags
  # flags.txt is a flagfile of the same run: running it again finds the run complete.
  again = _check(_train([f"--flagfile={model_dir / 'flags.txt'}"]))
  assert "nothing to do" in again


def test_resume_after_kill(full_run, tmp_path):
  """Killed with SIGKILL after a mid-epoch checkpoint, the rerun ends where the full run did."""
  reference_dir, _ = full_run
  model_dir = tmp_path / "killed"
  process = subprocess.Popen([sys.executable, "-m", "d3tf.train", f"--model_dir={model_dir}",
                              *_ARGS], cwd=_REPO, env=_env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  state_path = model_dir / "backup" / "state.json"
  killed_at = None
  deadline = time.time() + 180
  while process.poll() is None and time.time() < deadline:
    if state_path.exists():
      step = json.loads(state_path.read_text())["global_step"]
      if step >= 6:
        process.send_signal(signal.SIGKILL)
        killed_at = step
        break
    time.sleep(0.02)
  process.wait(timeout=60)
  assert killed_at is not None and process.returncode == -signal.SIGKILL, process.returncode
  saved = json.loads(state_path.read_text())["global_step"]
  assert 6 <= saved < _TOTAL
  assert not (model_dir / "model.keras").exists()

  output = _check(_train([f"--model_dir={model_dir}", *_ARGS]))
  assert f"Resuming from step {saved}" in output
  assert json.loads(state_path.read_text())["global_step"] == _TOTAL
  assert f"Done: {_TOTAL} steps" in output
  rows = _epoch_rows(model_dir)
  # Epochs finished before the kill are not repeated; the interrupted one is finished once.
  assert [int(r["epoch"]) for r in rows] == list(range(_EPOCHS)), rows
  reference = _weights(reference_dir / "model.keras")
  resumed = _weights(model_dir / "model.keras")
  assert len(reference) == len(resumed)
  for a, b in zip(reference, resumed):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  final_reference = _epoch_rows(reference_dir)[-1]
  assert float(rows[-1]["val_rel"]) == pytest.approx(float(final_reference["val_rel"]), rel=1e-4)


def test_bad_flags_are_named():
  result = _train(["--crop_size=48", "--model_dir=/nonexistent/never"])
  assert result.returncode != 0
  assert "--crop_size must be a multiple of 32, got 48" in result.stderr
  result = _train(["--dataset=nyu_mat"])
  assert result.returncode != 0 and "--data_path" in result.stderr
