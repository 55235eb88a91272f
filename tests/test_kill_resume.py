"""kill -9 at random moments of a tiny training run, then rerun until it finishes.

Every file a run writes is written atomically (d3tf.atomic_io), and resume
rewrites a final model that a kill left missing or unreadable, so the run
must end with the planned steps and every model file loading.
"""

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]
_TOTAL = 4
_ARGS = ["--model_size=tiny", "--crop_size=32", "--batch_size=2", "--epochs=1",
         f"--steps_per_epoch={_TOTAL}", "--save_every_steps=2", "--validation_steps=0",
         "--tensorboard_images=0", "--progress=none", "--seed=3"]


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _start(model_dir):
  return subprocess.Popen([sys.executable, "-m", "d3tf.train", f"--model_dir={model_dir}",
                           *_ARGS], cwd=_REPO, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)


def _kill_after(process, seconds):
  try:
    process.wait(timeout=seconds)
  except subprocess.TimeoutExpired:
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True
  return False


def _kill_at_file(process, path, limit=300.0):
  """Kills ``process`` as soon as ``path`` exists (polling); True if it was killed so."""
  end = time.time() + limit
  while time.time() < end and process.poll() is None:
    if os.path.exists(path):
      process.send_signal(signal.SIGKILL)
      process.wait()
      return True
    time.sleep(0.002)
  process.wait()
  return False


@pytest.mark.slow
@pytest.mark.long  # Not in the default run (pytest.ini); test_train.py's kill test runs there.
def test_kill_minus_9_at_random_moments_then_resume(tmp_path):
  model_dir = tmp_path / "run"
  rng = random.Random(18)
  for _ in range(3):  # Random moments: start-up, training, saves.
    _kill_after(_start(model_dir), rng.uniform(4.0, 25.0))
  # One kill during the final save: as soon as the temporary model file appears.
  caught = False
  for _ in range(3):
    if (model_dir / "backup" / "state.json").exists():
      state = json.loads((model_dir / "backup" / "state.json").read_text())
      if state["global_step"] >= _TOTAL:
        break
    caught = _kill_at_file(_start(model_dir), model_dir / "model.tmp.keras") or caught
    if caught:
      break
  for _ in range(3):  # Rerun until it finishes.
    result = _start(model_dir)
    _, stderr = result.communicate(timeout=300)
    if result.returncode == 0:
      break
  assert result.returncode == 0, stderr[-3000:]
  state = json.loads((model_dir / "backup" / "state.json").read_text())
  assert state["global_step"] == _TOTAL

  import keras  # pylint: disable=g-import-not-at-top
  import d3tf.models  # pylint: disable=g-import-not-at-top,unused-import
  for name in ("model.keras", "best.keras"):
    keras.models.load_model(model_dir / name, compile=False)
  assert not (model_dir / "model.tmp.keras").exists()
  for name in ("flags.txt", "config.json", "d3tf_metadata.json"):  # No camera.json (r1).
    assert (model_dir / name).stat().st_size > 0
  json.loads((model_dir / "d3tf_metadata.json").read_text())


def test_resume_rewrites_an_empty_final_model(tmp_path):
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  from d3tf import model_files  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  model = models.build_d3net(models.D3NetConfig.tiny())
  path = str(tmp_path / "model.keras")
  open(path, "wb").close()  # What a kill during a non-atomic save left.
  with pytest.raises(ValueError, match=r"model\.keras: model file is empty \(0 bytes\)"):
    model_files.check_keras_file(path)
  assert model_files.ensure_saved(model, path)
  model_files.check_keras_file(path)
  assert not model_files.ensure_saved(model, path)  # Loads: left alone.
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(ValueError, match="not a complete .keras archive"):
    model_files.check_keras_file(path)
  assert model_files.ensure_saved(model, path)
  atomic_io.write_json(str(tmp_path / "x.json"), {"a": 1})
  assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}
  assert sorted(os.listdir(tmp_path)) == ["model.keras", "x.json"]
