"""Tests of the hyperparameter search (``python -m d3tf.tune``, d3tf.experiment.tune_lib).

A bad search space is refused before any trial, naming the flag and the
value; a tiny search (2 trials of a tiny model, 2 steps each), killed with
SIGKILL during its second trial and run again, finishes without redoing the
first, writes the summary, and its best.flags gives train the best config.
"""

import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl.testing import flagsaver
import pytest

from d3tf import flags as flags_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import presets
from d3tf.experiment import tune_lib

_REPO = pathlib.Path(__file__).resolve().parents[1]
flags_lib.define_tune_flags()

_TINY = ["--experiment=quickstart_procedural", "--model_size=tiny", "--crop_size=32",
         "--batch_size=2", "--epochs=1", "--steps_per_epoch=2", "--validation_steps=1",
         "--tensorboard_images=0", "--progress=none"]
_SPACE = ["--max_trials=2", "--tune_learning_rate=1e-4,3e-3", "--tune_loss=l1,berhu",
          "--tune_input_features=rgb,rgb+bandpass"]


def _parse(*args):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["prog", *args])


def _check_flags(*args):
  """tune's validation of the flags, as its main() does before any trial."""
  with flagsaver.flagsaver():
    _parse(*_TINY, *args)
    config = flags_lib.experiment_config_from_flags()
    space, tune = flags_lib.tune_configs_from_flags()
    try:
      tune_lib.check(config, space, tune)
    except ValueError as e:
      raise flags_lib.usage_error(e) from e


# ------------------------------------------------------------ the space
@pytest.mark.parametrize("args, message", [
    (["--tune_loss=l1,huber"], r"--tune_loss=l1,huber: 'huber' is refused .*--loss must be "
                               r"one of l1, berhu"),
    (["--tune_learning_rate=3e-3,1e-4"], r"--tune_learning_rate=0.003,0.0001: an empty or "
                                         r"inverted range"),
    (["--tune_learning_rate=1e-3,1e-3"], r"--tune_learning_rate=0.001,0.001: an empty"),
    (["--tune_learning_rate=0,1e-3"], r"--tune_learning_rate=0.0,0.001: a log range needs"),
    (["--tune_learning_rate=1e-4,1e-3,1e-2"], r"one value \(fixed\) or two"),
    (["--tune_learning_rate=fast"], r"--tune_learning_rate must list numbers, got 'fast'"),
    (["--tune_dropout_rate=0.2,1.5"], r"--tune_dropout_rate=0.2,1.5: 1.5 is refused"),
    (["--tune_input_features=rgb,depth"], r"--tune_input_features=rgb,depth: 'depth'"),
    (["--tune_kl_weight=0.1,1"], r"--tune_kl_weight=0.1,1.0: applies to Bayesian models"),
    (["--tune_rho=0.2,0.4", "--camera=none"], r"--tune_rho=0.2,0.4: applies to defocus"),
    (["--tune_variational_blocks=5+4,7"], r"--tune_variational_blocks=5\+4,7: '7' is refused"),
    (["--tune_loss=l1,l1"], r"lists a value twice"),
    (["--validation_steps=0"], r"--validation_steps=0: the objective val_rel needs"),
])
def test_bad_spaces_are_refused_naming_the_flag_and_value(args, message):
  with pytest.raises(app.UsageError, match=message):
    _check_flags(*args)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is not None,
                    reason="scikit-learn is installed: Bayesian optimisation can run")
def test_bayesian_without_scikit_learn_is_refused_before_any_trial():
  with pytest.raises(app.UsageError, match="--tuner=bayesian needs scikit-learn"):
    _check_flags("--tuner=bayesian", *_SPACE)


def test_good_space_passes_and_hyperparameters_name_config_fields():
  _check_flags(*_SPACE, "--tune_variational_blocks=5+4,none", "--tune_kl_weight=0.1,1",
               "--tune_rho=0.2,0.4", "--tune_decoder_width=0.5,1", "--tune_dropout_rate=0.3")
  import keras_tuner  # pylint: disable=g-import-not-at-top
  base = presets.get_preset("quickstart_procedural").resolved()
  space = tune_lib.SearchSpace(learning_rate=(1e-4, 3e-3), variational_blocks=("5+4", "none"),
                               decoder_width=(0.5,), rho=(0.2, 0.4))
  hp = keras_tuner.HyperParameters()
  space.register(hp)
  config = base.with_hyperparameters(hp)
  assert 1e-4 <= config.training.learning_rate <= 3e-3
  assert config.model.variational_blocks == (5, 4) and config.model.decoder_width == 0.5
  assert config.render.render_options()["rho"] == config.render.rho
  assert base.with_hyperparameters({"model.variational_blocks": "none"}).model.variational_blocks == ()
  # The model seam: DepthTask.build_model(hp) applies the model.* values.
  small = base.model.d3net_config().decoder_filters
  assert base.model.d3net_config(100, hp=hp).decoder_filters == tuple(round(f / 2) for f in small)
  with pytest.raises(config_lib.ConfigError, match="training.loss"):
    base.with_hyperparameters({"training.loss": "huber"})


# ------------------------------------------------------------ a real search
def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env["PYTHONPATH"] = os.pathsep.join([str(_REPO), env.get("PYTHONPATH", "")])
  return env


def _tune(model_dir, *extra):
  return subprocess.Popen([sys.executable, "-m", "d3tf.tune", f"--model_dir={model_dir}",
                           *_TINY, *_SPACE, *extra], cwd=_REPO, env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _starts(model_dir):
  path = model_dir / tune_lib.STARTS_FILENAME
  if not path.exists():
    return []
  return [json.loads(line)["trial_id"] for line in path.read_text().splitlines() if line]


def _status(model_dir, trial_id):
  path = model_dir / "trials" / f"trial_{trial_id}" / "trial.json"
  try:
    return json.loads(path.read_text())["status"]
  except (OSError, ValueError):
    return None


@pytest.mark.slow
@pytest.mark.long
def test_search_killed_during_a_trial_resumes_without_redoing_finished_ones(tmp_path):
  model_dir = tmp_path / "search"
  proc = _tune(model_dir)
  deadline = time.time() + 900  # Generous: a loaded CI machine.
  try:  # Kill -9 once trial 0 is finished and trial 1 has started.
    while not (_status(model_dir, "0") == "COMPLETED" and "1" in _starts(model_dir)):
      assert proc.poll() is None, proc.stderr.read()[-3000:]
      assert time.time() < deadline, "the search did not reach its second trial"
      time.sleep(0.2)
    first = (model_dir / "trials" / "trial_0" / "trial.json").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    if proc.poll() is None:
      proc.kill()
  assert _status(model_dir, "1") == "RUNNING"

  rerun = _tune(model_dir)
  _, err = rerun.communicate(timeout=900)
  assert rerun.returncode == 0, err[-3000:]
  assert _starts(model_dir) == ["0", "1", "1"]  # Trial 1 rerun, trial 0 never again.
  assert (model_dir / "trials" / "trial_0" / "trial.json").read_text() == first
  assert _status(model_dir, "1") == "COMPLETED"

  summary = json.loads((model_dir / "summary.json").read_text())
  assert summary["trials_finished"] == 2 and summary["objective"] == "val_rel"
  best = summary["best"]
  assert best["val_rel"] == min(t["val_rel"] for t in summary["trials"])
  table = (model_dir / "summary.md").read_text()
  assert "| 1 | " + best["trial_id"] + " |" in table and "training.learning_rate" in table
  events = (model_dir / "tensorboard" / "1" / "execution0").glob("events.out.tfevents.*")
  assert any(b"_hparams_/session_start_info" in p.read_bytes() for p in events)  # HParams.

  # best.flags is train's flagfile of the best config, at the full budget.
  best_config = config_lib.ExperimentConfig.from_dict(
      json.loads((model_dir / "best_config.json").read_text()))
  assert best_config.training.learning_rate == best["hyperparameters"]["training.learning_rate"]
  with flagsaver.flagsaver():
    _parse(f"--flagfile={model_dir / 'best.flags'}")
    assert flags.FLAGS.model_dir == str(model_dir / "best_retrain")
    assert flags_lib.experiment_config_from_flags() == best_config
  # train's main() on it, in this process (a tiny override of the budget).
  from d3tf import train  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    _parse(f"--flagfile={model_dir / 'best.flags'}", f"--model_dir={tmp_path / 'retrain'}",
           "--steps_per_epoch=1")
    train.main(["train"])
  assert (tmp_path / "retrain" / "model.keras").is_file()
  assert "--loss=" + best_config.training.loss in (tmp_path / "retrain" / "flags.txt").read_text()
