"""Hyperparameter search as a library: ``run_search(config, space, tune_config, model_dir)``.

Built on keras-tuner and on :class:`~d3tf.experiment.task.DepthTask`; reads
no flags (``python -m d3tf.tune`` is the command line). A trial's
hyperparameters are named by the dotted config fields they set
(``training.learning_rate``, ``model.input_features``, ...), so a trial is
``config.with_hyperparameters(hp)`` and the best trial's config is a plain
:class:`ExperimentConfig` that :func:`d3tf.experiment.train_lib.run_training`
trains to the full budget.

What ``model_dir`` receives:

* ``config.json`` (the resolved base config), ``search.json`` (the search
  space and the tuner settings, the camera): a rerun with other values is
  refused rather than mixed into the same search;
* ``trials/``: keras-tuner's project (``oracle.json``, ``trial_*/``);
  rerunning continues it: finished trials are kept, a trial that was
  running when the process died is run again from its start;
* ``trial_starts.jsonl``: one line per trial (re)start;
* ``tensorboard/<trial>/execution<k>/``: the trial's curves and
  keras-tuner's HParams view (``tensorboard --logdir MODEL_DIR/tensorboard``);
* ``summary.md`` / ``summary.json``: the finished trials ranked by the
  objective; ``best_config.json``: the best trial's config.

The validation data are those of the base config for every trial (so a
trial that renders its training data with another PSF ``rho`` is scored on
the same, base-camera validation set).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import time
from typing import Any

from absl import logging

from d3tf.experiment import config as config_lib
from d3tf.experiment import task as task_lib

TUNERS = ("random", "hyperband", "bayesian")
OBJECTIVES = ("val_rel", "val_rms")
TRIALS_DIRNAME = "trials"
TENSORBOARD_DIRNAME = "tensorboard"
SEARCH_FILENAME = "search.json"
STARTS_FILENAME = "trial_starts.jsonl"
SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"
BEST_CONFIG_FILENAME = "best_config.json"

# Search-space field -> (config path, kind): "log" / "linear" ranges (one
# value: fixed, two: [low, high]) or "choice" (any number of values).
_SPACE = {
    "learning_rate": ("training.learning_rate", "log"),
    "loss": ("training.loss", "choice"),
    "decoder_width": ("model.decoder_width", "choice"),
    "dropout_rate": ("model.dropout_rate", "linear"),
    "input_features": ("model.input_features", "choice"),
    "kl_weight": ("training.kl_weight", "log"),
    "variational_blocks": ("model.variational_blocks", "choice"),
    "rho": ("render.rho", "linear"),
}


def _error(name: str, value, message: str) -> config_lib.ConfigError:
  return config_lib.ConfigError(f"search.{name}", value, f"search.{name}={_show(value)}: "
                                f"{message}")


def _show(value) -> str:
  return ",".join(str(v) for v in value) if isinstance(value, (tuple, list)) else str(value)


@dataclasses.dataclass
class SearchSpace:
  """What a search varies; an empty field keeps the base config's value.

  Ranges (``learning_rate`` and ``kl_weight`` on a log scale,
  ``dropout_rate`` and ``rho`` linear) take one value (fixed) or two (low,
  high); choices (``loss``, ``decoder_width``, ``input_features``,
  ``variational_blocks`` as ``"5+4"`` / ``"5"`` / ``"none"``) any number.
  """

  learning_rate: tuple[float, ...] = ()
  loss: tuple[str, ...] = ()
  decoder_width: tuple[float, ...] = ()
  dropout_rate: tuple[float, ...] = ()
  input_features: tuple[str, ...] = ()
  kl_weight: tuple[float, ...] = ()
  variational_blocks: tuple[str, ...] = ()
  rho: tuple[float, ...] = ()

  def to_dict(self) -> dict[str, list]:
    return {f.name: list(getattr(self, f.name)) for f in dataclasses.fields(self)}

  def tuned(self) -> dict[str, tuple]:
    """The fields given, by name."""
    return {n: tuple(getattr(self, n)) for n in _SPACE if getattr(self, n)}

  def validate(self, config: config_lib.ExperimentConfig) -> "SearchSpace":
    """Checks the space against the (base) config; returns self.

    Raises:
      ConfigError: naming ``search.<field>`` and echoing the value: an empty
        or inverted range, a value the config refuses (an unknown loss, a
        negative learning rate), a KL weight without variational layers, a
        rho without rendered defocus.
    """
    config = config.resolved()
    for name, values in self.tuned().items():
      path, kind = _SPACE[name]
      if kind != "choice":
        if len(values) > 2:
          raise _error(name, values, "give one value (fixed) or two (low,high: a range)")
        if len(values) == 2 and not values[0] < values[1]:
          raise _error(name, values, f"an empty or inverted range: low {values[0]} must be "
                       f"below high {values[1]}")
        if kind == "log" and values[0] <= 0:
          raise _error(name, values, "a log range needs positive values")
      elif len(set(values)) != len(values):
        raise _error(name, values, "lists a value twice")
      for value in values:
        try:
          config.with_hyperparameters({path: value})
        except (config_lib.ConfigError, ValueError) as e:
          raise _error(name, values, f"{value!r} is refused ({e})") from None
    if self.kl_weight and not config.model.variational_blocks and not any(
        b != "none" for b in self.variational_blocks):
      raise _error("kl_weight", self.kl_weight, "applies to Bayesian models: give "
                   "model.variational_blocks or search.variational_blocks")
    if self.rho and (task_lib.DepthTask(config).render_camera is None or
                     config.render.psf != "gaussian"):
      raise _error("rho", self.rho, "applies to defocus rendered with the gaussian PSF (here "
                   f"render.input={config.render.input}, render.psf={config.render.psf}, "
                   f"data.dataset={config.data.dataset})")
    return self

  def register(self, hp) -> None:
    """Declares the space's hyperparameters on a ``keras_tuner.HyperParameters``."""
    for name, values in self.tuned().items():
      path, kind = _SPACE[name]
      if len(values) == 1:
        hp.Fixed(path, values[0])
      elif kind == "choice":
        hp.Choice(path, list(values))
      else:
        hp.Float(path, float(values[0]), float(values[1]),
                 sampling="log" if kind == "log" else "linear")


@dataclasses.dataclass
class TuneConfig:
  """How to search.

  Attributes:
    tuner: "random", "hyperband" or "bayesian".
    max_trials: Trials of random search and Bayesian optimisation (Hyperband
      runs one iteration of brackets up to ``training.epochs``).
    executions_per_trial: Models trained per trial (the objective averages).
    objective: "val_rel" or "val_rms", minimised (the best epoch counts).
    hyperband_factor: Hyperband's reduction factor.
    hyperband_iterations: Hyperband's iterations.
    seed: The tuner's seed.
  """

  tuner: str = "random"
  max_trials: int = 10
  executions_per_trial: int = 1
  objective: str = "val_rel"
  hyperband_factor: int = 3
  hyperband_iterations: int = 1
  seed: int = 0

  def validate(self, config: config_lib.ExperimentConfig) -> "TuneConfig":
    """Checks the settings; a search needs validation data (ConfigError naming the field)."""
    checks = [("tuner", self.tuner in TUNERS, f"one of {', '.join(TUNERS)}"),
              ("objective", self.objective in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
              ("max_trials", _int_at_least(self.max_trials, 1), "an integer >= 1"),
              ("executions_per_trial", _int_at_least(self.executions_per_trial, 1),
               "an integer >= 1"),
              ("hyperband_factor", _int_at_least(self.hyperband_factor, 2), "an integer >= 2"),
              ("hyperband_iterations", _int_at_least(self.hyperband_iterations, 1),
               "an integer >= 1")]
    for name, ok, expected in checks:
      if not ok:
        value = getattr(self, name)
        raise config_lib.ConfigError(f"tune.{name}", value,
                                     f"tune.{name} must be {expected}, got {value!r}")
    if self.tuner == "bayesian" and importlib.util.find_spec("sklearn") is None:
      raise config_lib.ConfigError(
          "tune.tuner", self.tuner, "tune.tuner=bayesian needs scikit-learn (keras-tuner's "
          "Gaussian process; pip install keras-tuner[bayesian]), which is not installed")
    if not config.training.validation_steps:
      raise config_lib.ConfigError("training.validation_steps", 0, "training.validation_steps"
                                   f"=0: the objective {self.objective} needs validation data")
    return self


def _int_at_least(value, low: int) -> bool:
  return isinstance(value, int) and not isinstance(value, bool) and value >= low


# ------------------------------------------------------------------ keras-tuner
def _hypermodel(base: config_lib.ExperimentConfig, space: SearchSpace, val, verbose: int):
  """The keras-tuner HyperModel: hp -> config -> DepthTask model; fit on the task's data."""
  import keras  # pylint: disable=g-import-not-at-top
  import keras_tuner  # pylint: disable=g-import-not-at-top
  from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
  from d3tf.training import callbacks as callbacks_lib  # pylint: disable=g-import-not-at-top

  class DepthHyperModel(keras_tuner.HyperModel):
    """Builds and trains one trial's D3-Net."""

    def trial_config(self, hp) -> config_lib.ExperimentConfig:
      space.register(hp)
      return base.with_hyperparameters(hp)

    def build(self, hp):
      task = task_lib.DepthTask(self.trial_config(hp))
      keras.utils.set_random_seed(task.config.training.seed)
      model = task.build_model(hp)
      task.compile_model(model)
      return model

    def fit(self, hp, model, *args, epochs=None, initial_epoch=0, callbacks=(), **kwargs):
      del args, kwargs
      task = task_lib.DepthTask(self.trial_config(hp))
      training = task.config.training
      steps = task.steps_per_epoch
      callbacks = list(callbacks) + [keras.callbacks.TerminateOnNaN()]
      if task.config.model.variational_blocks:
        callbacks.append(callbacks_lib.KLAnnealing(training.kl_anneal_steps,
                                                   training.kl_weight))
      train = task.build_inputs("train", start_step=initial_epoch * steps)
      return stream_errors.call(
          model.fit, train, validation_data=val, epochs=epochs or training.epochs,
          initial_epoch=initial_epoch, steps_per_epoch=steps, callbacks=callbacks,
          verbose=verbose, shuffle=False)

  return DepthHyperModel()


def _tuner(hypermodel, tune: TuneConfig, epochs: int, model_dir: str):
  """A keras-tuner Tuner over ``model_dir/trials`` (reloaded if it exists)."""
  import keras_tuner  # pylint: disable=g-import-not-at-top
  classes = {"random": keras_tuner.RandomSearch, "hyperband": keras_tuner.Hyperband,
             "bayesian": keras_tuner.BayesianOptimization}
  starts = os.path.join(model_dir, STARTS_FILENAME)

  class Tuner(classes[tune.tuner]):  # pylint: disable=missing-class-docstring
    def on_trial_begin(self, trial):
      super().on_trial_begin(trial)
      from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
      atomic_io.append_text(starts, json.dumps(
          {"trial_id": trial.trial_id, "time": time.time(), "pid": os.getpid(),
           "hyperparameters": trial.hyperparameters.values}) + "\n")
      logging.info("Trial %s: %s", trial.trial_id, trial.hyperparameters.values)

  kwargs = dict(objective=keras_tuner.Objective(tune.objective, direction="min"),
                seed=tune.seed, executions_per_trial=tune.executions_per_trial,
                directory=model_dir, project_name=TRIALS_DIRNAME, overwrite=False)
  if tune.tuner == "hyperband":
    kwargs.update(max_epochs=epochs, factor=tune.hyperband_factor,
                  hyperband_iterations=tune.hyperband_iterations)
  else:
    kwargs["max_trials"] = tune.max_trials
  tuner = Tuner(hypermodel, **kwargs)
  _requeue_interrupted(tuner.oracle)
  return tuner


def _requeue_interrupted(oracle) -> None:
  """Reruns the trials a killed process left RUNNING; never a finished one.

  keras-tuner (1.4) queues the trials that ``oracle.json`` lists as ongoing
  for a retry. A kill between a trial's ``trial.json`` (COMPLETED) and the
  next ``oracle.json`` would redo that finished trial, and one between a new
  trial's ``trial.json`` and ``oracle.json`` would leave it RUNNING forever:
  both are set right here.
  """
  queue = [t for t in oracle._retry_queue  # pylint: disable=protected-access
           if oracle.trials[t].status == "RUNNING"]
  ongoing = {t.trial_id for t in oracle.ongoing_trials.values()}
  for trial_id, trial in sorted(oracle.trials.items()):
    if trial.status == "RUNNING" and trial_id not in queue and trial_id not in ongoing:
      queue.append(trial_id)
  if queue:
    logging.info("Rerunning the trial(s) interrupted by the last run: %s", sorted(queue))
  oracle._retry_queue = queue  # pylint: disable=protected-access


# ------------------------------------------------------------------ search
def _search_record(config, space, tune, task) -> dict[str, Any]:
  camera = task.camera
  return {"config": config.to_dict(), "search_space": space.to_dict(),
          "tune": dataclasses.asdict(tune),
          "camera": camera.to_dict() if camera is not None else None}


def _check_same_search(model_dir: str, record: dict[str, Any]) -> None:
  path = os.path.join(model_dir, SEARCH_FILENAME)
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = json.load(f)
  free = {"tune": ("max_trials", "executions_per_trial"), "config": ("runtime",)}
  changed = [f"{part}.{key}" for part in ("config", "search_space", "tune")
             for key in sorted(set(old.get(part, {})) | set(record[part]))
             if key not in free.get(part, ())
             if old.get(part, {}).get(key) != record[part].get(key)]
  if changed:
    raise ValueError(f"{model_dir} holds a search with other settings ({', '.join(changed)} "
                     f"differ from {path}): give another model_dir, or the same settings to "
                     "continue it")


def check(config: config_lib.ExperimentConfig, space: SearchSpace,
          tune: TuneConfig) -> config_lib.ExperimentConfig:
  """Validates everything before the first trial; returns the resolved config.

  Raises:
    config_lib.ConfigError: naming the field (``search.<name>``,
      ``tune.<name>`` or a config path) and echoing the value.
  """
  config = task_lib.DepthTask(config).config
  tune.validate(config)
  space.validate(config)
  return config


def run_search(config: config_lib.ExperimentConfig, space: SearchSpace, tune: TuneConfig,
               model_dir: str, verbose: int = 0) -> dict[str, Any]:
  """Runs (or continues) a search into ``model_dir`` and writes its summary.

  Returns:
    :func:`summarize`'s dict, plus ``best_config`` (an
    :class:`ExperimentConfig`, None without a finished trial).

  Raises:
    config_lib.ConfigError: a bad config, space or tuner setting (before any
      trial).
    ValueError: ``model_dir`` holds a search with other settings.
  """
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  from d3tf.artifacts import model_dir as model_dir_lib  # pylint: disable=g-import-not-at-top
  config = check(config, space, tune)
  task = task_lib.DepthTask(config)
  record = _search_record(config, space, tune, task)
  _check_same_search(model_dir, record)
  val = task.build_inputs("validation")
  if val is None:
    raise config_lib.ConfigError("data.val_data_path", None, f"data.dataset="
                                 f"{config.data.dataset} has no validation data here: the "
                                 f"objective {tune.objective} needs it")
  os.makedirs(model_dir, exist_ok=True)
  atomic_io.write_json(os.path.join(model_dir, SEARCH_FILENAME), record, indent=2)
  atomic_io.write_json(os.path.join(model_dir, model_dir_lib.CONFIG_FILENAME),
                       config.to_dict(), indent=2)
  logging.info("Search (%s, objective %s, minimised) over %s into %s", tune.tuner,
               tune.objective, space.tuned() or "nothing (the base config only)",
               os.path.abspath(model_dir))
  tuner = _tuner(_hypermodel(config, space, val, verbose), tune, config.training.epochs,
                 model_dir)
  board = keras.callbacks.TensorBoard(os.path.join(model_dir, TENSORBOARD_DIRNAME),
                                      write_graph=False, update_freq="epoch")
  tuner.search(epochs=config.training.epochs, callbacks=[board], verbose=verbose)
  summary = summarize(tuner.oracle, config, tune, model_dir)
  best = summary["best"]
  summary["best_config"] = (config.with_hyperparameters(best["hyperparameters"])
                            if best else None)
  if best:
    atomic_io.write_json(os.path.join(model_dir, BEST_CONFIG_FILENAME),
                         summary["best_config"].to_dict(), indent=2)
  return summary


# ------------------------------------------------------------------ summary
def summarize(oracle, config: config_lib.ExperimentConfig, tune: TuneConfig,
              model_dir: str, rows: int | None = None) -> dict[str, Any]:
  """Ranks the finished trials; writes ``summary.json`` and ``summary.md`` and logs the table."""
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  trials = []
  for trial in oracle.trials.values():
    score = trial.score
    ok = trial.status == "COMPLETED" and score is not None and math.isfinite(score)
    values = dict(trial.hyperparameters.values)
    trials.append({"trial_id": trial.trial_id, "status": trial.status,
                   tune.objective: float(score) if ok else None,
                   "best_epoch": (trial.best_step + 1) if ok and trial.best_step is not None
                   else None,
                   "epochs": values.get("tuner/epochs", config.training.epochs),
                   "hyperparameters": {k: v for k, v in values.items() if "." in k}})
  trials.sort(key=lambda t: (t[tune.objective] is None, t[tune.objective] or 0, t["trial_id"]))
  finished = [t for t in trials if t[tune.objective] is not None]
  summary = {"objective": tune.objective, "direction": "min", "tuner": tune.tuner,
             "trials_finished": len(finished), "trials": trials,
             "best": finished[0] if finished else None}
  atomic_io.write_json(os.path.join(model_dir, SUMMARY_JSON), summary, indent=2)
  table = markdown_table(finished[:rows] if rows else finished, tune.objective)
  text = (f"# Search: {tune.tuner}, objective {tune.objective} (minimised)\n\n"
          f"{len(finished)} finished trial(s) of {len(trials)}; base config in config.json, "
          "the best trial's in best_config.json.\n\n" + table)
  atomic_io.write_text(os.path.join(model_dir, SUMMARY_MD), text)
  logging.info("Best trials (%s):\n%s", tune.objective, table)
  return summary


def markdown_table(trials: list[dict[str, Any]], objective: str) -> str:
  """A Markdown table of trials (rank, id, objective, epochs, hyperparameters)."""
  names = sorted({k for t in trials for k in t["hyperparameters"]})
  head = ["rank", "trial", objective, "best epoch / epochs", *names]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for rank, t in enumerate(trials, 1):
    cells = [str(rank), t["trial_id"], f"{t[objective]:.4f}",
             f"{t['best_epoch']} / {t['epochs']}",
             *(_cell(t["hyperparameters"].get(n)) for n in names)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.3g}"
  return "" if value is None else str(value)
