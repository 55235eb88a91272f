"""Tests of training (tiny model, 32x32 crops).

One uninterrupted run of ``python -m d3tf.train`` (the CLI smoke test, a
subprocess) is shared by the tests: its loss must fall, its model_dir must
hold the documented files, and a copy of the same run that is killed
(SIGKILL, a second subprocess) after a checkpoint and resumed must end at the
same step with the same weights. The rest calls the libraries in-process: a
short Bayesian run (variational decoder blocks and a Gaussian aleatoric head)
must log its loss terms separately, and evaluation and prediction must report
and write its uncertainty.
"""

import csv
import json
import logging
import os
import pathlib
import signal
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from d3tf import flags as flags_lib
from d3tf.experiment import train_lib

flags_lib.define_training_flags()
# pipelines/ also holds the tuner's flagfile (--tuner ...): parsed here with its flags, which
# other test modules defined before only when collected in the same process.
flags_lib.define_tune_flags()

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


def _config(args):
  """The ExperimentConfig that ``python -m d3tf.train ARGS`` would run."""
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])
    return flags_lib.experiment_config_from_flags()


def _capture_info(caplog):
  # Parsing flags sets absl's logger to --verbosity's level (WARNING): INFO for the test.
  caplog.set_level(logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")


def _train_in_process(args, model_dir, caplog):
  config = _config(args)
  _capture_info(caplog)
  summary = train_lib.run_training(config, str(model_dir))
  return summary, caplog.text


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
  for name in ("flags.txt", "command_line.txt", "d3tf_metadata.json",
               "model.keras", "best.keras", "metrics.csv", "backup/state.json"):
    assert (model_dir / name).is_file(), name
  assert str(model_dir) in output  # It says where the outputs went.
  assert "examples/s" in output and "ETA" in output
  assert not (model_dir / "camera.json").exists()  # The metadata holds the camera.
  meta = json.loads((model_dir / "d3tf_metadata.json").read_text())
  camera = meta["camera"]
  assert camera["focus_distance_m"] == 2.0 and camera["focal_length_m"] == 0.015
  assert meta["input"] == "defocus" and meta["schema_version"] == 2 and meta["tf_version"]
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
  config = _config([f"--flagfile={model_dir / 'flags.txt'}"])
  assert config == train_lib.load_config(str(model_dir))
  again = train_lib.run_training(config, str(model_dir))
  assert again["resumed_from"] == _TOTAL == again["steps"] and not again["history"]


def test_resume_after_kill(full_run, tmp_path, caplog):
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

  summary, output = _train_in_process(_ARGS, model_dir, caplog)
  assert f"Resuming from step {saved}" in output and summary["resumed_from"] == saved
  assert json.loads(state_path.read_text())["global_step"] == _TOTAL
  assert f"Done: {_TOTAL} steps" in output and summary["steps"] == _TOTAL
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


def test_init_from_a_deterministic_run_starts_a_bayesian_one(full_run, tmp_path, caplog):
  reference_dir, _ = full_run
  args = ["--model_size=tiny", "--crop_size=32", "--batch_size=2", "--epochs=1",
          "--steps_per_epoch=1", "--validation_steps=1", f"--init_from={reference_dir}",
          "--progress=none"]
  _, output = _train_in_process(["--variational_blocks=5", "--aleatoric=laplace", *args],
                                tmp_path / "bayes", caplog)
  assert f"Initialised the weights from {reference_dir / 'model.keras'}" in output
  assert "1 posterior means from deterministic kernels" in output
  assert "kept the initialisation of ['log_scale_conv']" in output
  with pytest.raises(ValueError, match="do not fit this model") as info:
    _train_in_process(["--input_features=rgb+bandpass", *args], tmp_path / "bandpass", caplog)
  assert "'conv1_conv'" in str(info.value)


def test_bad_flags_are_named():
  for args, message in (
      (["--crop_size=48"], "--crop_size must be a multiple of 32, got 48"),
      (["--dataset=nyu_mat"], "--data_path"),
      (["--variational_blocks=5,7"], "--variational_blocks must list"),
      (["--aleatoric=laplace", "--loss=berhu"], "--loss=berhu does not apply"),
  ):
    with pytest.raises(app.UsageError, match=message.replace("+", r"\+")) as info:
      _config(args)
    if "variational" in message:
      assert "'5,7'" in str(info.value)


def test_every_pipeline_flagfile_parses():
  paths = sorted(str(p.relative_to(_REPO)) for p in (_REPO / "pipelines").glob("*.flags"))
  assert len(paths) >= 10, paths
  parsed = {}
  with flagsaver.flagsaver():
    for path in paths:
      flags.FLAGS.unparse_flags()
      flags.FLAGS(["train", f"--flagfile={path}"])
      parsed[path] = {name: flags.FLAGS[name].value for name in
                      ("model_dir", "dataset", "input_kind", "aleatoric", "input_features",
                       "render_bits")}
  for path, values in parsed.items():
    assert values["model_dir"], path  # Every pipeline names its own run folder.
  # A nested flagfile is read first and the lines after it override it.
  laplace = parsed["pipelines/procedural480_focus2m_bandpass_laplace.flags"]
  assert laplace == {"model_dir": "runs/procedural480_focus2m_bandpass_laplace",
                     "dataset": "tfrecord", "input_kind": "defocus", "aleatoric": "laplace",
                     "input_features": "rgb+bandpass", "render_bits": None}
  assert parsed["pipelines/procedural480_focus2m_bandpass_8bit.flags"]["render_bits"] == 8
  assert len({values["model_dir"] for values in parsed.values()}) == len(paths)


_BAYES_ARGS = ["--model_size=tiny", "--crop_size=32", "--batch_size=2", "--epochs=2",
               "--steps_per_epoch=2", "--validation_steps=1", "--variational_blocks=5,4",
               "--aleatoric=gaussian", "--kl_anneal_steps=2", "--log_every_steps=1",
               "--input_features=rgb+bandpass", "--bandpass_floor=2e-4",
               "--tensorboard_images=1", "--seed=2"]


@pytest.fixture(scope="module")
def bayesian_run(tmp_path_factory):
  """Trained in-process; its log captured by a handler of its own (module scope)."""
  model_dir = tmp_path_factory.mktemp("bayes") / "run"
  records = []
  handler = logging.Handler()
  handler.emit = lambda record: records.append(record.getMessage())
  root, absl_logger = logging.getLogger(), logging.getLogger("absl")
  levels = root.level, absl_logger.level
  root.addHandler(handler)
  try:
    config = _config(_BAYES_ARGS)
    root.setLevel(logging.INFO)
    absl_logger.setLevel(logging.INFO)
    train_lib.run_training(config, str(model_dir))
  finally:
    root.removeHandler(handler)
    root.setLevel(levels[0])
    absl_logger.setLevel(levels[1])
  return model_dir, "\n".join(records)


def _tensorboard_tags(folder):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tags = {}
  for path in folder.glob("events.out.tfevents.*"):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for value in event.summary.value:
        tags.setdefault(value.tag, []).append(event.step)
  return tags


def test_bayesian_run_logs_kl_and_nll_separately(bayesian_run):
  model_dir, output = bayesian_run
  rows = _epoch_rows(model_dir)
  assert {"loss", "nll", "kl", "val_loss", "val_nll", "val_kl", "val_rel"} <= set(rows[0])
  for row in rows:
    assert float(row["kl"]) > 0 and np.isfinite(float(row["nll"]))
    assert float(row["loss"]) == pytest.approx(float(row["nll"]) + float(row["kl"]), rel=1e-4)
  # Warm-up over 2 steps: epoch 1 (weights 0, 0.5) has a quarter of epoch 2's KL (weight 1).
  assert float(rows[0]["kl"]) == pytest.approx(float(rows[1]["kl"]) / 4, rel=0.05)
  assert "kl " in output and "nll " in output and "loss gaussian_nll" in output
  assert "KL / 8 examples (epochs * steps_per_epoch * batch_size)" in output
  tags = _tensorboard_tags(model_dir / "tensorboard" / "train")
  assert {"batch_loss", "batch_kl", "batch_nll", "epoch_kl", "epoch_nll"} <= set(tags), tags
  assert "epoch_kl" in _tensorboard_tags(model_dir / "tensorboard" / "validation")
  meta = json.loads((model_dir / "d3tf_metadata.json").read_text())
  config = meta["model_config"]
  assert config["variational_blocks"] == [5, 4] and config["variational_type"] == "flipout"
  assert config["aleatoric"] == "gaussian" and config["num_train_examples"] == 2 * 2 * 2
  assert config["input_features"] == "rgb+bandpass" and config["bandpass_floor"] == 2e-4
  assert meta["loss"] == "gaussian_nll" and meta["kl_anneal_steps"] == 2
  assert meta["num_train_examples_source"] == "epochs * steps_per_epoch * batch_size"


def test_bayesian_run_evaluates_with_uncertainty_metrics(bayesian_run, tmp_path, caplog):
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  model_dir, _ = bayesian_run
  out = tmp_path / "eval.json"
  _capture_info(caplog)
  report = eval_lib.run_evaluation(eval_lib.EvalConfig(
      model=str(model_dir), num_examples=2, height=32, width=64, samples=3,
      output_json=str(out)))
  log = caplog.text
  assert "Uncertainty metrics of the total std (3 samples" in log
  for name in ("nll", "ause", "spearman", "within_1sigma", "within_2sigma"):
    assert name in log
  assert json.loads(out.read_text())["uncertainty"] == report["uncertainty"]
  unc = report["uncertainty"]
  assert unc["per_image_mean"]["n_pixels"] == 2 * 32 * 64 and unc["ause_metric"] == "abs"
  assert np.isfinite(unc["per_image_mean"]["nll"]) and unc["per_image_mean"]["ause"] >= 0
  assert -1 <= unc["per_image_mean"]["spearman"] <= 1
  assert 0 <= unc["pixel_weighted"]["within_1sigma"] <= unc["pixel_weighted"]["within_2sigma"]
  means = unc["mean_std_m"]
  assert set(means) == {"total", "epistemic", "aleatoric"} and means["epistemic"] > 0
  assert means["total"] ** 2 >= means["aleatoric"] ** 2  # The total includes both parts.
  assert "uncertainty" in report["per_image"][0]


def test_bayesian_run_predicts_std_maps(bayesian_run, tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  model_dir, _ = bayesian_run
  Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(
      tmp_path / "photo.png")
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import predict_lib  # pylint: disable=g-import-not-at-top
  out = tmp_path / "out"
  predict_lib.predict_files(inference.load_predictor(str(model_dir)),
                            [str(tmp_path / "photo.png")], str(out), samples=3)
  maps = {key: np.load(out / f"photo_{key}.npy")
          for key in ("depth_std", "epistemic_std", "aleatoric_std")}
  assert all(m.shape == (40, 50) and m.dtype == np.float32 for m in maps.values())
  assert maps["epistemic_std"].mean() > 0 and np.all(maps["aleatoric_std"] > 0)
  np.testing.assert_allclose(maps["depth_std"] ** 2, maps["epistemic_std"] ** 2 +
                             maps["aleatoric_std"] ** 2, rtol=1e-4)
  for key in maps:
    with Image.open(out / f"photo_{key}_color.png") as png:
      assert png.width > 50  # Image + colour bar.
