r"""Trains D3-Net: ``python -m d3tf.train``.

With no flags it runs a short job on the procedural scenes (the small model,
128x128 crops, defocus rendered with the NYU camera focused at 2 m, 3 epochs
of 100 steps of 8 examples: a few minutes on a laptop CPU), and logs where
its outputs went. Every experiment of the paper has a flagfile in
``pipelines/``::

  python -m d3tf.train --flagfile=pipelines/quickstart_procedural.flags
  python -m d3tf.train --flagfile=pipelines/nyuv2_focus2m.flags --data_path=...

Training defaults follow the paper: Adam (learning rate 2e-4, beta1 0.5), L1
loss, 256x256 crops with horizontal flips (128x128 and the small model for the
procedural default). Invalid (zero) depth is masked out of every loss.

Outputs, in ``--model_dir``:

* ``flags.txt``: the resolved flags, usable as ``--flagfile`` (it names the
  same model_dir, so running it again resumes); ``command_line.txt``;
* ``d3tf_metadata.json`` (:class:`d3tf.artifacts.Metadata`): the camera whose
  defocus the model was trained on (null for all-in-focus input), render
  settings, model config and versions, read by predict, evaluate and export;
* ``model.keras`` (final) and ``best.keras`` (best validation ``rel``);
* ``backup/``: the training state, saved every ``--save_every_steps`` steps
  and at epoch ends. Interrupt the run at any moment (even ``kill -9``) and
  run the same command again: it resumes from the last saved step, with the
  data stream continuing at the next unseen example, so no example is
  skipped or repeated and the run ends after exactly the planned number of
  steps; only the steps after the last save are recomputed;
* ``tensorboard/``: scalars and validation images (input, ground truth,
  prediction, error), ``tensorboard --logdir MODEL_DIR/tensorboard``;
* ``metrics.csv``: per-epoch loss and validation metrics.

**Uncertainty** (off by default): ``--aleatoric=gaussian|laplace`` adds a
log-scale head trained with that negative log-likelihood (it replaces
``--loss``; Laplace is the likelihood behind the paper's L1);
``--variational_blocks=5,4`` makes the 3x3 convolutions of those decoder
blocks variational (``--variational_type`` flipout or reparameterization,
``--posterior_scale_init``, ``--prior_scale``), adding their KL divergence,
divided by the number of training examples N, times ``--kl_weight``, to the
loss, optionally warmed up linearly over ``--kl_anneal_steps``. N is the
training set's size; for the endless procedural stream (and TFRecord shards
of unknown size) it is the number of examples the run draws, ``epochs *
steps_per_epoch * batch_size`` (every procedural example is a new scene). The
loss terms are logged separately (``nll`` or ``data_loss``, ``kl``, and
``loss`` their sum) in the log, the progress bar, ``metrics.csv`` and
TensorBoard; the model config in ``d3tf_metadata.json`` records the options
(and ``num_train_examples``) for evaluate and predict.
"""

from __future__ import annotations

import datetime
import os
import sys

from absl import app
from absl import flags
from absl import logging

from d3tf.optics import psf as psf_lib
from d3tf.sizes import SIZE_MULTIPLE

DATASETS = ("procedural", "nyu_mat", "nyu_png", "nyu_densedepth", "dfd", "folder", "tfrecord")

_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Folder of this run's outputs (created). Rerunning with the same folder "
    "resumes an interrupted run. Default: runs/<date>_<time>.")
_DATASET = flags.DEFINE_enum(
    "dataset", "procedural", list(DATASETS),
    "Training data: 'procedural' (generated scenes, nothing to download), 'nyu_mat' "
    "(nyu_depth_v2_labeled.mat + splits.mat), 'nyu_png' (NNNNN_colors.png / NNNNN_depth.png "
    "+ --splits_path), 'nyu_densedepth' (NYU video frames in DenseDepth's <scene>_out/<n>.jpg "
    "+ <n>.png layout, split by scene with --val_scenes; mixed with procedural scenes by "
    "--mix_procedural), 'dfd' (the real DSLR dataset: its f/2.8 photos are already "
    "defocused, so nothing is rendered), 'folder' (rgb/ and depth/ sub-folders), "
    "'tfrecord' (shards written by d3tf.data.write_tfrecords).")
_DATA_PATH = flags.DEFINE_string(
    "data_path", None, "The dataset: the .mat file (nyu_mat), the folder (nyu_png, "
    "nyu_densedepth, dfd, folder) or a shard glob (tfrecord). Not used for procedural scenes.")
_VAL_SCENES = flags.DEFINE_list(
    "val_scenes", ["office_0011"], "nyu_densedepth: the scene(s) held out to validate and "
    "select best.keras (on every 1/N-th frame, whole frames); the other scenes train. Split "
    "by scene, never by frame: neighbouring frames are near-duplicates.")
_MIX_PROCEDURAL = flags.DEFINE_float(
    "mix_procedural", 0.0, "nyu_densedepth: share of procedural scenes (rendered at the "
    "frames' 480x640 and cropped alike) in the training stream: 0 = real frames only, 1 = "
    "procedural only, 0.5 = half and half. Each example's source is a seeded draw, so a "
    "resumed run continues the same stream exactly.", lower_bound=0.0, upper_bound=1.0)
_ON_ERROR = flags.DEFINE_enum(
    "on_error", "raise", ["raise", "skip"],
    "A bad example (unreadable file, depth without a valid pixel or of another size than its "
    "image, implausible depth): 'raise' stops the run with one line naming the file; 'skip' "
    "leaves it out, logs the count and the first few names, and lists them in "
    "MODEL_DIR/skipped_examples.json.")
_DEPTH_SCALE = flags.DEFINE_float(
    "depth_scale", 0.001, "folder: metres per unit of the depth PNGs (0.001: millimetres; 1: "
    "metres). .npy depth is in metres.")
_SPLITS_PATH = flags.DEFINE_string(
    "splits_path", None, "NYU's splits.mat (default: beside --data_path).")
_VAL_DATA_PATH = flags.DEFINE_string(
    "val_data_path", None, "Validation data for 'folder' and 'tfrecord' (same format as "
    "--data_path). Default: NYU and DFD validate on their 'test' split; procedural on its "
    "'validation' split; folder/tfrecord without it select the best model by training loss.")
_INPUT = flags.DEFINE_enum(
    "input", "defocus", ["defocus", "sharp"],
    "Network input: 'defocus' renders the camera's defocus blur on all-in-focus data (the "
    "paper's DFD models); 'sharp' keeps the all-in-focus images (the baseline).")
_CAMERA = flags.DEFINE_enum(
    "camera", "nyu", ["nyu", "dslr"],
    "Camera preset: 'nyu' (15 mm, f/2.8, 5.6 um, focus 2 m: the paper's NYU camera) or "
    "'dslr' (Nikon D200 35 mm, f/2.8, 36 um after x6 downsampling, focus 1.7 m).")
_FOCUS = flags.DEFINE_float("focus_distance_m", None, "Overrides the preset's focus distance, "
                            "metres (the paper: 2, 4 or 8 m on NYU).")
_F_NUMBER = flags.DEFINE_float("f_number", None, "Overrides the preset's f-number.")
_FOCAL = flags.DEFINE_float("focal_length_mm", None, "Overrides the preset's focal length, mm.")
_PITCH = flags.DEFINE_float("pixel_pitch_um", None, "Overrides the preset's pixel pitch, um.")
_PSF = flags.DEFINE_enum("psf", psf_lib.DEFAULT_PSF, list(psf_lib.names()),
                         "Point-spread function of the rendered defocus.")
_RENDER_MODE = flags.DEFINE_enum(
    "render_mode", "improved", ["improved", "paper"],
    "Defocus renderer: d3tf's improved compositing, or the paper's choices.")
_RENDER_BITS = flags.DEFINE_integer(
    "render_bits", 0, "Round the rendered defocused images to 2**bits levels (8: what a camera's "
    "JPEG or PNG, and the exported models' uint8 input, hold); 0 keeps them float. Saved with "
    "the model, so evaluate renders its test images alike.", lower_bound=0, upper_bound=16)
_MODEL_SIZE = flags.DEFINE_enum(
    "model_size", None, ["tiny", "small", "full"],
    "D3-Net size: 'full' (the paper's, DenseNet-121 encoder, 24 M parameters), 'small' (CPU "
    "experiments), 'tiny' (tests). Default: small for procedural scenes, else full.")
_INPUT_FEATURES = flags.DEFINE_enum(
    "input_features", "rgb", ["rgb", "rgb+bandpass", "rgb+reblur"],
    "What D3-Net's stem sees: 'rgb' (the paper), or 'rgb+bandpass': RGB plus three fixed, "
    "contrast-normalised band-pass sharpness maps computed inside the model (the ratio of "
    "frequency bands that defocus blur changes; a small network trained from scratch on a CPU "
    "budget does not learn it from RGB), or 'rgb+reblur': RGB plus three multi-scale re-blur "
    "ratios (gradient energy of the grey image re-blurred by Gaussians of 1, 2, 4 pixels: "
    "contrast-invariant estimates of the blur size). The model's input stays RGB.")
_BANDPASS_FLOOR = flags.DEFINE_float(
    "bandpass_floor", 1e-4,
    "With --input_features=rgb+bandpass: smallest band RMS of the sharpness maps, on the [0, 1] "
    "intensity scale. It must sit below the fine-band RMS of the textures (the procedural "
    "scenes': 0.002-0.006); 1e-3 hides them once blurred.", lower_bound=1e-9, upper_bound=0.5)
_DROPOUT = flags.DEFINE_float(
    "dropout_rate", None, "Overrides the rate of the MC dropout layers (the paper: 0.5; 0 "
    "disables them, and with them the model's uncertainty).")
_IMAGENET = flags.DEFINE_string(
    "imagenet_weights", None, "Local keras.applications DenseNet121 weight file for the "
    "encoder (full size only). Default: random initialisation.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", None, "Fine-tune: start from the weights of a trained model (a model_dir of "
    "this program, or a .keras file) of the same size, e.g. DFD pre-trained on NYUv2. Copied "
    "layer by layer by name: a deterministic model may start a Bayesian one (its decoder "
    "kernels become the posterior means; a new aleatoric head keeps its initialisation).")
_CROP = flags.DEFINE_integer(
    "crop_size", None, "Side of the square training crops, a multiple of 32. Default: 256 (the "
    "paper), 128 for procedural scenes.", lower_bound=32)
_BATCH = flags.DEFINE_integer("batch_size", 8, "Examples per step.", lower_bound=1)
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Epochs to train.", lower_bound=1)
_STEPS = flags.DEFINE_integer(
    "steps_per_epoch", None, "Steps per epoch. Default: 100 for procedural scenes (an endless "
    "stream), one pass over the training set otherwise.", lower_bound=1)
_VAL_STEPS = flags.DEFINE_integer(
    "validation_steps", 4, "Validation batches per epoch (a fixed set, the same every epoch; "
    "0: no validation).", lower_bound=0)
_LR = flags.DEFINE_float("learning_rate", 2e-4, "Adam learning rate (the paper: 2e-4).")
_BETA1 = flags.DEFINE_float("beta1", 0.5, "Adam beta1 (the paper: 0.5).")
_LOSS = flags.DEFINE_enum(
    "loss", "l1", ["l1", "berhu", "silog", "gradient"],
    "Training loss (invalid depth masked out): 'l1' (the paper), 'berhu' (reverse Huber), "
    "'silog' (scale-invariant, Eigen et al.), 'gradient' (L1 + multi-scale gradient "
    "matching).")
_ALEATORIC = flags.DEFINE_enum(
    "aleatoric", "none", ["none", "gaussian", "laplace"],
    "Aleatoric uncertainty: 'gaussian' or 'laplace' adds a head predicting a per-pixel "
    "log-scale, trained with that negative log-likelihood instead of --loss (leave --loss at "
    "its default; 'laplace' is the likelihood behind L1). 'none': depth only.")
_VARIATIONAL_BLOCKS = flags.DEFINE_list(
    "variational_blocks", [], "Decoder blocks (1-5, 5 the deepest) whose 3x3 convolution is "
    "variational (Bayesian weights, epistemic uncertainty), e.g. '5,4' (the two deepest, "
    "where the paper has its MC dropout). Empty: none.")
_VARIATIONAL_TYPE = flags.DEFINE_enum(
    "variational_type", "flipout", ["flipout", "reparameterization"],
    "Estimator of the variational layers: 'flipout' (per-example weight samples) or "
    "'reparameterization' (one weight sample per batch).")
_POSTERIOR_SCALE_INIT = flags.DEFINE_float(
    "posterior_scale_init", 1e-3, "Initial posterior standard deviation of every variational "
    "weight.")
_PRIOR_SCALE = flags.DEFINE_float(
    "prior_scale", 1.0, "Standard deviation of the N(0, s) prior of the variational weights.")
_KL_WEIGHT = flags.DEFINE_float(
    "kl_weight", 1.0, "Factor on the KL term (already divided by the number of training "
    "examples). 1: the ELBO with the loss averaged per example; the data loss is a per-pixel "
    "mean, so 1 / (crop_size^2) weighs the KL as the ELBO of the summed pixel likelihoods.")
_KL_ANNEAL = flags.DEFINE_integer(
    "kl_anneal_steps", 0, "Steps of a linear warm-up of the KL weight from 0 to --kl_weight "
    "(0: full weight from the start).", lower_bound=0)
_FLIPS = flags.DEFINE_boolean("flips", True, "Random horizontal flips (the paper).")
_AUGMENT = flags.DEFINE_enum(
    "augment", "flips", ["flips", "full"],
    "'flips': random crops and flips, as the paper; 'full': also zoom and colour gains "
    "(d3tf.data.AugmentOptions defaults).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights, the data order, augmentation "
                             "and procedural scenes.", lower_bound=0)
_SAVE_EVERY = flags.DEFINE_integer(
    "save_every_steps", 50, "Steps between saves of the training state (for resuming); it is "
    "also saved at every epoch end.", lower_bound=0)
_LOG_EVERY = flags.DEFINE_integer("log_every_steps", 50, "Steps between log lines and "
                                  "TensorBoard batch scalars.", lower_bound=0)
_NUM_IMAGES = flags.DEFINE_integer("tensorboard_images", 4, "Validation images drawn in "
                                   "TensorBoard at each epoch end (0: none).", lower_bound=0)
_VERBOSE = flags.DEFINE_enum("progress", "auto", ["auto", "bar", "line", "none"],
                             "Keras progress display: a bar (terminals), one line per epoch, "
                             "or none; 'auto' picks bar on a terminal.")

_MONITOR = "val_rel"


def _this_module_flags() -> list[flags.FlagHolder]:
  return [v for v in globals().values() if isinstance(v, flags.FlagHolder)]


def flags_as_flagfile() -> str:
  """The resolved value of every flag of this program, one ``--name=value`` per line."""
  lines = []
  for holder in _this_module_flags():
    flag = flags.FLAGS[holder.name]
    value = flag.serialize()
    lines.append(value if value else f"# --{holder.name} (unset: default)")
  return "\n".join(lines) + "\n"


def camera_from_flags():
  """The Camera of --camera with overrides, or None for all-in-focus input."""
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  if _DATASET.value == "dfd":
    camera = Camera.dslr_d200_35mm(f_number=2.8)
  elif _INPUT.value == "sharp":
    return None
  else:
    camera = Camera.nyu() if _CAMERA.value == "nyu" else Camera.dslr_d200_35mm()
  return camera.with_parameters(_FOCAL.value, _F_NUMBER.value, _PITCH.value, _FOCUS.value)


def _resolved(value, procedural_default, other_default):
  if value is not None:
    return value
  return procedural_default if _DATASET.value == "procedural" else other_default


def _check_flags() -> None:
  if _DATASET.value != "procedural" and not _DATA_PATH.value:
    raise app.UsageError(f"--dataset={_DATASET.value} needs --data_path")
  if _MIX_PROCEDURAL.value and _DATASET.value != "nyu_densedepth":
    raise app.UsageError(f"--mix_procedural applies to --dataset=nyu_densedepth, not "
                         f"--dataset={_DATASET.value}")
  if _DATASET.value == "dfd" and _INPUT.value == "sharp":
    raise app.UsageError("--dataset=dfd trains on the real f/2.8 (defocused) photos; "
                         "--input=sharp does not apply to it")
  crop = _CROP.value
  if crop is not None and crop % SIZE_MULTIPLE:
    raise app.UsageError(f"--crop_size must be a multiple of {SIZE_MULTIPLE}, got {crop}")
  if not _LR.value > 0:
    raise app.UsageError(f"--learning_rate must be positive, got {_LR.value}")
  if not 0 <= _BETA1.value < 1:
    raise app.UsageError(f"--beta1 must be in [0, 1), got {_BETA1.value}")
  variational_blocks()  # Raises a UsageError for bad values.
  if _ALEATORIC.value != "none" and _LOSS.value != flags.FLAGS["loss"].default:
    raise app.UsageError(f"--loss={_LOSS.value} does not apply with --aleatoric="
                         f"{_ALEATORIC.value}: the model is trained with the "
                         f"{_ALEATORIC.value} negative log-likelihood")
  for flag in (_POSTERIOR_SCALE_INIT, _PRIOR_SCALE):
    if not flag.value > 0:
      raise app.UsageError(f"--{flag.name} must be positive, got {flag.value}")
  if not _KL_WEIGHT.value >= 0:
    raise app.UsageError(f"--kl_weight must be >= 0, got {_KL_WEIGHT.value}")


def variational_blocks() -> tuple[int, ...]:
  """The decoder blocks of --variational_blocks, deepest first."""
  blocks = []
  for item in _VARIATIONAL_BLOCKS.value:
    try:
      block = int(item)
    except ValueError:
      block = 0
    if not 1 <= block <= 5 or block in blocks:
      raise app.UsageError("--variational_blocks must list distinct decoder blocks in 1-5 (5 "
                           f"the deepest), got {','.join(_VARIATIONAL_BLOCKS.value)!r}")
    blocks.append(block)
  return tuple(sorted(blocks, reverse=True))


def _reader(path: str, split: str):
  """A d3tf.data reader of --dataset for ``split`` ("train" or "test")."""
  reader = _make_reader(path, split)
  _READERS.append(reader)  # For the report of skipped examples.
  return reader


_READERS = []


def _make_reader(path: str, split: str):
  from d3tf import data  # pylint: disable=g-import-not-at-top
  from d3tf.data.readers import folder  # pylint: disable=g-import-not-at-top
  name = _DATASET.value
  on_error = _ON_ERROR.value
  if name == "nyu_mat":
    return data.NyuMatReader(path, split=split, splits_path=_SPLITS_PATH.value,
                             on_error=on_error)
  if name == "nyu_png":
    splits = _SPLITS_PATH.value or os.path.join(path, "splits.mat")
    return data.NyuPngReader(path, split=split, splits_path=splits, on_error=on_error)
  if name == "nyu_densedepth":
    return data.NyuDenseDepthReader(path, split="train" if split == "train" else "validation",
                                    val_scenes=_VAL_SCENES.value, on_error=on_error)
  if name == "dfd":
    return data.DfdReader(path, aperture="N2_8", split=split, on_error=on_error)
  if name == "folder":
    return folder.folder_reader_for(path, _DEPTH_SCALE.value, on_error=on_error)
  if name == "tfrecord":
    return data.TFRecordReader(path, on_error=on_error)
  raise ValueError(f"unknown dataset {name!r}")


def _source(path: str, split: str):
  """(tf.data source following the element contract, number of examples or None)."""
  reader = _reader(path, split)
  if _DATASET.value == "tfrecord":
    return reader.as_dataset(), None
  num = len(reader)
  if not num:
    raise ValueError(f"{path}: no {split!r} examples for --dataset={_DATASET.value}")
  return reader.as_dataset(), num


def _datasets(camera, crop: int, steps_per_epoch: int | None):
  """Training dataset factory, validation dataset (or None), steps per epoch, training-set size.

  The size is None where it is unknown (procedural scenes, TFRecord shards).
  """
  from d3tf.data import AugmentOptions  # pylint: disable=g-import-not-at-top
  from d3tf.data import make_dataset  # pylint: disable=g-import-not-at-top
  batch = _BATCH.value
  render_camera = None if _DATASET.value == "dfd" else camera
  common = dict(batch_size=batch, crop_size=(crop, crop), camera=render_camera, psf=_PSF.value,
                render_options=_render_options(), seed=_SEED.value,
                deterministic=True)
  if _AUGMENT.value == "full":
    augment = AugmentOptions(flip=_FLIPS.value)
  else:
    augment = AugmentOptions(scale_range=(1.0, 1.0), flip=_FLIPS.value,
                             channel_gain_range=(1.0, 1.0), brightness_range=(1.0, 1.0))

  if _DATASET.value == "procedural":
    train_source, num_train = "procedural", None
  elif _DATASET.value == "nyu_densedepth":
    from d3tf.data import mixing  # pylint: disable=g-import-not-at-top
    reader = _reader(_DATA_PATH.value, "train")
    num_train = len(reader)
    train_source = mixing.mixed_stream(
        mixing.reader_stream(reader, seed=_SEED.value), _MIX_PROCEDURAL.value, seed=_SEED.value)
    logging.info("Training stream: %d frames of scenes %s from %s, %g procedural scenes",
                 num_train, ",".join(reader.scenes), _DATA_PATH.value, _MIX_PROCEDURAL.value)
  else:
    train_source, num_train = _source(_DATA_PATH.value, "train")
    logging.info("Training set: %s examples from %s", num_train or "?", _DATA_PATH.value)
  if steps_per_epoch is None:
    if num_train is None:
      if _DATASET.value != "procedural":
        raise app.UsageError(f"--dataset={_DATASET.value} has no known size: give "
                             "--steps_per_epoch")
      steps_per_epoch = 100
    else:
      steps_per_epoch = max(1, num_train // batch)

  def train_dataset(step: int):
    return make_dataset(train_source, augment=augment, start_index=step * batch, **common)

  val = None
  val_batches = _VAL_STEPS.value
  common_val = common
  if val_batches:
    val_path = None
    if _DATASET.value == "procedural":
      val_source = "procedural"
    elif _VAL_DATA_PATH.value:
      val_path = _VAL_DATA_PATH.value
      val_source = _reader(val_path, "test").as_dataset()
    elif _DATASET.value == "nyu_densedepth":
      from d3tf import data  # pylint: disable=g-import-not-at-top
      val_path = _DATA_PATH.value
      num_val = len(_reader(val_path, "validation"))
      # Whole frames, spread evenly over the held-out scene(s) (neighbours are near-duplicates).
      val_reader = data.NyuDenseDepthReader(
          val_path, split="validation", val_scenes=_VAL_SCENES.value,
          frame_stride=max(1, num_val // (val_batches * batch)))
      val_source = val_reader.as_dataset()
      common_val = dict(common, crop_size=None)
    elif _DATASET.value in ("nyu_mat", "nyu_png", "dfd"):
      val_path = _DATA_PATH.value
      try:
        val_source, _ = _source(val_path, "test")
      except (ValueError, OSError) as e:
        logging.warning("No validation data (%s): the best model is chosen by training loss", e)
        val_source = None
    else:
      logging.warning("--dataset=%s without --val_data_path: no validation; the best model is "
                      "chosen by training loss", _DATASET.value)
      val_source = None
    if val_source is not None:
      kwargs = dict(common_val, repeat=False, augment=False, drop_remainder=False)
      if val_source == "procedural":
        kwargs.update(split="validation",
                      procedural_options={"num_scenes": val_batches * batch})
      val = make_dataset(val_source, **kwargs).take(val_batches).cache()
      logging.info("Validation: %d batches of %d from %s (fixed, %s)", val_batches, batch,
                   val_path or "the procedural 'validation' split",
                   "whole frames" if kwargs["crop_size"] is None else "centre crops")
  return train_dataset, val, steps_per_epoch, num_train


def _write_run_files(model_dir: str, camera, model_config, crop: int, resuming: bool,
                     extra: dict | None = None) -> None:
  """flags.txt, command_line.txt and d3tf_metadata.json."""
  flagfile = flags_as_flagfile()
  flags_path = os.path.join(model_dir, "flags.txt")
  if resuming and os.path.exists(flags_path):
    with open(flags_path) as f:
      old = set(f.read().splitlines())
    changed = sorted(set(flagfile.splitlines()) ^ old)
    if changed:
      logging.warning("Resuming with flags that differ from %s: %s", flags_path, changed)
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  atomic_io.write_text(flags_path, flagfile)
  atomic_io.append_text(os.path.join(model_dir, "command_line.txt"),
                        " ".join([sys.executable] + sys.argv) + "\n")
  train_data = _DATASET.value if _DATASET.value == "procedural" else (
      f"{_DATASET.value}:{_DATA_PATH.value}")
  if _DATASET.value == "nyu_densedepth":
    extra = {"val_scenes": list(_VAL_SCENES.value), "mix_procedural": _MIX_PROCEDURAL.value,
             **(extra or {})}
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  artifacts.write_metadata(model_dir, artifacts.Metadata.for_training(
      camera=camera, psf=_PSF.value,
      render_options=(_render_options()
                      if camera is not None and _DATASET.value != "dfd" else None),
      model_config=model_config, input_kind="defocus" if camera is not None else "sharp",
      train_data=train_data, extra={"crop_size": crop, "loss": _loss_name(),
                                    "real_defocus": _DATASET.value == "dfd", **(extra or {})}))


def _loss_name() -> str:
  """The data loss: --loss, or the NLL of --aleatoric."""
  return _LOSS.value if _ALEATORIC.value == "none" else f"{_ALEATORIC.value}_nll"


def _render_options() -> dict:
  """The RenderOptions fields the flags set (saved in the model's metadata)."""
  options = {"mode": _RENDER_MODE.value}
  if _RENDER_BITS.value:
    options["output_bits"] = _RENDER_BITS.value
  return options


def _init_from(model, path: str) -> None:
  """Copies the weights of a trained model (model_dir or .keras) into ``model``, by layer name."""
  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  if os.path.isdir(path):
    for name in ("model.keras", "best.keras"):
      if os.path.exists(os.path.join(path, name)):
        path = os.path.join(path, name)
        break
    else:
      raise ValueError(f"--init_from={path}: neither model.keras nor best.keras in it")
  if not os.path.exists(path):
    raise ValueError(f"--init_from={path}: no such file")
  source = keras.models.load_model(path, compile=False)
  try:
    models.copy_weights_by_name(model, source)
  except ValueError as e:
    raise ValueError(f"--init_from={path}: its weights do not fit this model ({e})") from e
  logging.info("Initialised the weights from %s", path)


def _finite_or_none(value):
  return float(value) if value is not None and abs(float(value)) != float("inf") else None


def _progress_verbose() -> int:
  choice = _VERBOSE.value
  if choice == "auto":
    choice = "bar" if sys.stdout.isatty() else "line"
  return {"bar": 1, "line": 2, "none": 0}[choice]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  _check_flags()
  model_dir = _MODEL_DIR.value
  if model_dir is None:
    model_dir = os.path.join("runs", datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
    flags.FLAGS.model_dir = model_dir  # So flags.txt names it and resumes it.
  model_dir_abs = os.path.abspath(model_dir)
  logging.info("Outputs go to %s", model_dir_abs)

  import keras  # pylint: disable=g-import-not-at-top
  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.training import callbacks as callbacks_lib  # pylint: disable=g-import-not-at-top
  from d3tf.training import keras_metrics  # pylint: disable=g-import-not-at-top
  from d3tf import atomic_io  # pylint: disable=g-import-not-at-top
  from d3tf import model_files  # pylint: disable=g-import-not-at-top
  from d3tf.data import stream_errors  # pylint: disable=g-import-not-at-top
  from d3tf.training import best_checkpoint  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(_SEED.value)
  camera = camera_from_flags()
  if camera is not None:
    logging.info("Camera%s: %s", " of the real photos" if _DATASET.value == "dfd" else "",
                 camera.to_dict())
  else:
    logging.info("Input: all-in-focus images (no defocus)")
  crop = _resolved(_CROP.value, 128, 256)
  model_size = _resolved(_MODEL_SIZE.value, "small", "full")
  train_dataset, val, steps_per_epoch, num_train = _datasets(camera, crop, _STEPS.value)
  epochs = _EPOCHS.value
  total = epochs * steps_per_epoch
  overrides = {"input_features": _INPUT_FEATURES.value}
  if _INPUT_FEATURES.value == "rgb+bandpass":
    overrides["bandpass_floor"] = _BANDPASS_FLOOR.value
  if _DROPOUT.value is not None:
    overrides["dropout_rate"] = _DROPOUT.value
  blocks = variational_blocks()
  extra = {}
  if blocks:
    # The KL's N: the training set's size, or the examples this run draws from an endless stream.
    num_examples = num_train or total * _BATCH.value
    extra["num_train_examples_source"] = ("training set size" if num_train else
                                          "epochs * steps_per_epoch * batch_size")
    extra.update(kl_weight=_KL_WEIGHT.value, kl_anneal_steps=_KL_ANNEAL.value)
    overrides.update(variational_blocks=blocks, variational_type=_VARIATIONAL_TYPE.value,
                     num_train_examples=num_examples, prior_scale=_PRIOR_SCALE.value,
                     posterior_scale_init=_POSTERIOR_SCALE_INIT.value)
    logging.info("Variational (%s) 3x3 convolutions in decoder blocks %s; KL / %d examples (%s) "
                 "x %g%s", _VARIATIONAL_TYPE.value, list(blocks), num_examples,
                 extra["num_train_examples_source"], _KL_WEIGHT.value,
                 f", warmed up over {_KL_ANNEAL.value} steps" if _KL_ANNEAL.value else "")
  if _ALEATORIC.value != "none":
    overrides["aleatoric"] = _ALEATORIC.value
  config = getattr(models.D3NetConfig, model_size)(**overrides)
  backup_dir = os.path.join(model_dir, "backup")
  os.makedirs(model_dir, exist_ok=True)  # Only now: a refused run leaves nothing behind.
  state = callbacks_lib.load_state(backup_dir)
  _write_run_files(model_dir, camera, config, crop, resuming=state is not None, extra=extra)

  model = models.build_d3net(config, imagenet_weights=_IMAGENET.value)
  if _INIT_FROM.value and state is None:
    _init_from(model, _INIT_FROM.value)
  max_depth = config.max_depth_m
  loss = (losses.get_loss(_LOSS.value) if _ALEATORIC.value == "none" else
          losses.get_nll_loss(_ALEATORIC.value))
  model.compile(optimizer=keras.optimizers.Adam(learning_rate=_LR.value, beta_1=_BETA1.value),
                loss=loss,
                metrics=[keras_metrics.MaskedAbsRel(max_depth_m=max_depth),
                         keras_metrics.MaskedRMS(max_depth_m=max_depth)])
  logging.info("D3-Net '%s': %d parameters; loss %s; Adam lr %g beta1 %g; crops %dx%d, batch %d",
               model_size, model.count_params(), _loss_name(), _LR.value, _BETA1.value, crop,
               crop, _BATCH.value)
  start_step, best = 0, None
  if state is not None:
    start_step = callbacks_lib.restore(model, state)
    best = state["extra"].get("best")
    logging.info("Resuming from step %d (%s)", start_step, state["weights"])
  final_path = os.path.join(model_dir, "model.keras")
  if start_step >= total:
    logging.info("Already trained for %d steps (planned %d): nothing to do.", start_step, total)
    model_files.ensure_saved(model, final_path)  # Missing or unreadable after a kill: rewrite.
    logging.info("Outputs are in %s", model_dir_abs)
    return

  monitor = _MONITOR if val is not None else "loss"
  best_cb = best_checkpoint.BestCheckpoint(  # Atomic, unlike keras' ModelCheckpoint.
      os.path.join(model_dir, "best.keras"), monitor=monitor, mode="min",
      initial_value_threshold=best)
  image_batch = None
  if val is not None and _NUM_IMAGES.value:
    for inputs, depth in stream_errors.call(list, val.take(1)):
      image_batch = (inputs[:_NUM_IMAGES.value], depth[:_NUM_IMAGES.value].numpy())
  callbacks = [
      best_cb,
      callbacks_lib.ProgressLogger(total, _BATCH.value, _LOG_EVERY.value),
      callbacks_lib.TensorBoardLogger(os.path.join(model_dir, "tensorboard"), image_batch,
                                      _LOG_EVERY.value, max_depth_m=max_depth),
      keras.callbacks.CSVLogger(os.path.join(model_dir, "metrics.csv"), append=True),
      keras.callbacks.TerminateOnNaN(),
  ]
  if blocks:
    callbacks.append(callbacks_lib.KLAnnealing(_KL_ANNEAL.value, _KL_WEIGHT.value))
  callbacks += [
      # Last: a state saved at an epoch end includes the other callbacks' work on it.
      callbacks_lib.StepCheckpoint(
          backup_dir, _SAVE_EVERY.value, steps_per_epoch,
          extra_state=lambda: {"best": _finite_or_none(best_cb.best), "monitor": monitor}),
  ]
  logging.info("Training %d epochs of %d steps (%d examples each), from step %d of %d; "
               "validation on %s; the state is saved every %d steps to %s", epochs,
               steps_per_epoch, steps_per_epoch * _BATCH.value, start_step, total,
               "a fixed set" if val is not None else "nothing (best by training loss)",
               _SAVE_EVERY.value, backup_dir)
  epoch, done_in_epoch = divmod(start_step, steps_per_epoch)
  verbose = _progress_verbose()
  if done_in_epoch:  # Finish the interrupted epoch first, with its remaining steps.
    stream_errors.call(  # A bad example: a clean DataError, no hang (see stream_errors).
        model.fit, train_dataset(start_step), initial_epoch=epoch, epochs=epoch + 1,
              steps_per_epoch=steps_per_epoch - done_in_epoch, validation_data=val,
              callbacks=callbacks, verbose=verbose, shuffle=False)
    epoch += 1
  if epoch < epochs and not model.stop_training:
    stream_errors.call(
        model.fit, train_dataset(epoch * steps_per_epoch), initial_epoch=epoch, epochs=epochs,
              steps_per_epoch=steps_per_epoch, validation_data=val, callbacks=callbacks,
              verbose=verbose, shuffle=False)
  atomic_io.save_model(model, final_path)
  if _ON_ERROR.value == "skip":
    stream_errors.write_skip_report(_READERS, model_dir)
  logging.info("Done: %d steps. Final model %s; best (%s %s) %s; TensorBoard: tensorboard "
               "--logdir %s", int(model.optimizer.iterations.numpy()), final_path, monitor,
               best_cb.best, os.path.join(model_dir, "best.keras"),
               os.path.join(model_dir_abs, "tensorboard"))
  logging.info("Outputs are in %s", model_dir_abs)


if __name__ == "__main__":
  from d3tf import cli_errors  # pylint: disable=g-import-not-at-top
  cli_errors.run(main)
