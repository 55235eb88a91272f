"""Tests of the experiment layer: config tree, presets, flags -> config, and the libraries.

The last test trains, evaluates and exports a tiny model in-process, through
the libraries alone (no subprocess, no flags).
"""

import json
import pathlib

from absl import app
from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from d3tf import flags as flags_lib
from d3tf.experiment import config as config_lib
from d3tf.experiment import presets

_REPO = pathlib.Path(__file__).resolve().parents[1]
flags_lib.define_training_flags()
flags_lib.define_eval_flags()
flags_lib.define_predict_flags()
flags_lib.define_tune_flags()  # pipelines/tune_*.flags hold a search space on top.


def _parse(*args):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["prog", *args])


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("name", presets.preset_names())
def test_every_preset_round_trips_through_a_dict(name):
  config = presets.get_preset(name)
  again = config_lib.ExperimentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
  assert again == config
  assert again.resolved().to_dict() == config.resolved().to_dict()


def test_default_config_resolves_from_the_dataset():
  procedural = config_lib.ExperimentConfig().resolved()
  assert (procedural.data.crop_size, procedural.model.size) == (128, "small")
  nyu = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(dataset="nyu_mat", data_path="x.mat")).resolved()
  assert (nyu.data.crop_size, nyu.model.size) == (256, "full")
  assert procedural.build_camera().focus_distance_m == 2.0
  sharp = procedural.replace(render={"input": "sharp"})
  assert sharp.build_camera() is None


@pytest.mark.parametrize("section,values,field,shown", [
    ("data", {"crop_size": 48}, "data.crop_size", "48"),
    ("data", {"batch_size": 0}, "data.batch_size", "0"),
    ("data", {"dataset": "imagenet"}, "data.dataset", "imagenet"),
    ("data", {"dataset": "nyu_mat"}, "data.data_path", "needs data.data_path"),
    ("training", {"learning_rate": -1.0}, "training.learning_rate", "-1.0"),
    ("training", {"beta1": 1.0}, "training.beta1", "1.0"),
    ("training", {"epochs": "3"}, "training.epochs", "'3'"),
    ("training", {"loss": "l2"}, "training.loss", "'l2'"),
    ("training", {"lr_schedule": "step"}, "training.lr_schedule", "'step'"),
    ("training", {"warmup": 3}, "training.warmup", "unknown"),
    ("model", {"variational_blocks": [5, 7]}, "model.variational_blocks", "(5, 7)"),
    ("model", {"size": "huge"}, "model.size", "'huge'"),
    ("camera", {"preset": "leica"}, "camera.preset", "'leica'"),
    ("camera", {"focus_distance_m": 0.0}, "camera.focus_distance_m", "0.0"),
    ("render", {"bits": 17}, "render.bits", "17"),
    ("runtime", {"distribution_strategy": "horovod"}, "runtime.distribution_strategy",
     "horovod"),
    ("runtime", {"tpu_address": "local"}, "runtime.tpu_address", "local"),
    ("runtime", {"data_service": "localhost:5050"}, "runtime.data_service", "localhost:5050"),
])
def test_bad_values_raise_naming_the_field_and_value(section, values, field, shown):
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.ExperimentConfig().replace(**{section: values})
  assert info.value.field == field
  assert field in str(info.value) and shown in str(info.value)
  assert isinstance(info.value, ValueError)


def test_a_loss_with_an_aleatoric_head_is_refused():
  with pytest.raises(config_lib.ConfigError, match="training.loss=berhu does not apply"):
    config_lib.ExperimentConfig().replace(model={"aleatoric": "laplace"},
                                          training={"loss": "berhu"})


def test_camera_config_builds_presets_overrides_and_the_models_camera():
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  assert config_lib.CameraConfig("dslr").build() == Camera.dslr_d200_35mm()
  assert config_lib.CameraConfig("nyu", focus_distance_m=8.0).build() == Camera.nyu(8.0)
  assert config_lib.CameraConfig("none").build() is None
  model = Camera.nyu(4.0)
  assert config_lib.CameraConfig("model", f_number=2.0).build(model) == Camera(
      0.015, 2.0, 5.6e-6, 4.0)
  with pytest.raises(config_lib.ConfigError, match="missing"):
    config_lib.CameraConfig("model", f_number=2.0).build(None)
  with pytest.raises(config_lib.ConfigError, match="contradicts"):
    config_lib.CameraConfig("none", f_number=2.0).build()


def test_unknown_preset_is_named():
  with pytest.raises(ValueError, match="'nope'.*quickstart_procedural"):
    presets.get_preset("nope")


# ------------------------------------------------------------ flags -> config
def test_every_pipeline_flagfile_gives_its_preset():
  paths = sorted((_REPO / "pipelines").glob("*.flags"))
  assert len(paths) >= 10
  with flagsaver.flagsaver():
    for path in paths:
      _parse(f"--flagfile={path.relative_to(_REPO)}")
      assert flags.FLAGS.model_dir == f"runs/{path.stem}", path
      from_flags = flags_lib.experiment_config_from_flags()
      assert from_flags == presets.get_preset(path.stem).resolved(), path.name
      # --experiment=NAME alone gives the same config.
      _parse(f"--experiment={path.stem}")
      assert flags_lib.experiment_config_from_flags() == from_flags, path.name


def test_flags_override_the_preset_and_old_names_still_work():
  with flagsaver.flagsaver():
    _parse("--experiment=procedural480_focus2m_bandpass", "--epochs=2", "--camera=dslr",
           "--variational_blocks=4,5")
    config = flags_lib.experiment_config_from_flags()
    assert config.training.epochs == 2 and config.training.learning_rate == 1e-3
    assert config.camera.preset == "dslr" and config.camera.focus_distance_m == 2.0
    assert config.model.variational_blocks == (5, 4)
    assert config.model.input_features == "rgb+bandpass"
    _parse("--input=sharp")  # Old name of --input_kind.
    assert flags_lib.experiment_config_from_flags().build_camera() is None
    _parse("--camera=none")  # The shared vocabulary's all-in-focus.
    assert flags_lib.experiment_config_from_flags().render.input == "sharp"
    # flags.txt rebuilds the same config.
    _parse("--experiment=procedural480_aif_bandpass_laplace", "--crop_size=64")
    config = flags_lib.experiment_config_from_flags()
    lines = flags_lib.flagfile_from_config(config, "runs/x").splitlines()
    _parse(*[line for line in lines if not line.startswith("#")])
    assert flags_lib.experiment_config_from_flags() == config


def test_train_step_flags_reach_the_model_config():
  with flagsaver.flagsaver():
    _parse("--experiment=quickstart_procedural")
    config = flags_lib.experiment_config_from_flags()
    default = config.model.d3net_config()
    assert default.fused_batch_norm and not default.recompute
    _parse("--experiment=quickstart_procedural", "--nofused_batch_norm", "--recompute")
    config = flags_lib.experiment_config_from_flags()
    chosen = config.model.d3net_config()
    assert not chosen.fused_batch_norm and chosen.recompute
    lines = flags_lib.flagfile_from_config(config, "runs/x").splitlines()
    assert "--nofused_batch_norm" in lines and "--recompute" in lines


def test_bad_flags_are_named_by_their_flag():
  with flagsaver.flagsaver():
    for args, message in (
        (["--crop_size=48"], "--crop_size must be a multiple of 32, got 48"),
        (["--dataset=nyu_mat"], "--dataset=nyu_mat needs --data_path"),
        (["--variational_blocks=5,7"], "--variational_blocks must list distinct decoder "
         "blocks in 1-5 (5 the deepest), got '5,7'"),
        (["--aleatoric=laplace", "--loss=berhu"], "--loss=berhu does not apply"),
        (["--camera=model"], "--camera=model names a trained model's camera"),
        (["--input=blurry"], "--input (deprecated: use --input_kind)"),
    ):
      _parse(*args)
      with pytest.raises(app.UsageError) as info:
        flags_lib.experiment_config_from_flags()
      assert message in str(info.value), (args, str(info.value))


def test_eval_and_predict_flags_use_the_same_camera_vocabulary():
  with flagsaver.flagsaver():
    _parse("--model=m", "--camera=dslr", "--focus_distance_m=3")
    config = flags_lib.eval_config_from_flags()
    assert config.camera == config_lib.CameraConfig("dslr", focus_distance_m=3.0)
    assert config.batch_size == 4 and config.samples == 1 and config.split == "test"
    _parse("--model=m")
    assert flags_lib.eval_config_from_flags().camera.preset == "model"
    _parse("--model=m", "--input=photos/")  # predict's old name of --images.
    assert flags_lib.images_from_flags() == "photos/"
    _parse("--model=m", "--images=a.png")
    assert flags_lib.images_from_flags() == "a.png"


# ------------------------------------------------------------ the data registry
def test_folder_dataset_reads_both_layouts_for_train_and_eval(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  rgb = np.zeros((8, 8, 3), np.uint8)
  depth = np.full((8, 8), 1500, np.uint16)
  (tmp_path / "two" / "rgb").mkdir(parents=True)
  (tmp_path / "two" / "depth").mkdir()
  Image.fromarray(rgb).save(tmp_path / "two" / "rgb" / "a.png")
  Image.fromarray(depth).save(tmp_path / "two" / "depth" / "a.png")
  (tmp_path / "one").mkdir()
  Image.fromarray(rgb).save(tmp_path / "one" / "a_colors.png")
  Image.fromarray(depth).save(tmp_path / "one" / "a_depth.png")
  for layout in ("two", "one"):
    for split in ("train", "test"):
      reader = registry.make_reader("folder", str(tmp_path / layout), split)
      samples = list(reader.iter_samples())
      assert len(samples) == 1, layout
      np.testing.assert_allclose(samples[0][2], 1.5)
  with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
    registry.make_reader("imagenet", "x")


# ------------------------------------------------------------ the libraries
def test_task_inputs_are_sharded_per_replica_under_an_input_context():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 4}, model={"size": "tiny"},
      training={"validation_steps": 1}))
  context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1,
                                       num_replicas_in_sync=2)
  inputs, depth = next(iter(task.build_inputs("train", context)))
  assert inputs.shape == (2, 32, 32, 3) and depth.shape == (2, 32, 32, 1)
  whole, _ = next(iter(task.build_inputs("train")))
  assert whole.shape == (4, 32, 32, 3)
  assert not np.allclose(inputs.numpy(), whole.numpy()[:2])  # Its own stream.
  assert task.steps_per_epoch == 100 and task.kl_num_examples == (1200, (
      "epochs * steps_per_epoch * batch_size"))
  assert task.build_model().count_params() > 0


def test_compiled_task_model_traces_its_train_step_once():
  """Adam's slots are built by compile_model, not while the first step traces (a second trace)."""
  from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
  from d3tf import optimizers  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 2}, model={"size": "tiny"}))
  images = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
  depths = np.full((2, 32, 32, 1), 2.0, np.float32)
  traces = {}
  for prebuilt in (True, False):
    model = task.build_model()
    if prebuilt:
      task.compile_model(model)
      assert isinstance(model.optimizer, optimizers.FusedAdam) and model.optimizer.built
      # iteration, learning_rate and two slots per trainable variable.
      assert len(model.optimizer.variables) == 2 + 2 * len(model.trainable_variables)
    else:  # What compile_model saves: the slots made inside the first trace.
      model.compile(optimizer=task.build_optimizer(), loss=task.build_losses())
    traced = []
    train_step = model.train_step
    model.train_step = lambda data, step=train_step, log=traced: (log.append(1), step(data))[1]
    model.train_on_batch(images, depths)
    model.train_on_batch(images, depths)
    traces[prebuilt] = len(traced)
  assert traces == {True: 1, False: 2}


def test_cosine_schedule_decays_to_zero_over_the_run_and_is_saved_with_the_model(tmp_path):
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import task as task_lib  # pylint: disable=g-import-not-at-top
  task = task_lib.DepthTask(config_lib.ExperimentConfig().replace(
      data={"crop_size": 32, "batch_size": 2}, model={"size": "tiny"},
      training={"learning_rate": 1e-3, "epochs": 2, "steps_per_epoch": 5,
                "lr_schedule": "cosine"}))
  model = task.build_model()
  task.compile_model(model)
  optimizer = model.optimizer
  rates = {}
  for step in (0, 5, 10):
    optimizer.iterations.assign(step)
    rates[step] = float(optimizer.learning_rate)
  assert rates[0] == pytest.approx(1e-3) and rates[5] == pytest.approx(5e-4)
  assert rates[10] == pytest.approx(0.0, abs=1e-9)
  optimizer.iterations.assign(5)
  model.save(tmp_path / "m.keras")
  loaded = keras.saving.load_model(tmp_path / "m.keras", compile=True)
  assert float(loaded.optimizer.learning_rate) == pytest.approx(5e-4)
  constant = task_lib.DepthTask(task.config.replace(training={"lr_schedule": "constant"}))
  assert float(constant.build_optimizer().learning_rate) == pytest.approx(1e-3)


def test_train_evaluate_and_export_in_process(tmp_path):
  """The whole loop through the libraries: no subprocess, no flags."""
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import train_lib  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf.experiment import export_lib  # pylint: disable=g-import-not-at-top
  config = presets.get_preset("quickstart_procedural").replace(
      data={"crop_size": 32, "batch_size": 2}, model={"size": "tiny", "dropout_rate": 0.0},
      training={"epochs": 2, "steps_per_epoch": 2, "validation_steps": 1,
                "tensorboard_images": 1, "save_every_steps": 1, "log_every_steps": 1,
                "keep_epoch_models": True},
      runtime={"progress": "none"})
  model_dir = tmp_path / "run"
  summary = train_lib.run_training(config, str(model_dir))
  assert summary["steps"] == 4 == summary["planned_steps"] and summary["monitor"] == "val_rel"
  for name in ("model.keras", "best.keras", "config.json", "d3tf_metadata.json",
               "metrics.csv", "backup/state.json"):
    assert (model_dir / name).is_file(), name
  assert train_lib.load_config(str(model_dir)) == config.resolved()
  assert sorted(p.name for p in (model_dir / "epochs").iterdir()) == [
      "config.json", "d3tf_metadata.json", "epoch_001.keras", "epoch_002.keras"]
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  last, _ = inference.load_model(str(model_dir / "epochs" / "epoch_002.keras"))
  final, _ = inference.load_model(str(model_dir / "model.keras"))
  for a, b in zip(last.get_weights(), final.get_weights()):
    np.testing.assert_array_equal(a, b)
  from d3tf.experiment import average_lib  # pylint: disable=g-import-not-at-top
  average_lib.run_average([str(model_dir / "epochs" / f"epoch_00{n}.keras") for n in (1, 2)],
                          str(tmp_path / "average"))
  assert artifacts.read_metadata(str(tmp_path / "average")).camera.focus_distance_m == 2.0
  meta = json.loads((model_dir / "d3tf_metadata.json").read_text())
  assert meta["input"] == "defocus" and meta["camera"]["focus_distance_m"] == 2.0
  assert meta["crop_size"] == 32 and meta["loss"] == "l1"
  # A second call finds the run complete.
  again = train_lib.run_training(config, str(model_dir))
  assert again["resumed_from"] == 4 and again["steps"] == 4 and again["history"] == []

  report = eval_lib.run_evaluation(eval_lib.EvalConfig(
      model=str(model_dir), num_examples=2, height=32, width=32, batch_size=2,
      output_json=str(tmp_path / "eval.json")))
  assert report["num_images"] == 2 and report["camera_source"] == "model metadata"
  assert report["rendered_defocus"] and np.isfinite(report["metrics"]["rel"])
  assert json.loads((tmp_path / "eval.json").read_text())["metrics"] == report["metrics"]

  path = export_lib.run_export(str(model_dir), "tiny", export_dir=str(tmp_path / "exports"),
                               samples=1)
  _, export_meta = artifacts.read_export(path)
  assert export_meta.camera.to_dict() == meta["camera"]
  assert pathlib.Path(path).name == "1"


# ------------------------------------------------------------ the layout
_CLIS = ("train.py", "evaluate.py", "predict.py", "export.py", "render.py", "preview.py",
         "data/write_procedural.py", "data/check.py", "tune.py", "average.py")


def test_the_clis_are_thin():
  """Each command line is flags -> config -> one library call (test_structure.py holds that
  no library module reads flags)."""
  for relative in _CLIS:
    path = _REPO / "d3tf" / relative
    if path.exists() and relative != "data/write_procedural.py":
      assert len(path.read_text().splitlines()) <= 150, relative
