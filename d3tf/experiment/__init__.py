"""The experiment layer: config tree, presets, Task, and the train / eval / predict libraries.

Libraries here read no flags; the command lines (``d3tf/train.py`` ...) turn
flags into these configs (:mod:`d3tf.flags`) and call one function:

* :mod:`d3tf.experiment.config`: :class:`ExperimentConfig` and its sections;
* :mod:`d3tf.experiment.presets`: named configs (one per ``pipelines/*.flags``);
* :mod:`d3tf.experiment.task`: :class:`DepthTask` (model, inputs, losses, metrics);
* :mod:`d3tf.experiment.train_lib`: ``run_training(config, model_dir)``;
* :mod:`d3tf.experiment.eval_lib`: ``run_evaluation(EvalConfig(...))``;
* :mod:`d3tf.experiment.predict_lib`: ``predict_files(...)``.
"""

from d3tf.experiment.config import CameraConfig
from d3tf.experiment.config import ConfigError
from d3tf.experiment.config import DataConfig
from d3tf.experiment.config import ExperimentConfig
from d3tf.experiment.config import ModelConfig
from d3tf.experiment.config import RenderConfig
from d3tf.experiment.config import RuntimeConfig
from d3tf.experiment.config import TrainingConfig
