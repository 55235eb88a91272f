"""The experiment's typed config tree: plain dataclasses, JSON round trip, validation.

One :class:`ExperimentConfig` says everything a training run needs::

  ExperimentConfig(
      data=DataConfig(dataset="procedural", crop_size=128, batch_size=8),
      camera=CameraConfig(preset="nyu", focus_distance_m=2.0),
      render=RenderConfig(input="defocus", psf="gaussian"),
      model=ModelConfig(size="small"),
      training=TrainingConfig(epochs=3, steps_per_epoch=100),
      runtime=RuntimeConfig(distribution_strategy="default"))

``to_dict`` / ``from_dict`` give a JSON-ready round trip (``config.json`` in a
model_dir); :meth:`ExperimentConfig.validate` raises :class:`ConfigError` (a
``ValueError``) naming the field by its dotted path and echoing the value.
Fields left ``None`` are resolved from the dataset by
:meth:`ExperimentConfig.resolved` (e.g. 128 px crops and the small model for
procedural scenes, 256 px and the full model otherwise).

This module imports nothing heavy (no TensorFlow); the objects it builds
(:class:`d3tf.optics.Camera`, ``D3NetConfig``) are imported where built.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

from d3tf.optics import camera_range as camera_range_lib
from d3tf.optics import psf as psf_lib
from d3tf.sizes import SIZE_MULTIPLE

#: Camera presets: name -> the :class:`d3tf.optics.Camera` class method that builds it.
CAMERA_PRESETS = {"nyu": "nyu", "dslr": "dslr_d200_35mm"}
#: Every ``camera.preset`` value: the presets, "none" (all-in-focus) and
#: "model" (the camera in a trained model's metadata: evaluation and prediction).
CAMERA_CHOICES = (*CAMERA_PRESETS, "none", "model")
DISTRIBUTION_STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
#: Values of ``runtime.precision`` (Keras dtype policies).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
#: data.scene_pool_size resolved for procedural scenes (other datasets: 0, no pool) with crops
#: of up to DEFAULT_SCENE_POOL_CROP pixels; larger crops get fewer (default_scene_pool_size).
DEFAULT_SCENE_POOL_SIZE = 64
DEFAULT_SCENE_POOL_CROP = 128
#: The fewest windows a default pool holds (and never fewer than a batch's examples).
MIN_DEFAULT_SCENE_POOL_SIZE = 8


def default_scene_pool_size(crop_size: int, batch_size: int) -> int:
  """The scene pool's default size for square crops of ``crop_size`` and ``batch_size``.

  64 windows for crops of up to 128 pixels; for larger crops as many as hold the same pixels,
  ``64 * (128 / crop_size)**2`` (16 at 256), but at least 8 and at least the batch, whose
  examples come from distinct members. A pool holds twice-the-crop windows of float32 image
  and depth (1 MB each at 128, 4 MB at 256), and one generation is in use while the next is
  built: with 64 windows at 256x256 the pool took 1.4 GB of a full D3-Net run
  (``benchmarks/results/train_step.md``, "A whole training run holds more than the step").
  """
  scaled = math.floor(DEFAULT_SCENE_POOL_SIZE * (DEFAULT_SCENE_POOL_CROP / crop_size) ** 2)
  return min(DEFAULT_SCENE_POOL_SIZE, max(MIN_DEFAULT_SCENE_POOL_SIZE, batch_size, scaled))


class ConfigError(ValueError):
  """A bad config value. ``field`` is its dotted path, ``value`` the value."""

  def __init__(self, field: str, value: Any, message: str):
    super().__init__(message)
    self.field = field
    self.value = value


def _choices(*values, default=None):
  return dataclasses.field(default=default, metadata={"choices": values})


def _bounded(default, low=None, high=None, low_open=False):
  return dataclasses.field(default=default,
                           metadata={"low": low, "high": high, "low_open": low_open})


@dataclasses.dataclass
class DataConfig:
  """Training and validation data.

  Attributes:
    dataset: A name of :mod:`d3tf.data.registry` (procedural, nyu_mat,
      nyu_png, dfd, folder, tfrecord).
    data_path: Its file, folder or shard glob (not for procedural).
    splits_path: NYU's splits.mat (default beside data_path).
    val_data_path: Validation data for folder / tfrecord.
    crop_size: Side of the square training crops (multiple of 32); None:
      128 for procedural scenes, else 256.
    batch_size: Examples per step (global, over all replicas).
    augment: "flips" (crops and flips, the paper) or "full" (also zoom and
      colour gains).
    flips: Random horizontal flips.
    val_scenes: nyu_densedepth: the scene(s) held out for validation (the
      others train); split by scene, never by frame.
    mix_procedural: nyu_densedepth: share of procedural scenes in the
      (resumable) training stream, 0-1.
    dfd_aperture: dfd: which photos train, "N2_8" (f/2.8, defocused) or
      "N8" (f/8); they fix the camera. "auto": N2_8.
    dfd_val_views: dfd: the latest N views of the train folder by capture time
      are held out to validate (and select best.keras); never random, since
      neighbouring views are near-duplicates. 0: none held out (validation
      from the dataset's test folder when it has one).
    depth_scale: folder: metres per unit of the depth PNGs.
    on_error: A bad example: "raise" stops the run naming the file; "skip"
      leaves it out and lists it in MODEL_DIR/skipped_examples.json.
    scene_pool_size: Training examples come from a pool of this many scenes
      (or frames) per generation, each rendered once at twice the crop's side
      and reused for ``scene_reuse`` fresh crops (:mod:`d3tf.data.scene_pool`);
      0: every example from its own scene, rendered at the crop's size. None:
      for procedural scenes :func:`default_scene_pool_size` (64 for crops of up
      to 128 pixels, 16 at 256), else 0.
    scene_reuse: Crops drawn from each pooled scene per generation.
  """

  dataset: str = "procedural"
  data_path: str | None = None
  splits_path: str | None = None
  val_data_path: str | None = None
  crop_size: int | None = _bounded(None, 32)
  batch_size: int = _bounded(8, 1)
  augment: str = _choices("flips", "full", default="flips")
  flips: bool = True
  val_scenes: tuple[str, ...] = ("office_0011",)
  mix_procedural: float = _bounded(0.0, 0.0, 1.0)
  dfd_aperture: str = _choices("auto", "N2_8", "N8", default="N2_8")
  dfd_val_views: int = _bounded(0, 0)
  depth_scale: float = _bounded(0.001, 0.0, low_open=True)
  on_error: str = _choices("raise", "skip", default="raise")
  # The scene pool (d3tf.data.scene_pool): cheap input for CPU training.
  scene_pool_size: int | None = _bounded(None, 0, 4096)
  scene_reuse: int = _bounded(64, 1, 1024)


@dataclasses.dataclass
class CameraConfig:
  """A camera preset with parameter overrides (in the units people quote).

  Attributes:
    preset: One of :data:`CAMERA_CHOICES`.
    focal_length_mm, f_number, pixel_pitch_um, focus_distance_m: Overrides
      of the preset's parameters (None keeps them).
    range: Training: a camera range of :data:`d3tf.optics.camera_range.RANGES`
      ("anycamera", ...): each example is rendered with its own camera drawn
      from it (seeded by the run's seed and the example's index); the camera
      above stays the model's default camera (its metadata, exports). None:
      every example with the one camera above.
  """

  preset: str = _choices(*CAMERA_CHOICES, default="nyu")
  focal_length_mm: float | None = _bounded(None, 0, low_open=True)
  f_number: float | None = _bounded(None, 0, low_open=True)
  pixel_pitch_um: float | None = _bounded(None, 0, low_open=True)
  focus_distance_m: float | None = _bounded(None, 0, low_open=True)
  range: str | None = _choices(*camera_range_lib.RANGES, None, default=None)

  def overrides(self) -> dict[str, float]:
    """The parameters given, by field name."""
    return {k: getattr(self, k) for k in ("focal_length_mm", "f_number", "pixel_pitch_um",
                                          "focus_distance_m") if getattr(self, k) is not None}

  def build(self, model_camera=None):
    """The :class:`d3tf.optics.Camera`, or None for preset "none".

    Args:
      model_camera: The camera preset "model" starts from (a trained model's;
        None: the model has none, so all four parameters must be given).

    Raises:
      ConfigError: overrides with preset "none", or preset "model" without
        a model camera and not all four parameters.
    """
    from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
    overrides = self.overrides()
    if self.preset == "none":
      if overrides:
        raise ConfigError("camera.preset", self.preset,
                          f"camera.preset=none (all-in-focus) contradicts the camera "
                          f"parameters given: {sorted(overrides)}")
      return None
    if self.preset == "model":
      if model_camera is None:
        if not overrides:
          return None
        missing = sorted({"focal_length_mm", "f_number", "pixel_pitch_um",
                          "focus_distance_m"} - set(overrides))
        if missing:
          raise ConfigError("camera.preset", self.preset,
                            "The model has no camera to start from: name a camera.preset, or "
                            f"give all four camera parameters (missing {missing})")
        return Camera(focal_length_m=self.focal_length_mm * 1e-3, f_number=self.f_number,
                      pixel_pitch_m=self.pixel_pitch_um * 1e-6,
                      focus_distance_m=self.focus_distance_m)
      base = model_camera
    else:
      base = getattr(Camera, CAMERA_PRESETS[self.preset])()
    try:
      return base.with_parameters(**overrides)
    except ValueError as e:
      raise ConfigError("camera", overrides, f"camera: {e}") from None


#: The smallest scene pool window (pixels) that ``RenderConfig(engine="auto")`` renders with
#: the tiled engine: 256x256, the default job's windows (twice its 128x128 crops). Smaller
#: windows (tests, tiny runs) keep the reference engine and skip the ~5 s XLA compilation.
AUTO_TILED_MIN_PIXELS = 256 * 256


@dataclasses.dataclass
class RenderConfig:
  """How defocus is rendered on all-in-focus data.

  Attributes:
    input: "defocus" (render the camera's blur: the DFD models) or "sharp"
      (all-in-focus input, the baseline).
    psf: A name of the PSF registry (:func:`d3tf.optics.psf.names`).
    mode: "improved" (d3tf's compositing) or "paper" (the paper's choices).
    bits: Round the rendered images to 2**bits levels (8: a camera's file);
      0 keeps them float.
    noise_shot_gain, noise_read_std: Sensor noise (0: none).
    engine: The renderer's engine (:data:`d3tf.optics.render.ENGINES`):
      "reference", "fused" or "tiled" (the same renders to about 1e-3; the
      compiled engines cost less CPU after a compilation per image shape,
      ~5 s), or "auto": "tiled" for the scene pool's windows of at least
      :data:`AUTO_TILED_MIN_PIXELS` (one shape, rendered over and over: the
      compilation pays back), "reference" everywhere else (see
      :meth:`engine_for`).
    rho: Gaussian PSF sigma per unit of blur diameter (the paper: 0.3).
  """

  input: str = _choices("defocus", "sharp", default="defocus")
  psf: str = _choices(*psf_lib.names(), default=psf_lib.DEFAULT_PSF)
  mode: str = _choices("improved", "paper", default="improved")
  bits: int = _bounded(0, 0, 16)
  noise_shot_gain: float = _bounded(0.0, 0.0)
  noise_read_std: float = _bounded(0.0, 0.0)
  engine: str = _choices("auto", "reference", "fused", "tiled", default="auto")
  rho: float = _bounded(psf_lib.DEFAULT_RHO, 0.0, low_open=True)

  def render_options(self) -> dict[str, Any]:
    """The :class:`d3tf.optics.RenderOptions` fields set (saved in the metadata)."""
    options: dict[str, Any] = {"mode": self.mode}
    if self.bits:
      options["output_bits"] = self.bits
    if self.noise_shot_gain:
      options["noise_shot_gain"] = self.noise_shot_gain
    if self.noise_read_std:
      options["noise_read_std"] = self.noise_read_std
    if self.engine not in ("auto", "reference"):
      options["engine"] = self.engine
    if self.rho != psf_lib.DEFAULT_RHO:
      options["rho"] = self.rho
    return options

  def engine_for(self, pool_window_pixels: int | None = None) -> str:
    """The engine that renders the scene pool's windows, or (by default) anything else.

    Args:
      pool_window_pixels: Pixels of the scene pool's windows, when rendering
        them; None for every other render.

    Returns:
      ``engine`` itself, unless "auto": then "tiled" for pool windows of at
      least :data:`AUTO_TILED_MIN_PIXELS`, else "reference".
    """
    if self.engine != "auto":
      return self.engine
    return ("tiled" if pool_window_pixels is not None
            and pool_window_pixels >= AUTO_TILED_MIN_PIXELS else "reference")


@dataclasses.dataclass
class ModelConfig:
  """D3-Net: a size preset and :class:`d3tf.models.D3NetConfig` overrides.

  Attributes:
    size: "tiny", "small", "medium" or "full"; None: small for procedural scenes, else
      full.
    input_features: "rgb", "rgb+bandpass" or "rgb+reblur" (D3NetConfig's).
    bandpass_floor: Smallest band RMS of the band-pass maps.
    dropout_rate: Overrides the MC dropout rate (None: the preset's).
    decoder_width: Factor on the size preset's decoder widths (1: as is).
    aleatoric: "none", "gaussian" or "laplace" (a log-scale head).
    variational_blocks: Decoder blocks (1-5) with variational 3x3 convs.
    variational_type: "flipout" or "reparameterization".
    posterior_scale_init, prior_scale: Variational layers' scales.
    imagenet_weights: Local DenseNet121 weight file (full size only).
    camera_aware: The camera is a model input (D3NetConfig.camera_aware): the
      model takes {"image", "camera"} and each example carries its camera.
    fused_batch_norm: Train the BatchNormalizations with TensorFlow's fused
      kernel (D3NetConfig.fused_batch_norm; same maths, a faster step).
    recompute: Memory-efficient dense blocks (D3NetConfig.recompute; same
      maths, less memory, more compute).
  """

  size: str | None = _choices("tiny", "small", "medium", "full", None, default=None)
  input_features: str = _choices("rgb", "rgb+bandpass", "rgb+reblur", default="rgb")
  bandpass_floor: float = _bounded(1e-4, 1e-9, 0.5)
  dropout_rate: float | None = _bounded(None, 0.0, 1.0)
  decoder_width: float = _bounded(1.0, 0.0, 8.0, low_open=True)
  aleatoric: str = _choices("none", "gaussian", "laplace", default="none")
  variational_blocks: tuple[int, ...] = ()
  variational_type: str = _choices("flipout", "reparameterization", default="flipout")
  posterior_scale_init: float = _bounded(1e-3, 0.0, low_open=True)
  prior_scale: float = _bounded(1.0, 0.0, low_open=True)
  imagenet_weights: str | None = None
  camera_aware: bool = False
  fused_batch_norm: bool = True
  recompute: bool = False

  def d3net_config(self, num_train_examples: int | None = None, hp=None):
    """The ``D3NetConfig`` (size resolved by the caller).

    Args:
      num_train_examples: The KL's N (variational layers).
      hp: A ``keras_tuner.HyperParameters`` (or a mapping) whose values named
        ``model.<field>`` override this config's fields (see
        :meth:`ExperimentConfig.with_hyperparameters`); None: as is.
    """
    from d3tf import models  # pylint: disable=g-import-not-at-top
    if hp is not None:
      values = hyperparameter_values(hp).get("model", {})
      if values:
        return dataclasses.replace(self, **values).d3net_config(num_train_examples)
    if self.size is None:
      raise ConfigError("model.size", None, "model.size is unresolved: call resolved() first")
    overrides: dict[str, Any] = {"input_features": self.input_features}
    if self.input_features == "rgb+bandpass":
      overrides["bandpass_floor"] = self.bandpass_floor
    if self.dropout_rate is not None:
      overrides["dropout_rate"] = self.dropout_rate
    if self.variational_blocks:
      overrides.update(variational_blocks=tuple(self.variational_blocks),
                       variational_type=self.variational_type,
                       num_train_examples=num_train_examples, prior_scale=self.prior_scale,
                       posterior_scale_init=self.posterior_scale_init)
    if self.aleatoric != "none":
      overrides["aleatoric"] = self.aleatoric
    if self.camera_aware:
      overrides["camera_aware"] = True
    if not self.fused_batch_norm:
      overrides["fused_batch_norm"] = False
    if self.recompute:
      overrides["recompute"] = True
    preset = getattr(models.D3NetConfig, self.size)
    if self.decoder_width != 1.0:
      overrides["decoder_filters"] = tuple(max(1, round(f * self.decoder_width))
                                           for f in preset().decoder_filters)
    return preset(**overrides)


@dataclasses.dataclass
class TrainingConfig:
  """Optimisation, schedule and checkpointing.

  Attributes:
    optimizer: "adam" (the paper's).
    learning_rate, beta1: Adam's (the paper: 2e-4, 0.5).
    lr_schedule: "constant" (the paper's), or "cosine": the rate decays from
      ``learning_rate`` to zero along half a cosine over the run's
      ``epochs * steps_per_epoch`` steps (``keras.optimizers.schedules.CosineDecay``;
      it follows the optimizer's step count, so a resumed run continues it).
    loss: "l1", "berhu", "silog", "gradient" or "log_l1" (not with an aleatoric head,
      which trains with its negative log-likelihood).
    epochs: Epochs to train.
    steps_per_epoch: None: 100 for procedural scenes, one pass otherwise.
    validation_steps: Validation batches per epoch (0: none).
    save_every_steps: Steps between saves of the training state.
    log_every_steps: Steps between log lines / TensorBoard batch scalars.
    tensorboard_images: Validation images drawn at each epoch end.
    keep_epoch_models: Also save the model at each epoch end as
      ``epochs/epoch_NNN.keras`` (for weight averaging: ``d3tf.average``).
    seed: Seed of weights, data order, augmentation and scenes.
    init_from: A model_dir or .keras file whose weights start the model.
    kl_weight: Factor on the (already / N) KL term.
    kl_anneal_steps: Linear KL warm-up (0: none).
  """

  optimizer: str = _choices("adam", default="adam")
  learning_rate: float = _bounded(2e-4, 0.0, low_open=True)
  beta1: float = _bounded(0.5, 0.0, 1.0)
  lr_schedule: str = _choices("constant", "cosine", default="constant")
  loss: str = _choices("l1", "berhu", "silog", "gradient", "log_l1", default="l1")
  epochs: int = _bounded(3, 1)
  steps_per_epoch: int | None = _bounded(None, 1)
  validation_steps: int = _bounded(4, 0)
  save_every_steps: int = _bounded(50, 0)
  log_every_steps: int = _bounded(50, 0)
  tensorboard_images: int = _bounded(4, 0)
  keep_epoch_models: bool = False
  seed: int = _bounded(0, 0)
  init_from: str | None = None
  kl_weight: float = _bounded(1.0, 0.0)
  kl_anneal_steps: int = _bounded(0, 0)

  def loss_name(self, aleatoric: str) -> str:
    """The data loss: ``loss``, or the NLL of an aleatoric head."""
    return self.loss if aleatoric == "none" else f"{aleatoric}_nll"


@dataclasses.dataclass
class RuntimeConfig:
  """Where and how the job runs (see docs/scale_out.md).

  Attributes:
    distribution_strategy: "default" (one device), "mirrored" (every GPU of
      this machine; without GPUs, every logical CPU device), "multi_worker"
      (``MultiWorkerMirroredStrategy``, the cluster read from ``TF_CONFIG``)
      or "tpu" (``TPUStrategy`` on the TPU at ``tpu_address``).
    tpu_address: The TPU's resolver address (a name, ``grpc://HOST:PORT``, or
      "local" on a TPU VM); None lets the resolver find it (``TPU_NAME``).
    precision: "float32", "mixed_float16" or "mixed_bfloat16" (Keras dtype
      policy of the layers; the output heads stay float32).
    data_service: ``grpc://HOST:PORT`` of a tf.data service dispatcher whose
      workers (``python -m d3tf.data_service``) run the per-example pipeline;
      None: the pipeline runs in the trainer.
    progress: Keras progress display: "auto", "bar", "line" or "none".
  """

  distribution_strategy: str = _choices(*DISTRIBUTION_STRATEGIES, default="default")
  tpu_address: str | None = None
  precision: str = _choices(*PRECISIONS, default="float32")
  data_service: str | None = None
  progress: str = _choices("auto", "bar", "line", "none", default="auto")


_SECTIONS = {"data": DataConfig, "camera": CameraConfig, "render": RenderConfig,
             "model": ModelConfig, "training": TrainingConfig, "runtime": RuntimeConfig}


@dataclasses.dataclass
class ExperimentConfig:
  """Everything a training run needs (see the module docstring)."""

  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
  render: RenderConfig = dataclasses.field(default_factory=RenderConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
  runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

  # ------------------------------------------------------------ round trip
  def to_dict(self) -> dict[str, Any]:
    """A JSON-ready nested dict (tuples become lists)."""
    return _jsonable(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "ExperimentConfig":
    """Builds a config from (part of) :meth:`to_dict`'s output; validates it.

    Raises:
      ConfigError: an unknown section or field, or a bad value (naming it).
    """
    if not isinstance(values, Mapping):
      raise ConfigError("", values, f"an experiment config must be a mapping, got {values!r}")
    sections = {}
    for name, section_values in values.items():
      if name not in _SECTIONS:
        raise ConfigError(name, section_values,
                          f"unknown config section {name!r}; known: {', '.join(_SECTIONS)}")
      sections[name] = _section_from_dict(_SECTIONS[name], name, section_values)
    config = cls(**sections)
    config.validate()
    return config

  def replace(self, **overrides: Mapping[str, Any]) -> "ExperimentConfig":
    """A copy with fields replaced: ``replace(training={"epochs": 2})``."""
    values = self.to_dict()
    for section, fields in overrides.items():
      if section not in values:
        raise ConfigError(section, fields, f"unknown config section {section!r}")
      values[section] = {**values[section], **fields}
    return ExperimentConfig.from_dict(values)

  def with_hyperparameters(self, hp) -> "ExperimentConfig":
    """A copy with the values of ``hp`` named by dotted field paths applied.

    Args:
      hp: A ``keras_tuner.HyperParameters`` or a mapping; values named
        ``section.field`` (e.g. ``training.learning_rate``) replace that
        field, other names (keras-tuner's ``tuner/epochs``) are ignored.

    Raises:
      ConfigError: an unknown section or field, or a bad value.
    """
    return self.replace(**hyperparameter_values(hp))

  # ------------------------------------------------------------ resolution
  @property
  def is_procedural(self) -> bool:
    return self.data.dataset == "procedural"

  @property
  def _pool_by_default(self) -> bool:
    """The scene pool is on by default for procedural scenes of one camera, read locally."""
    return (self.is_procedural and self.camera.range is None and not self.model.camera_aware
            and self.runtime.data_service is None)

  def resolved(self) -> "ExperimentConfig":
    """A copy with the dataset-dependent defaults (None fields) filled in."""
    procedural = self.is_procedural
    crop_size = self.data.crop_size or (128 if procedural else 256)
    default_pool = (default_scene_pool_size(crop_size, self.data.batch_size)
                    if self._pool_by_default else 0)
    data = dataclasses.replace(
        self.data, crop_size=crop_size,
        scene_pool_size=(self.data.scene_pool_size if self.data.scene_pool_size is not None
                         else default_pool),
        dfd_aperture="N2_8" if self.data.dfd_aperture == "auto" else self.data.dfd_aperture)
    model = dataclasses.replace(
        self.model, size=self.model.size or ("small" if procedural else "full"))
    return dataclasses.replace(self, data=data, model=model)

  def build_camera(self):
    """The camera whose defocus the model is trained on, or None (sharp input).

    The real DFD photos are the DSLR at the f-number of ``data.dfd_aperture``
    (f/2.8 or f/8; nothing is rendered on them).

    Raises:
      ConfigError: a bad camera value, or a camera.f_number that contradicts
        the DFD aperture.
    """
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    if registry.get_dataset(self.data.dataset).real_defocus:
      from d3tf.data.readers import dfd  # pylint: disable=g-import-not-at-top
      aperture = "N2_8" if self.data.dfd_aperture == "auto" else self.data.dfd_aperture
      photos = dfd.camera_for_aperture(aperture)
      f_number = self.camera.f_number
      if f_number is not None and not math.isclose(f_number, photos.f_number, rel_tol=1e-3):
        raise ConfigError("camera.f_number", f_number,
                          f"camera.f_number={f_number:g} contradicts data.dfd_aperture="
                          f"{aperture}: those photos were taken at f/{photos.f_number:g} (give "
                          f"data.dfd_aperture={'N8' if aperture == 'N2_8' else 'N2_8'} for the "
                          "other photos, or leave camera.f_number unset)")
      try:
        return photos.with_parameters(**self.camera.overrides())
      except ValueError as e:
        raise ConfigError("camera", self.camera.overrides(), f"camera: {e}") from None
    if self.render.input == "sharp" or self.camera.preset == "none":
      return None
    return self.camera.build()

  def build_camera_range(self):
    """The :class:`d3tf.optics.camera_range.CameraRange` examples draw from, or None."""
    return camera_range_lib.get_range(self.camera.range) if self.camera.range else None

  # ------------------------------------------------------------ validation
  def validate(self) -> "ExperimentConfig":
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the field (dotted path) and echoing the value.
    """
    for name in _SECTIONS:
      _check_section(getattr(self, name), name)
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    data, model, training = self.data, self.model, self.training
    try:
      spec = registry.get_dataset(data.dataset)
    except ValueError as e:
      raise ConfigError("data.dataset", data.dataset, f"data.dataset: {e}") from None
    if not spec.dense:
      raise ConfigError("data.dataset", data.dataset,
                        f"data.dataset={data.dataset} has no dense depth to train on")
    if spec.needs_path and not data.data_path:
      raise ConfigError("data.data_path", data.data_path,
                        f"data.dataset={data.dataset} needs data.data_path")
    if spec.real_defocus and self.render.input == "sharp":
      raise ConfigError("render.input", self.render.input,
                        f"data.dataset={data.dataset} trains on the real (defocused) photos; "
                        "render.input=sharp does not apply to it")
    if self.camera.preset == "model":
      raise ConfigError("camera.preset", "model",
                        "camera.preset=model names a trained model's camera: it does not "
                        "apply to training")
    if data.mix_procedural and data.dataset != "nyu_densedepth":
      raise ConfigError("data.mix_procedural", data.mix_procedural,
                        f"data.mix_procedural applies to data.dataset=nyu_densedepth, not "
                        f"data.dataset={data.dataset}")
    if data.dataset != "dfd":
      for name, default in (("dfd_aperture", ("auto", "N2_8")), ("dfd_val_views", (0,))):
        if getattr(data, name) not in default:
          raise ConfigError(f"data.{name}", getattr(data, name),
                            f"data.{name} applies to data.dataset=dfd, not data.dataset="
                            f"{data.dataset}")
    if data.dfd_val_views and data.val_data_path:
      raise ConfigError("data.dfd_val_views", data.dfd_val_views,
                        f"data.dfd_val_views={data.dfd_val_views} holds out views of "
                        f"data.data_path to validate, but data.val_data_path="
                        f"{data.val_data_path} names other validation data: give one of them")
    if not training.beta1 < 1:
      raise ConfigError("training.beta1", training.beta1,
                        f"training.beta1 must be in [0, 1), got {training.beta1}")
    if data.crop_size is not None and data.crop_size % SIZE_MULTIPLE:
      raise ConfigError("data.crop_size", data.crop_size,
                        f"data.crop_size must be a multiple of {SIZE_MULTIPLE}, got "
                        f"{data.crop_size}")
    blocks = list(model.variational_blocks)
    if any(not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 5 for b in blocks) or (
        len(set(blocks)) != len(blocks)):
      raise ConfigError("model.variational_blocks", model.variational_blocks,
                        "model.variational_blocks must list distinct decoder blocks in 1-5 (5 "
                        f"the deepest), got {model.variational_blocks!r}")
    if model.aleatoric != "none" and training.loss != TrainingConfig.loss:
      raise ConfigError("training.loss", training.loss,
                        f"training.loss={training.loss} does not apply with model.aleatoric="
                        f"{model.aleatoric}: the model is trained with the {model.aleatoric} "
                        "negative log-likelihood")
    self.build_camera()  # The camera's values (plausible ranges, units), named.
    self._check_camera_aware(spec)
    pool_blockers = {"camera.range": self.camera.range,
                     "model.camera_aware": self.model.camera_aware or None,
                     "runtime.data_service": self.runtime.data_service}
    for name, value in pool_blockers.items():
      if self.data.scene_pool_size and value is not None:
        raise ConfigError("data.scene_pool_size", self.data.scene_pool_size,
                          f"the scene pool does not combine with {name}={value} yet: set "
                          "data.scene_pool_size=0 (--scene_pool_size=0)")
    runtime = self.runtime
    if runtime.tpu_address is not None and runtime.distribution_strategy != "tpu":
      raise ConfigError("runtime.tpu_address", runtime.tpu_address,
                        f"runtime.tpu_address={runtime.tpu_address} applies to "
                        "runtime.distribution_strategy=tpu, not "
                        f"{runtime.distribution_strategy}")
    if runtime.data_service is not None:
      address = runtime.data_service
      host, _, port = address[len("grpc://"):].rpartition(":")
      if not address.startswith("grpc://") or not host or not port.isdigit():
        raise ConfigError("runtime.data_service", address,
                          f"runtime.data_service must be grpc://HOST:PORT, got {address!r}")
      if not self.is_procedural:
        raise ConfigError("runtime.data_service", address,
                          f"runtime.data_service supports data.dataset=procedural (a stream "
                          f"keyed by example index), not data.dataset={data.dataset}")
    return self


  def _check_camera_aware(self, spec) -> None:
    """camera.range and model.camera_aware need rendered (or real) defocus."""
    if self.camera.range is not None:
      if spec.real_defocus:
        raise ConfigError("camera.range", self.camera.range,
                          f"data.dataset={self.data.dataset} has the real blur of one camera: "
                          "camera.range does not apply to it")
      if self.render.input == "sharp" or self.camera.preset == "none":
        raise ConfigError("camera.range", self.camera.range,
                          "camera.range renders each example's camera: it needs "
                          "render.input=defocus and a camera.preset")
      if self.render.mode == "paper":
        raise ConfigError("camera.range", self.camera.range,
                          "camera.range needs render.mode=improved (blur-spaced slabs)")
    if self.model.camera_aware and self.build_camera() is None:
      raise ConfigError("model.camera_aware", True,
                        "model.camera_aware needs defocused input (a camera or camera.range), "
                        "not all-in-focus images")


# ---------------------------------------------------------------- helpers
def hyperparameter_values(hp) -> dict[str, dict[str, Any]]:
  """``{section: {field: value}}`` of the dotted names of a HyperParameters or mapping."""
  values = hp if isinstance(hp, Mapping) else hp.values
  sections: dict[str, dict[str, Any]] = {}
  for name, value in values.items():
    section, dot, field = str(name).partition(".")
    if dot and section in _SECTIONS:
      if isinstance(value, list):
        value = tuple(value)
      hint = str(typing.get_type_hints(_SECTIONS[section]).get(field, ""))
      if isinstance(value, str) and "tuple[int" in hint:  # "5,4" / "none" (a Choice).
        value = tuple(int(v) for v in value.replace("+", ",").split(",")
                      if v.strip() and v.strip() != "none")
      sections.setdefault(section, {})[field] = value
  return sections


def _jsonable(value):
  if isinstance(value, dict):
    return {k: _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  return value


def _section_from_dict(cls, section: str, values: Any):
  if isinstance(values, cls):
    return values
  if not isinstance(values, Mapping):
    raise ConfigError(section, values, f"config section {section} must be a mapping, got "
                      f"{values!r}")
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise ConfigError(f"{section}.{unknown[0]}", values[unknown[0]],
                      f"unknown config field(s) {', '.join(f'{section}.{u}' for u in unknown)}; "
                      f"known: {', '.join(sorted(names))}")
  kwargs = dict(values)
  hints = typing.get_type_hints(cls)
  for name, value in kwargs.items():
    if isinstance(value, list) and "tuple" in str(hints[name]):
      kwargs[name] = tuple(value)
  return cls(**kwargs)


def _type_ok(value, hint) -> bool:
  """Whether ``value`` fits a simple annotation (int, float, str, bool, None, tuples)."""
  union = typing.get_origin(hint) in (typing.Union, types.UnionType)
  options = typing.get_args(hint) if union else (hint,)
  for option in options:
    if option is type(None) and value is None:
      return True
    if option is bool and isinstance(value, bool):
      return True
    if option is int and isinstance(value, int) and not isinstance(value, bool):
      return True
    if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
      return True
    if option is str and isinstance(value, str):
      return True
    if typing.get_origin(option) is tuple and isinstance(value, tuple):
      return True
  return False


def _check_section(section, prefix: str) -> None:
  hints = typing.get_type_hints(type(section))
  for f in dataclasses.fields(section):
    value = getattr(section, f.name)
    path = f"{prefix}.{f.name}"
    if not _type_ok(value, hints[f.name]):
      raise ConfigError(path, value, f"{path} must be of type {hints[f.name]}, got {value!r}")
    if value is None:
      continue
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
      raise ConfigError(path, value, f"{path} must be one of "
                        f"{', '.join(str(c) for c in choices if c is not None)}, got {value!r}")
    low, high = f.metadata.get("low"), f.metadata.get("high")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      if not math.isfinite(value):
        raise ConfigError(path, value, f"{path} must be finite, got {value!r}")
      if low is not None and (value < low or (f.metadata.get("low_open") and value <= low)):
        relation = ">" if f.metadata.get("low_open") else ">="
        raise ConfigError(path, value, f"{path} must be {relation} {low}, got {value!r}")
      if high is not None and value > high:
        raise ConfigError(path, value, f"{path} must be <= {high}, got {value!r}")
