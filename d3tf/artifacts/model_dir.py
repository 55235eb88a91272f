"""The layout of a model_dir, the folder that ``python -m d3tf.train`` fills::

  model_dir/model.keras            the final model
  model_dir/best.keras             the best checkpoint (by validation error)
  model_dir/d3tf_metadata.json     what the model expects (:mod:`d3tf.artifacts.metadata`)
  model_dir/flags.txt              the resolved flags (a flagfile that resumes the run)
  model_dir/command_line.txt       the command lines that ran
  model_dir/backup/                the training state, for resuming
  model_dir/tensorboard/           TensorBoard events
  model_dir/metrics.csv            per-epoch metrics

A model may also be any ``.keras`` file with ``d3tf_metadata.json`` beside it.
"""

from __future__ import annotations

import os

from d3tf.artifacts.metadata import METADATA_FILENAME

FINAL_MODEL_FILENAME = "model.keras"
BEST_MODEL_FILENAME = "best.keras"
#: Folder of the per-epoch models (``--keep_epoch_models``).
EPOCH_MODELS_DIRNAME = "epochs"
FLAGS_FILENAME = "flags.txt"
#: The resolved ExperimentConfig of a run (or a search).
CONFIG_FILENAME = "config.json"
COMMAND_LINE_FILENAME = "command_line.txt"
METRICS_FILENAME = "metrics.csv"
BACKUP_DIRNAME = "backup"
TENSORBOARD_DIRNAME = "tensorboard"
#: ``checkpoint`` values of :func:`resolve_model_path`.
CHECKPOINTS = ("auto", "final", "best")
#: Help text of a ``--checkpoint`` flag.
CHECKPOINT_HELP = (f"Which model of a model_dir: 'final' ({FINAL_MODEL_FILENAME}), 'best' "
                   f"({BEST_MODEL_FILENAME}), or 'auto' ({FINAL_MODEL_FILENAME} if present, else "
                   f"{BEST_MODEL_FILENAME}).")

__all__ = ["BACKUP_DIRNAME", "BEST_MODEL_FILENAME", "CHECKPOINT_HELP", "CHECKPOINTS",
           "COMMAND_LINE_FILENAME", "CONFIG_FILENAME", "EPOCH_MODELS_DIRNAME", "FINAL_MODEL_FILENAME",
           "FLAGS_FILENAME",
           "METADATA_FILENAME", "METRICS_FILENAME", "resolve_model_path",
           "TENSORBOARD_DIRNAME"]


def resolve_model_path(path: str | os.PathLike, checkpoint: str = "auto") -> str:
  """The ``.keras`` file that ``path`` names.

  Args:
    path: A ``.keras`` file, or a model_dir holding ``model.keras`` and/or
      ``best.keras``.
    checkpoint: For a model_dir: ``"final"`` (``model.keras``), ``"best"``
      (``best.keras``) or ``"auto"`` (``model.keras`` if present, else
      ``best.keras``). Ignored for a file.

  Returns:
    The model file's path.

  Raises:
    FileNotFoundError: nothing to load at ``path`` (the message names it and
      what was looked for).
    ValueError: a bad ``checkpoint`` or a file that is not ``.keras``.
  """
  path = os.fspath(path)
  if checkpoint not in CHECKPOINTS:
    raise ValueError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
  if os.path.isdir(path):
    names = {"final": [FINAL_MODEL_FILENAME], "best": [BEST_MODEL_FILENAME],
             "auto": [FINAL_MODEL_FILENAME, BEST_MODEL_FILENAME]}[checkpoint]
    for name in names:
      candidate = os.path.join(path, name)
      if os.path.isfile(candidate):
        return candidate
    raise FileNotFoundError(f"{path}: model_dir holds no {' or '.join(names)} (found "
                            f"{sorted(os.listdir(path))[:20]})")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such model file or model_dir")
  if not path.endswith(".keras"):
    raise ValueError(f"{path}: expected a .keras file or a model_dir")
  return path
