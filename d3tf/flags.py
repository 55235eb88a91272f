"""The flag groups every d3tf command line shares, defined once, turned into configs here.

Each group is defined by one function (idempotent, so several CLIs may be
imported in one process) and read by one function; CLI modules call them and
hand the objects to a library::

  flags_lib.define_camera_flags()          # --camera, --focal_length_mm, ...
  ...
  camera_config = flags_lib.camera_config_from_flags()

One vocabulary:

* ``--camera``: ``nyu`` | ``dslr`` (presets), ``none`` (all-in-focus
  input) or ``model`` (a trained model's camera: evaluate / predict); the
  parameters ``--focal_length_mm --f_number --pixel_pitch_um
  --focus_distance_m`` override the preset's (unset: the preset's, never a
  CLI's own default).
* data source: ``--dataset`` (:mod:`d3tf.data.registry` names),
  ``--data_path``, ``--splits_path``, ``--val_data_path``, ``--split``,
  ``--depth_dir``, ``--depth_scale``.
* model source: ``--model``, ``--checkpoint``.
* render: ``--input_kind`` (defocus | sharp), ``--psf``, ``--render_mode``,
  ``--render_bits``, ``--noise_shot_gain``, ``--noise_read_std``, ``--render_engine``.
* training: the :class:`~d3tf.experiment.config.ExperimentConfig` fields, on
  top of ``--experiment`` (a preset name): a flag given overrides the preset.

Old names kept: ``--input`` (train: the input kind; predict: the images),
``--mode`` (render: ``--render_mode``), ``--distribution_strategy`` (train:
``--strategy``).
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags
from absl import logging

# First: environment defaults that TensorFlow reads when it starts (before anything imports it).
from d3tf import tf_env  # pylint: disable=unused-import,g-bad-import-order
from d3tf.experiment import config as config_lib
from d3tf.optics import psf as psf_lib

FLAGS = flags.FLAGS
_DEFINED: set[str] = set()


def _once(group: str) -> bool:
  """True the first time ``group`` is defined in this process."""
  if group in _DEFINED:
    return False
  _DEFINED.add(group)
  return True


# ------------------------------------------------------------------ camera
def define_camera_flags() -> None:
  """``--camera`` and its parameter overrides."""
  if not _once("camera"):
    return
  flags.DEFINE_enum(
      "camera", None, list(config_lib.CAMERA_CHOICES),
      "Camera: 'nyu' (15 mm, f/2.8, 5.6 um, focus 2 m: the paper's NYU camera), 'dslr' (Nikon "
      "D200 35 mm, f/2.8, 36 um after x6 downsampling, focus 1.7 m), 'none' (all-in-focus "
      "input, no defocus) or 'model' (the camera in a trained model's metadata). Unset: train, "
      "render and preview use 'nyu'; evaluate 'model'; predict each photo's camera from the "
      "parameters below, its EXIF, else the model's (see --camera_from_exif).")
  flags.DEFINE_float("focal_length_mm", None, "Overrides the camera's focal length, mm.")
  flags.DEFINE_float("f_number", None, "Overrides the camera's f-number.")
  flags.DEFINE_float("pixel_pitch_um", None, "Overrides the camera's pixel pitch, um (after "
                     "any resizing of the images).")
  flags.DEFINE_float("focus_distance_m", None, "Overrides the camera's focus distance, metres "
                     "(the paper: 2, 4 or 8 m on NYU).")


def camera_config_from_flags(default_preset: str = "nyu") -> config_lib.CameraConfig:
  """The :class:`CameraConfig` of the camera flags (``--camera`` unset: ``default_preset``)."""
  return config_lib.CameraConfig(
      preset=FLAGS.camera or default_preset, focal_length_mm=FLAGS.focal_length_mm,
      f_number=FLAGS.f_number, pixel_pitch_um=FLAGS.pixel_pitch_um,
      focus_distance_m=FLAGS.focus_distance_m)


def camera_from_flags(default_preset: str = "nyu", model_camera=None):
  """The :class:`d3tf.optics.Camera` of the camera flags (None for ``none``)."""
  config = camera_config_from_flags(default_preset)
  try:
    return config.build(model_camera)
  except config_lib.ConfigError as e:
    raise app.UsageError(flag_message(e)) from None


# ------------------------------------------------------------------ render
def define_render_flags() -> None:
  """``--input_kind``, ``--psf``, ``--render_mode`` (old: ``--mode``), ``--render_bits``, noise."""
  if not _once("render"):
    return
  flags.DEFINE_enum(
      "input_kind", None, ["defocus", "sharp"],
      "Network input: 'defocus' renders the camera's defocus blur on all-in-focus data (the "
      "paper's DFD models); 'sharp' keeps the all-in-focus images (the baseline; the same as "
      "--camera=none). Default: defocus.")
  flags.DEFINE_enum("psf", None, list(psf_lib.names()), "Point-spread function of the "
                    f"rendered defocus. Default: {psf_lib.DEFAULT_PSF} (evaluate: the model's).")
  flags.DEFINE_enum("render_mode", None, ["improved", "paper"],
                    "Defocus renderer: d3tf's improved compositing, or the paper's choices. "
                    "Default: improved.")
  flags.DEFINE_alias("mode", "render_mode")
  flags.DEFINE_integer(
      "render_bits", None, "Round the rendered defocused images to 2**bits levels (8: what a "
      "camera's JPEG or PNG, and the exported models' uint8 input, hold); 0 keeps them float. "
      "Default: 0 (evaluate: as the model was trained).", lower_bound=0, upper_bound=16)
  flags.DEFINE_float("noise_shot_gain", None, "Shot-noise variance per unit of linear signal "
                     "(1/photo-electrons at white). Default: 0 (none).", lower_bound=0)
  flags.DEFINE_float("noise_read_std", None, "Read-noise standard deviation, linear units. "
                     "Default: 0.", lower_bound=0)
  flags.DEFINE_enum("render_engine", None, ["auto", "reference", "fused", "tiled"],
                    "Renderer engine (the same renders to ~1e-3): 'tiled' uses about 5x less "
                    "CPU than 'reference' on 480x640 frames after an XLA compilation per image "
                    "shape (docs/renderer.md); 'auto': 'tiled' for the scene pool's windows of "
                    "256x256 pixels or more, 'reference' elsewhere. Default: auto.")


def render_config_from_flags() -> config_lib.RenderConfig:
  """The :class:`RenderConfig` of the render flags (unset: the config's defaults)."""
  defaults = config_lib.RenderConfig()
  return config_lib.RenderConfig(
      input=FLAGS.input_kind or defaults.input, psf=FLAGS.psf or defaults.psf,
      mode=FLAGS.render_mode or defaults.mode,
      bits=FLAGS.render_bits if FLAGS.render_bits is not None else defaults.bits,
      noise_shot_gain=FLAGS.noise_shot_gain or 0.0, noise_read_std=FLAGS.noise_read_std or 0.0,
      engine=FLAGS.render_engine or defaults.engine)


# ------------------------------------------------------------ data source
def define_data_flags() -> None:
  """``--dataset``, ``--data_path`` and the other options of the data source."""
  if not _once("data"):
    return
  from d3tf.data import registry  # pylint: disable=g-import-not-at-top
  names = registry.dataset_names()
  flags.DEFINE_enum(
      "dataset", None, list(names), "Data: " + "; ".join(
          f"'{n}' ({registry.get_dataset(n).description})" for n in names) +
      ". Default: procedural.")
  flags.DEFINE_string("data_path", None, "The dataset: its file, folder or shard glob. Not "
                      "used for procedural scenes.")
  flags.DEFINE_string("splits_path", None, "NYU's splits.mat (default: beside --data_path).")
  flags.DEFINE_string(
      "val_data_path", None, "Training: validation data for 'folder' and 'tfrecord' (same "
      "format as --data_path). Default: NYU and DFD validate on their 'test' split (DFD with "
      "--dfd_val_views: its held-out views); procedural "
      "on its 'validation' split; folder/tfrecord without it select the best model by "
      "training loss.")
  flags.DEFINE_string("split", None, "procedural: train|validation|test; nyu_*: train|test|all; "
                      "nyu_densedepth: validation|train|all (by scene) or a comma-separated "
                      "list of scenes; dfd: train|validation|test (validation: see --dfd_val_views). Default: test (preview: train).")
  flags.DEFINE_string("depth_dir", None, "folder: depth files in another folder.")
  flags.DEFINE_float("depth_scale", 0.001, "folder (and render --depth): metres per unit of "
                     "the depth PNGs (0.001: millimetres; 1: metres). .npy depth is in metres.")
  flags.DEFINE_enum(
      "on_error", "raise", ["raise", "skip"],
      "A bad example (unreadable file, depth without a valid pixel or of another size than its "
      "image, implausible depth): 'raise' stops with one line naming the file; 'skip' leaves "
      "it out and reports the count and the files (train: MODEL_DIR/skipped_examples.json; "
      "evaluate: the JSON's 'skipped_examples').")
  flags.DEFINE_list(
      "val_scenes", list(config_lib.DataConfig().val_scenes), "nyu_densedepth: the scene(s) "
      "held out to validate (train: and select best.keras, whole frames; evaluate: "
      "--split=validation); the other scenes train. Split by scene, never by frame: "
      "neighbouring frames are near-duplicates.")
  flags.DEFINE_enum(
      "dfd_aperture", "auto", ["auto", "N2_8", "N8"], "dfd: which photos, N2_8 (f/2.8, real "
      "defocus) or N8 (f/8, nearly all in focus); they fix the camera. 'auto': train N2_8; "
      "evaluate N2_8 for a model trained on defocused input, N8 for a sharp one.")
  flags.DEFINE_integer(
      "dfd_val_views", 0, "dfd: hold out the latest N views of the train folder by capture "
      "time as split 'validation' (train: validates and selects best.keras on them; evaluate: "
      "--split=validation), the others are split 'train'. Never random: neighbouring views "
      "are near-duplicates. 0: none held out (train validates on the test folder if there is "
      "one). The protocol: 16 of the 81 views.", lower_bound=0)
  flags.DEFINE_integer("frame_stride", 1, "nyu_densedepth (evaluate): score every N-th frame "
                       "of each scene.", lower_bound=1)
  flags.DEFINE_integer("height", 256, "Height of procedural scenes, pixels.", lower_bound=32)
  flags.DEFINE_integer("width", 256, "Width of procedural scenes, pixels.", lower_bound=32)


def dataset_from_flags(default: str = "procedural") -> str:
  return FLAGS.dataset or default


# ------------------------------------------------------------------ common
def define_common_flags() -> None:
  """``--batch_size`` and ``--seed``."""
  if not _once("common"):
    return
  flags.DEFINE_integer("batch_size", None, "Examples per step (train, default 8) or images "
                       "rendered and predicted together (evaluate, default 4).", lower_bound=1)
  flags.DEFINE_integer("seed", 0, "Seed of the weights, data order, augmentation and "
                       "procedural scenes (train), and of the render noise.", lower_bound=0)


# ----------------------------------------------------------- model source
def define_model_source_flags() -> None:
  """``--model`` (a model_dir, .keras file or export) and ``--checkpoint``."""
  if not _once("model_source"):
    return
  from d3tf.artifacts import model_dir  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string(
      "model", None, "Trained model: a model_dir of d3tf.train (model.keras, else best.keras), "
      "a .keras file with d3tf_metadata.json beside it, or (predict) an export of d3tf.export "
      "(a SavedModel version folder, a model's export folder, or a .tflite file). predict "
      "without --model: the shipped camera-aware model savedmodels/d3tf_anycamera/<latest>.")
  flags.DEFINE_enum("checkpoint", "auto", list(model_dir.CHECKPOINTS),
                    model_dir.CHECKPOINT_HELP)
  flags.DEFINE_integer(
      "samples", None, "Monte-Carlo samples T per image (MC dropout and variational layers); "
      "T > 1 also gives the epistemic std. Default: 1 (export: 20 for a model with MC dropout "
      "or Bayesian layers).", lower_bound=1)


# ---------------------------------------------------------------- training
# Flag -> (section, field) of ExperimentConfig. The flags are defined by
# define_training_flags(); a flag given on the command line (or in a
# flagfile) overrides the --experiment preset.
_CAMERA_FIELDS = {"camera": ("camera", "preset"), "focal_length_mm": ("camera", "focal_length_mm"),
                  "f_number": ("camera", "f_number"), "pixel_pitch_um": ("camera", "pixel_pitch_um"),
                  "focus_distance_m": ("camera", "focus_distance_m"),
                  "camera_range": ("camera", "range")}
TRAINING_FLAG_FIELDS = {
    "dataset": ("data", "dataset"), "data_path": ("data", "data_path"),
    "splits_path": ("data", "splits_path"), "val_data_path": ("data", "val_data_path"),
    "crop_size": ("data", "crop_size"), "batch_size": ("data", "batch_size"),
    "augment": ("data", "augment"), "flips": ("data", "flips"),
    "val_scenes": ("data", "val_scenes"), "mix_procedural": ("data", "mix_procedural"),
    "dfd_aperture": ("data", "dfd_aperture"), "dfd_val_views": ("data", "dfd_val_views"),
    "depth_scale": ("data", "depth_scale"), "on_error": ("data", "on_error"),
    "scene_pool_size": ("data", "scene_pool_size"), "scene_reuse": ("data", "scene_reuse"),
    **_CAMERA_FIELDS,
    "input_kind": ("render", "input"), "psf": ("render", "psf"),
    "render_mode": ("render", "mode"), "render_bits": ("render", "bits"),
    "render_engine": ("render", "engine"),
    "model_size": ("model", "size"), "input_features": ("model", "input_features"),
    "decoder_width": ("model", "decoder_width"), "psf_rho": ("render", "rho"),
    "bandpass_floor": ("model", "bandpass_floor"), "dropout_rate": ("model", "dropout_rate"),
    "aleatoric": ("model", "aleatoric"), "variational_blocks": ("model", "variational_blocks"),
    "variational_type": ("model", "variational_type"),
    "posterior_scale_init": ("model", "posterior_scale_init"),
    "prior_scale": ("model", "prior_scale"), "imagenet_weights": ("model", "imagenet_weights"),
    "camera_aware": ("model", "camera_aware"),
    "fused_batch_norm": ("model", "fused_batch_norm"), "recompute": ("model", "recompute"),
    "learning_rate": ("training", "learning_rate"), "beta1": ("training", "beta1"),
    "lr_schedule": ("training", "lr_schedule"),
    "loss": ("training", "loss"), "epochs": ("training", "epochs"),
    "steps_per_epoch": ("training", "steps_per_epoch"),
    "validation_steps": ("training", "validation_steps"),
    "save_every_steps": ("training", "save_every_steps"),
    "log_every_steps": ("training", "log_every_steps"),
    "tensorboard_images": ("training", "tensorboard_images"), "seed": ("training", "seed"),
    "keep_epoch_models": ("training", "keep_epoch_models"),
    "init_from": ("training", "init_from"), "kl_weight": ("training", "kl_weight"),
    "kl_anneal_steps": ("training", "kl_anneal_steps"),
    "strategy": ("runtime", "distribution_strategy"), "tpu": ("runtime", "tpu_address"),
    "precision": ("runtime", "precision"), "data_service": ("runtime", "data_service"),
    "progress": ("runtime", "progress"),
}
_FIELD_FLAGS = {f"{s}.{f}": name for name, (s, f) in TRAINING_FLAG_FIELDS.items()}
_FIELD_FLAGS["camera.preset"] = "camera"


def define_training_flags() -> None:
  """The flags of ``python -m d3tf.train`` (with the camera, render and data groups)."""
  if not _once("training"):
    return
  from d3tf.experiment import presets  # pylint: disable=g-import-not-at-top
  define_camera_flags()
  define_render_flags()
  define_data_flags()
  define_common_flags()
  defaults = config_lib.ExperimentConfig()
  d, m, t = defaults.data, defaults.model, defaults.training
  flags.DEFINE_enum(
      "experiment", "default", list(presets.preset_names()),
      "Named experiment preset (d3tf.experiment.presets; each pipelines/NAME.flags has one); "
      "flags given on top override it.")
  flags.DEFINE_string(
      "model_dir", None, "Folder of this run's outputs (created). Rerunning with the same "
      "folder resumes an interrupted run. Default: runs/<date>_<time>.")
  _define_input_flag()
  flags.DEFINE_enum(
      "model_size", None, ["tiny", "small", "medium", "full"],
      "D3-Net size: 'full' (the paper's, DenseNet-121 encoder, 24 M parameters), 'small' (CPU "
      "experiments, 0.75 M), 'medium' (2.1 M: a camera-aware model that still ships small), "
      "'tiny' (tests). Default: small for procedural scenes, else full.")
  flags.DEFINE_enum(
      "input_features", m.input_features, ["rgb", "rgb+bandpass", "rgb+reblur"],
      "What D3-Net's stem sees: 'rgb' (the paper), 'rgb+bandpass': RGB plus three fixed, "
      "contrast-normalised band-pass sharpness maps computed inside the model, or "
      "'rgb+reblur': RGB plus three multi-scale re-blur ratios (gradient energy of the grey "
      "image re-blurred by Gaussians of 1, 2, 4 pixels). The model's input stays RGB.")
  flags.DEFINE_float(
      "mix_procedural", d.mix_procedural, "nyu_densedepth: share of procedural scenes in the "
      "training stream (0: real frames only, 1: procedural only); each example's source is a "
      "seeded draw, so a resumed run continues the same stream exactly.", lower_bound=0.0,
      upper_bound=1.0)
  flags.DEFINE_integer(
      "scene_pool_size", None, "Training examples come from a pool of this many scenes (or "
      "frames) per generation, each generated and rendered once at twice the crop's side and "
      "reused for --scene_reuse fresh crops, flips and sensor noise; the next generation "
      "replaces the pool (docs/data.md). 0: a fresh scene rendered per example (more distinct "
      f"scenes, about {d.scene_reuse}x the input CPU). Default: "
      f"{config_lib.DEFAULT_SCENE_POOL_SIZE} for procedural scenes in crops of up to "
      f"{config_lib.DEFAULT_SCENE_POOL_CROP} pixels, fewer for larger crops "
      f"({config_lib.default_scene_pool_size(256, 1)} at 256, at least "
      f"{config_lib.MIN_DEFAULT_SCENE_POOL_SIZE} and the batch size), 0 otherwise.",
      lower_bound=0, upper_bound=4096)
  flags.DEFINE_integer(
      "scene_reuse", d.scene_reuse, "With --scene_pool_size: crops drawn from each pooled "
      "scene per generation.", lower_bound=1, upper_bound=1024)
  flags.DEFINE_float(
      "bandpass_floor", m.bandpass_floor,
      "With --input_features=rgb+bandpass: smallest band RMS of the sharpness maps, on the "
      "[0, 1] intensity scale (below the textures' fine-band RMS).", lower_bound=1e-9,
      upper_bound=0.5)
  flags.DEFINE_float(
      "decoder_width", m.decoder_width, "Factor on the model size's decoder widths (1: as "
      "they are; 0.5 halves every decoder block's channels).", lower_bound=1e-3,
      upper_bound=8.0)
  flags.DEFINE_float(
      "psf_rho", config_lib.RenderConfig().rho, "Gaussian PSF: sigma per unit of blur "
      "diameter of the rendered defocus (the paper: 0.3).", lower_bound=1e-6)
  flags.DEFINE_float(
      "dropout_rate", None, "Overrides the rate of the MC dropout layers (the paper: 0.5; 0 "
      "disables them, and with them the model's uncertainty).")
  flags.DEFINE_string(
      "imagenet_weights", None, "Local keras.applications DenseNet121 weight file for the "
      "encoder (full size only). Default: random initialisation.")
  flags.DEFINE_string(
      "init_from", None, "Fine-tune: start from the weights of a trained model (a model_dir or "
      "a .keras file) of the same size, copied layer by layer by name.")
  flags.DEFINE_integer("crop_size", None, "Side of the square training crops, a multiple of "
                       "32. Default: 256 (the paper), 128 for procedural scenes.", lower_bound=32)
  flags.DEFINE_integer("epochs", t.epochs, "Epochs to train.", lower_bound=1)
  flags.DEFINE_integer(
      "steps_per_epoch", None, "Steps per epoch. Default: 100 for procedural scenes (an "
      "endless stream), one pass over the training set otherwise.", lower_bound=1)
  flags.DEFINE_integer(
      "validation_steps", t.validation_steps, "Validation batches per epoch (a fixed set, the "
      "same every epoch; 0: no validation).", lower_bound=0)
  flags.DEFINE_float("learning_rate", t.learning_rate, "Adam learning rate (the paper: 2e-4).")
  flags.DEFINE_float("beta1", t.beta1, "Adam beta1 (the paper: 0.5).")
  flags.DEFINE_enum("lr_schedule", t.lr_schedule, ["constant", "cosine"],
                    "Learning-rate schedule: constant, or cosine (from --learning_rate to zero "
                    "over the run's epochs * steps_per_epoch steps).")
  flags.DEFINE_enum(
      "loss", t.loss, ["l1", "berhu", "silog", "gradient", "log_l1"],
      "Training loss (invalid depth masked out): 'l1' (the paper), 'berhu', 'silog', "
      "'gradient' (L1 + multi-scale gradient matching), 'log_l1' (L1 on log depth).")
  flags.DEFINE_enum(
      "aleatoric", m.aleatoric, ["none", "gaussian", "laplace"],
      "Aleatoric uncertainty: 'gaussian' or 'laplace' adds a head predicting a per-pixel "
      "log-scale, trained with that negative log-likelihood instead of --loss.")
  flags.DEFINE_list(
      "variational_blocks", [], "Decoder blocks (1-5, 5 the deepest) whose 3x3 convolution is "
      "variational (Bayesian weights), e.g. '5,4'. Empty: none.")
  flags.DEFINE_enum("variational_type", m.variational_type, ["flipout", "reparameterization"],
                    "Estimator of the variational layers.")
  flags.DEFINE_float("posterior_scale_init", m.posterior_scale_init, "Initial posterior "
                     "standard deviation of every variational weight.")
  flags.DEFINE_float("prior_scale", m.prior_scale, "Standard deviation of the N(0, s) prior "
                     "of the variational weights.")
  flags.DEFINE_float(
      "kl_weight", t.kl_weight, "Factor on the KL term (already divided by the number of "
      "training examples).")
  flags.DEFINE_integer("kl_anneal_steps", t.kl_anneal_steps, "Steps of a linear warm-up of "
                       "the KL weight from 0 to --kl_weight (0: none).", lower_bound=0)
  flags.DEFINE_boolean("flips", d.flips, "Random horizontal flips (the paper).")
  from d3tf.optics import camera_range  # pylint: disable=g-import-not-at-top
  flags.DEFINE_enum("camera_range", None, list(camera_range.RANGES), "Train on a camera drawn "
                    "per example from this range (docs/any_camera.md); --camera stays the "
                    "model's default camera. Unset: every example with --camera.")
  flags.DEFINE_boolean("camera_aware", m.camera_aware, "The camera is a model input: the model "
                       "takes each image's camera (docs/any_camera.md).")
  flags.DEFINE_boolean("fused_batch_norm", m.fused_batch_norm, "Train the batch "
                       "normalisations with TensorFlow's fused kernel: same maths, a faster "
                       "step (docs/training.md); --nofused_batch_norm: Keras' layer.")
  flags.DEFINE_boolean("recompute", m.recompute, "Memory-efficient dense blocks: recompute "
                       "each dense layer's concatenation, BN, ReLU and 1x1 conv in the "
                       "backward pass (same maths, less memory, more compute).")
  flags.DEFINE_enum("augment", d.augment, ["flips", "full"],
                    "'flips': random crops and flips, as the paper; 'full': also zoom and "
                    "colour gains.")
  flags.DEFINE_integer("save_every_steps", t.save_every_steps, "Steps between saves of the "
                       "training state (for resuming); also saved at every epoch end.",
                       lower_bound=0)
  flags.DEFINE_integer("log_every_steps", t.log_every_steps, "Steps between log lines and "
                       "TensorBoard batch scalars.", lower_bound=0)
  flags.DEFINE_integer("tensorboard_images", t.tensorboard_images, "Validation images drawn "
                       "in TensorBoard at each epoch end (0: none).", lower_bound=0)
  flags.DEFINE_bool("keep_epoch_models", t.keep_epoch_models, "Also save the model at each "
                    "epoch end as MODEL_DIR/epochs/epoch_NNN.keras, e.g. to average the last "
                    "ones with python -m d3tf.average.")
  _define_scale_out_flags()
  flags.DEFINE_enum("progress", "auto", ["auto", "bar", "line", "none"],
                    "Keras progress display: a bar (terminals), one line per epoch, or none; "
                    "'auto' picks bar on a terminal.")


def _define_scale_out_flags() -> None:
  """``--strategy`` (old: ``--distribution_strategy``), ``--tpu``, ``--precision``, ``--data_service``."""
  flags.DEFINE_enum(
      "strategy", "default", list(config_lib.DISTRIBUTION_STRATEGIES),
      "tf.distribute strategy: 'default' (one device), 'mirrored' (every GPU of this machine), "
      "'multi_worker' (MultiWorkerMirroredStrategy, the cluster from the TF_CONFIG environment "
      "variable) or 'tpu' (TPUStrategy, see --tpu). --batch_size is the global batch, split "
      "across the replicas (docs/scale_out.md).")
  flags.DEFINE_alias("distribution_strategy", "strategy")
  flags.DEFINE_string("tpu", None, "--strategy=tpu: the TPU's resolver address (name, "
                      "grpc://HOST:PORT, or 'local' on a TPU VM). Default: TPU_NAME.")
  flags.DEFINE_enum("precision", "float32", list(config_lib.PRECISIONS),
                    "Keras dtype policy: mixed_bfloat16 (TPUs, recent GPUs) or mixed_float16 "
                    "(GPUs, with dynamic loss scaling); the output heads stay float32.")
  flags.DEFINE_string(
      "data_service", None, "grpc://HOST:PORT of a tf.data service dispatcher: the per-example "
      "pipeline (scene generation, augmentation, defocus) runs on its workers, started with "
      "python -m d3tf.data_service (procedural data).")


def _define_input_flag() -> None:
  if _once("input"):
    flags.DEFINE_string(
        "input", None, "Deprecated, two meanings: in d3tf.train the input kind (use "
        "--input_kind=defocus|sharp), in d3tf.predict the images (use --images).")


def _variational_blocks(values: list[str]) -> tuple[int, ...]:
  blocks = []
  for item in values:
    try:
      block = int(item)
    except ValueError:
      block = 0
    if not 1 <= block <= 5 or block in blocks:
      raise app.UsageError("--variational_blocks must list distinct decoder blocks in 1-5 (5 "
                           f"the deepest), got {','.join(values)!r}")
    blocks.append(block)
  return tuple(sorted(blocks, reverse=True))


def flag_message(error: config_lib.ConfigError) -> str:
  """The message of a config error with field paths replaced by their flag names."""
  message = str(error)
  for path in sorted(_FIELD_FLAGS, key=len, reverse=True):
    message = message.replace(path, f"--{_FIELD_FLAGS[path]}")
  return message


def experiment_config_from_flags() -> config_lib.ExperimentConfig:
  """The :class:`ExperimentConfig` of ``--experiment`` with the flags given on top.

  Raises:
    app.UsageError: a bad value, naming the flag.
  """
  from d3tf.experiment import presets  # pylint: disable=g-import-not-at-top
  config = presets.get_preset(FLAGS.experiment).to_dict()
  if FLAGS["input"].present:
    if FLAGS.input not in ("defocus", "sharp"):
      raise app.UsageError(f"--input (deprecated: use --input_kind) must be defocus or sharp, "
                           f"got {FLAGS.input!r}")
    if not FLAGS["input_kind"].present:
      config["render"]["input"] = FLAGS.input
  for name, (section, field) in TRAINING_FLAG_FIELDS.items():
    if not FLAGS[name].present:
      continue
    value = FLAGS[name].value
    if name == "variational_blocks":
      value = list(_variational_blocks(value))
    config[section][field] = value
  if config["camera"]["preset"] == "none":  # --camera=none: all-in-focus input.
    config["camera"]["preset"] = "nyu"
    config["render"]["input"] = "sharp"
  try:
    experiment = config_lib.ExperimentConfig.from_dict(config)
    return experiment.resolved().validate()
  except config_lib.ConfigError as e:
    raise app.UsageError(flag_message(e)) from None


def flagfile_from_config(config: config_lib.ExperimentConfig,
                         model_dir: str | None = None) -> str:
  """A flagfile that rebuilds ``config`` (``flags.txt`` of a run)."""
  values = config.to_dict()
  lines = [f"--model_dir={model_dir}"] if model_dir else []
  for name, (section, field) in TRAINING_FLAG_FIELDS.items():
    value = values[section][field]
    if value is None:
      lines.append(f"# --{name} (unset: default)")
    elif isinstance(value, bool):
      lines.append(f"--{name}" if value else f"--no{name}")
    elif isinstance(value, list):
      lines.append(f"--{name}={','.join(str(v) for v in value)}")
    else:
      lines.append(f"--{name}={value}")
  return "\n".join(lines) + "\n"


def command_line() -> str:
  return " ".join([sys.executable] + sys.argv)


def usage_error(error: Exception) -> app.UsageError:
  """A UsageError of a library's ValueError (config errors name their flag)."""
  if isinstance(error, config_lib.ConfigError):
    return app.UsageError(flag_message(error))
  return app.UsageError(str(error))


def log_deprecated(old: str, new: str) -> None:
  logging.warning("--%s is deprecated: use --%s", old, new)


# ------------------------------------------------------------------ tuning
# Search-space field -> its flag (a list: one value fixed, two a range, or choices).
TUNE_SPACE_FLAGS = {
    "learning_rate": "Learning rate: 'LOW,HIGH' (a log range) or one value (fixed).",
    "loss": "Losses to choose from (l1, berhu, silog, gradient).",
    "decoder_width": "Decoder width factors to choose from (see --decoder_width), e.g. "
                     "'0.5,1,2'.",
    "dropout_rate": "MC dropout rate: 'LOW,HIGH' (a linear range) or one value.",
    "input_features": "Input features to choose from (rgb, rgb+bandpass, rgb+reblur).",
    "kl_weight": "Bayesian models: KL weight, 'LOW,HIGH' (a log range) or one value.",
    "variational_blocks": "Bayesian models: sets of variational decoder blocks to choose "
                          "from, blocks joined by '+', e.g. '5+4,5,none'.",
    "rho": "Rendered data, gaussian PSF: rho (see --psf_rho), 'LOW,HIGH' (a linear range) "
           "or one value. Validation keeps the base --psf_rho.",
}
_TUNE_FIELDS = ("tuner", "max_trials", "executions_per_trial", "objective",
                "hyperband_factor", "hyperband_iterations")
_FIELD_FLAGS.update({f"search.{name}": f"tune_{name}" for name in TUNE_SPACE_FLAGS})
_FIELD_FLAGS.update({f"tune.{name}": name for name in _TUNE_FIELDS})
_FIELD_FLAGS["tune.seed"] = "tune_seed"


def define_tune_flags() -> None:
  """The flags of ``python -m d3tf.tune``: the training flags, the tuner and the space."""
  if not _once("tune"):
    return
  define_training_flags()
  flags.DEFINE_enum("tuner", "random", ["random", "hyperband", "bayesian"],
                    "Search algorithm: random search, Hyperband (trials up to --epochs, "
                    "successive halving) or Bayesian optimisation (Gaussian process).")
  flags.DEFINE_integer("max_trials", 10, "Trials of random search / Bayesian optimisation "
                       "(Hyperband: see --hyperband_iterations).", lower_bound=1)
  flags.DEFINE_integer("executions_per_trial", 1, "Models trained per trial (the objective "
                       "is their mean).", lower_bound=1)
  flags.DEFINE_enum("objective", "val_rel", ["val_rel", "val_rms"],
                    "Validation metric minimised (its best epoch counts).")
  flags.DEFINE_integer("hyperband_factor", 3, "Hyperband's reduction factor.", lower_bound=2)
  flags.DEFINE_integer("hyperband_iterations", 1, "Hyperband's iterations (each a full set "
                       "of brackets).", lower_bound=1)
  flags.DEFINE_integer("tune_seed", 0, "Seed of the tuner's choices.", lower_bound=0)
  flags.DEFINE_boolean("retrain_best", False, "After the search, train the best trial's "
                       "config to the full budget into MODEL_DIR/best_retrain.")
  for name, help_text in TUNE_SPACE_FLAGS.items():
    flags.DEFINE_list(f"tune_{name}", [], f"Search space: {help_text} Empty: the base "
                      "config's value.")


def tune_configs_from_flags():
  """(:class:`SearchSpace`, :class:`TuneConfig`) of the tune flags (UsageError naming a flag)."""
  from d3tf.experiment import tune_lib  # pylint: disable=g-import-not-at-top
  values = {}
  for name in TUNE_SPACE_FLAGS:
    items = [v.strip() for v in FLAGS[f"tune_{name}"].value]
    if name in ("learning_rate", "decoder_width", "dropout_rate", "kl_weight", "rho"):
      try:
        items = [float(v) for v in items]
      except ValueError:
        raise app.UsageError(f"--tune_{name} must list numbers, got "
                             f"{','.join(items)!r}") from None
    values[name] = tuple(items)
  tune = tune_lib.TuneConfig(
      **{name: FLAGS[name].value for name in _TUNE_FIELDS}, seed=FLAGS.tune_seed)
  return tune_lib.SearchSpace(**values), tune


# -------------------------------------------------------------- evaluation
def define_eval_flags() -> None:
  """The flags of ``python -m d3tf.evaluate`` (with the shared groups)."""
  if not _once("eval"):
    return
  define_model_source_flags()
  define_data_flags()
  define_camera_flags()
  define_render_flags()
  define_common_flags()
  flags.DEFINE_integer("num_examples", None, "Evaluate the first N images (default: all; "
                       "procedural: 32).", lower_bound=1)
  flags.DEFINE_float("max_depth_m", 10.0, "Ground truth above this is not scored; "
                     "predictions are clipped to it.")
  flags.DEFINE_float("min_depth_m", 1e-3, "Predictions are clipped up to this.")
  flags.DEFINE_boolean("eigen_crop", None, "Score only inside the Eigen crop (default: on for "
                       "NYU, off otherwise).")
  flags.DEFINE_boolean("median_scaling", False, "Scale each prediction by median(gt) / "
                       "median(pred) (for models without scale).")
  flags.DEFINE_enum("ause_metric", "abs", ["abs", "rmse"], "Error of the sparsification "
                    "curves behind AUSE: mean absolute error or RMSE (metres).")
  flags.DEFINE_float("bin_width_m", 1.0, "Width of the depth bins of the per-bin RMS, metres "
                     "(bins from 0 to --max_depth_m).")
  define_output_json_flag()
  define_flip_average_flag()
  flags.DEFINE_boolean("per_image", True, "Include each image's metrics in the JSON.")
  flags.DEFINE_string(
      "sparsification_plot", None, "With uncertainty metrics: also draw the mean "
      "sparsification curve as a PNG here (default: <output_json>_sparsification.png; '' for "
      "none).")


def define_flip_average_flag() -> None:
  """``--flip_average`` of evaluate and predict."""
  if _once("flip_average"):
    flags.DEFINE_boolean(
        "flip_average", False, "Flip test-time averaging: predict each image and its "
        "left-right mirror image and average the two depths (the mirror mirrored back); a "
        "second forward pass. The blur disc is symmetric, so the mirror is a photo of the same "
        "camera (d3tf.inference.flip_average).")


def define_output_json_flag() -> None:
  if _once("output_json"):
    flags.DEFINE_string("output_json", None, "Where to write the report as JSON (evaluate's "
                        "default: eval_<dataset>_<split>.json beside the model file).")


def eval_config_from_flags():
  """The :class:`d3tf.experiment.eval_lib.EvalConfig` of the evaluate flags."""
  from d3tf.experiment import eval_lib  # pylint: disable=g-import-not-at-top
  if FLAGS.psf or FLAGS.render_mode or FLAGS.noise_shot_gain or FLAGS.noise_read_std or (
      FLAGS.input_kind):
    raise app.UsageError("evaluate renders with the model's PSF and render options: of the "
                         "render flags only --render_bits applies (and --camera for the "
                         "camera)")
  return eval_lib.EvalConfig(
      model=FLAGS.model, checkpoint=FLAGS.checkpoint, dataset=dataset_from_flags(),
      data_path=FLAGS.data_path, split=FLAGS.split or "test", splits_path=FLAGS.splits_path,
      depth_dir=FLAGS.depth_dir, depth_scale=FLAGS.depth_scale, on_error=FLAGS.on_error,
      val_scenes=tuple(FLAGS.val_scenes), frame_stride=FLAGS.frame_stride,
      num_examples=FLAGS.num_examples, height=FLAGS.height, width=FLAGS.width,
      dfd_aperture=FLAGS.dfd_aperture, dfd_val_views=FLAGS.dfd_val_views,
      max_depth_m=FLAGS.max_depth_m,
      min_depth_m=FLAGS.min_depth_m, eigen_crop=FLAGS.eigen_crop,
      median_scaling=FLAGS.median_scaling, camera=camera_config_from_flags("model"),
      render_bits=FLAGS.render_bits, samples=FLAGS.samples or 1,
      flip_average=FLAGS.flip_average, ause_metric=FLAGS.ause_metric,
      batch_size=FLAGS.batch_size or 4, bin_width_m=FLAGS.bin_width_m, seed=FLAGS.seed,
      output_json=FLAGS.output_json, per_image=FLAGS.per_image,
      sparsification_plot=FLAGS.sparsification_plot, command_line=" ".join(sys.argv))


# -------------------------------------------------------------- prediction
def define_output_dir_flag() -> None:
  if _once("output_dir"):
    flags.DEFINE_string("output_dir", None, "Folder of the files written (default: predict "
                        "'predictions', render 'renders').")


def define_predict_flags() -> None:
  """The flags of ``python -m d3tf.predict`` (with the shared groups)."""
  if not _once("predict"):
    return
  define_model_source_flags()
  define_camera_flags()
  define_output_dir_flag()
  define_flip_average_flag()
  _define_input_flag()
  flags.DEFINE_string("images", None, "Your photos: an image file, a folder of images, or a "
                      "glob pattern (quoted); or give them as arguments.")
  flags.DEFINE_enum(
      "camera_from_exif", "auto", ["auto", "require", "off"],
      "Each photo's camera, value by value: a camera flag, else the photo's EXIF (pixel "
      "pitch: FocalPlaneXResolution, the sensor table by Make/Model, or the 35 mm "
      "equivalent), else the model's camera. 'require': refuse a photo whose value comes "
      "from neither a flag nor the photo; 'off': do not read the EXIF. A --camera preset "
      "states all four values (--camera=model: the model's).")
  flags.DEFINE_float("color_max_depth_m", None, "Top of the colour scale, metres (default: "
                     "the model's maximum depth).")
  flags.DEFINE_integer(
      "max_tile_pixels", 1024 * 1024, "Bounded memory for large photos: a photo with more "
      "pixels is predicted in overlapping square tiles of at most this many pixels (see "
      "d3tf.tiling) and the depth comes back at its full resolution. 0: one pass whatever the "
      "size.", lower_bound=0)


def images_from_flags() -> str:
  """``--images`` (or the deprecated ``--input`` of predict)."""
  if FLAGS.images is not None:
    return FLAGS.images
  if FLAGS.input is not None:
    log_deprecated("input", "images")
    return FLAGS.input
  raise app.UsageError("--images is required (an image file, a folder or a glob pattern)")


def photo_arguments_from_flags(args: list[str]) -> list[tuple[str, str]]:
  """``(argument as given, pattern)`` of the photos: positional ``args``, then ``--images``."""
  found = [(f"photo argument {arg!r}", arg) for arg in args]
  if FLAGS.images is not None or FLAGS.input is not None:
    images = images_from_flags()
    found.append((f"--images={images}", images))
  if not found:
    raise app.UsageError("No photos: give image files, folders or glob patterns as arguments "
                         "(or --images)")
  return found


def camera_from_exif_from_flags() -> str:
  """``--camera_from_exif``; "off" when ``--camera`` states the camera (its preset's values)."""
  if FLAGS.camera is None:
    return FLAGS.camera_from_exif
  if FLAGS.camera_from_exif == "require":
    raise app.UsageError(f"--camera_from_exif=require contradicts --camera={FLAGS.camera} "
                         "(which states the camera): drop one of them")
  return "off"


# ------------------------------------------------------------ data service
def define_data_service_flags() -> None:
  """The flags of ``python -m d3tf.data_service`` (with the training flags: the experiment)."""
  if not _once("data_service_cli"):
    return
  define_training_flags()
  flags.DEFINE_enum("role", None, ["dispatcher", "worker"], "Which tf.data service server to "
                    "start.")
  flags.DEFINE_integer("port", None, "Port to serve on. Default: dispatcher 5050, worker "
                       "5051.", lower_bound=0, upper_bound=65535)
  flags.DEFINE_string("work_dir", None, "dispatcher: folder (shared storage) where it journals "
                      "its state, so that a restarted dispatcher continues its jobs.")
  flags.DEFINE_boolean("fault_tolerant", True, "dispatcher: journal to --work_dir (needs it).")
  flags.DEFINE_string("dispatcher", None, "worker: the dispatcher's HOST:PORT.")
  flags.DEFINE_string("worker_address", None, "worker: HOST:%port% the dispatcher and trainers "
                      "reach this worker at. Default: localhost:%port%.")


# ------------------------------------------------------------------ export
def define_export_flags() -> None:
  """The flags of ``python -m d3tf.export`` (with the model source group)."""
  if not _once("export"):
    return
  define_model_source_flags()
  flags.DEFINE_string("name", None, "Model name: the export goes to EXPORT_DIR/NAME/VERSION "
                      "(TFLite: EXPORT_DIR/NAME/tflite/VERSION).")
  flags.DEFINE_integer("version", None, "Version number to write; default the next free one. "
                       "An existing version is never overwritten.", lower_bound=1)
  flags.DEFINE_string("export_dir", "savedmodels", "Folder of the exports (TF Serving's model "
                      "base paths are its sub-folders).")
  flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"],
                    "saved_model (for TF Serving) or tflite (for LiteRT).")
  flags.DEFINE_enum(
      "quantize", "float32", ["float32", "float16", "int8"],
      "TFLite only: float32 (none), float16 (float16 weights) or int8 (weights and "
      "activations, calibrated on procedural scenes defocused by the model's camera; a camera-aware "
      "model's each by a camera drawn from its training range, fed with it).")
  flags.DEFINE_string(
      "input_size", "any", "TFLite only: HEIGHTxWIDTH (e.g. 256x256) for a fixed input of one "
      "image [1, H, W, 3], or 'any' for any batch and size.")
  from d3tf.data import calibration  # pylint: disable=g-import-not-at-top
  flags.DEFINE_integer("calibration_examples", calibration.DEFAULT_CALIBRATION_EXAMPLES,
                       "TFLite int8 only: procedural scenes that calibrate the quantisation.",
                       lower_bound=1)
  flags.DEFINE_string("inspect", None, "Instead of exporting, log what an export holds: a "
                      "version folder, a model's export folder (latest version) or a .tflite "
                      "file.")


def define_average_flags() -> None:
  """The flags of ``python -m d3tf.average``."""
  if not _once("average"):
    return
  from d3tf.artifacts import model_dir  # pylint: disable=g-import-not-at-top
  flags.DEFINE_multi_string("model", [], "An ingredient: a model_dir of d3tf.train, a .keras "
                            "file with d3tf_metadata.json beside it or a d3tf SavedModel export "
                            "(e.g. savedmodels/d3tf_anycamera/3); repeat (at least 2), all "
                            "checkpoints of one network and training lineage.")
  flags.DEFINE_enum("checkpoint", "best", list(model_dir.CHECKPOINTS),
                    "Checkpoint of each model_dir ingredient: best (best.keras), final "
                    "(model.keras) or auto (model.keras, else best.keras).")
  flags.DEFINE_list("coefficients", None, "One weight per --model, in their order (normalised "
                    "to sum to 1). Default: the plain mean.")
  flags.DEFINE_string("output_dir", None, "The model_dir to write (model.keras, "
                      "d3tf_metadata.json, config.json).")
  flags.DEFINE_bool("overwrite", False, "Replace a model.keras already in --output_dir.")


# ------------------------------------------------------- render / preview
def define_render_cli_flags() -> None:
  """The flags of ``python -m d3tf.render`` and ``python -m d3tf.data.preview``."""
  if not _once("render_cli"):
    return
  define_camera_flags()
  define_render_flags()
  define_data_flags()
  define_common_flags()
  define_output_dir_flag()
  flags.DEFINE_string("image", None, "render: an all-in-focus RGB image of your own (any "
                      "format Pillow reads); needs --depth. Default: procedural scenes.")
  flags.DEFINE_string("depth", None, "render: depth map registered to --image: a 16-bit PNG "
                      "(times --depth_scale) or a .npy in metres.")
  flags.DEFINE_integer("num", 4, "Procedural scenes to render / show.", lower_bound=1)
  flags.DEFINE_float("near_m", 0.5, "render: nearest depth the depth slabs cover, metres.")
  flags.DEFINE_float("far_m", 10.0, "render: farthest depth the depth slabs cover, metres.")
  flags.DEFINE_string("output", None, "preview: path of the PNG to write.")
  flags.DEFINE_integer("start_index", 0, "preview: index of the first procedural scene.",
                       lower_bound=0)
  flags.DEFINE_integer("supersample", 1, "preview: rays per pixel side of the procedural "
                       "renderer (1-4).", lower_bound=1, upper_bound=4)
  flags.DEFINE_integer("dpi", 100, "preview: resolution of the PNG, dots per inch.")


def procedural_split_from_flags(default: str) -> str:
  split = FLAGS.split or default
  if split not in ("train", "validation", "test"):
    raise app.UsageError(f"--split for procedural scenes must be train, validation or test, "
                         f"got {split!r}")
  return split
