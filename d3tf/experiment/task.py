"""The depth-estimation Task: builds the model, inputs, losses and metrics from a config.

After the TF Model Garden's ``base_task.Task``: one object that turns an
:class:`~d3tf.experiment.config.ExperimentConfig` into the pieces a training
loop needs, so that :mod:`d3tf.experiment.train_lib`, a hyperparameter
search (``build_model(hp)`` with a ``keras_tuner.HyperParameters``) and a
``tf.distribute`` strategy (``build_inputs(split, input_context)``) share
them::

  task = DepthTask(config)
  model = task.build_model()
  task.compile_model(model)  # The optimizer, losses and metrics; Adam's slots built.
  model.fit(task.build_inputs("train"), validation_data=task.build_inputs("validation"), ...)
"""

from __future__ import annotations

from typing import Any

from absl import logging

from d3tf.experiment import config as config_lib


class DepthTask:
  """Builds everything of one experiment from its config.

  Args:
    config: The experiment; dataset-dependent defaults are resolved and the
      config validated here.
  """

  def __init__(self, config: config_lib.ExperimentConfig):
    self.config = config.resolved().validate()
    self._camera_built = False
    self._camera = None
    self._train_source = None
    self.readers = []  # Every reader built, for the report of skipped examples.

  # ------------------------------------------------------------ the camera
  @property
  def camera(self):
    """The camera of the training data's defocus (None: all-in-focus input)."""
    if not self._camera_built:
      self._camera = self.config.build_camera()
      self._camera_built = True
    return self._camera

  @property
  def render_camera(self):
    """The camera to render with: None for sharp input and for real defocused photos."""
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    if registry.get_dataset(self.config.data.dataset).real_defocus:
      return None
    return self.camera

  # ------------------------------------------------------------ the data
  def _reader(self, path: str, split: str, **options):
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    data = self.config.data
    if data.dataset == "nyu_densedepth":
      options["val_scenes"] = data.val_scenes
    if data.dataset == "folder":
      options["depth_scale"] = data.depth_scale
    if data.dataset == "dfd":
      options.update(aperture=data.dfd_aperture, val_views=data.dfd_val_views)
    reader = registry.make_reader(data.dataset, path, split, splits_path=data.splits_path,
                                  on_error=data.on_error, **options)
    self.readers.append(reader)
    return reader

  def _source(self, path: str, split: str):
    """(tf.data source following the element contract, number of examples or None)."""
    from d3tf.data import registry  # pylint: disable=g-import-not-at-top
    reader = self._reader(path, split)
    if not registry.get_dataset(self.config.data.dataset).sized:
      return reader.as_dataset(), None
    num = len(reader)
    if not num:
      raise ValueError(f"{path}: no {split!r} examples for dataset {self.config.data.dataset}")
    return reader.as_dataset(), num

  def train_source(self):
    """(source, number of examples or None); "procedural" for the generated scenes."""
    if self._train_source is None:
      data = self.config.data
      if self.config.is_procedural:
        self._train_source = ("procedural", None)
      elif data.dataset == "nyu_densedepth":
        # A resumable stream of seeded per-epoch permutations, mixed with procedural scenes.
        from d3tf.data import mixing  # pylint: disable=g-import-not-at-top
        seed = self.config.training.seed
        reader = self._reader(data.data_path, "train")
        num = len(reader)
        source = mixing.mixed_stream(mixing.reader_stream(reader, seed=seed),
                                     data.mix_procedural, seed=seed)
        logging.info("Training stream: %d frames of scenes %s from %s, %g procedural scenes",
                     num, ",".join(reader.scenes), data.data_path, data.mix_procedural)
        self._train_source = (source, num)
      else:
        source, num = self._source(data.data_path, "train")
        logging.info("Training set: %s examples from %s", num or "?", data.data_path)
        self._train_source = (source, num)
    return self._train_source

  @property
  def num_train_examples(self) -> int | None:
    """The training set's size; None where unknown (procedural, TFRecord)."""
    return self.train_source()[1]

  @property
  def steps_per_epoch(self) -> int:
    """``training.steps_per_epoch``, or 100 (procedural), or one pass over the data."""
    steps = self.config.training.steps_per_epoch
    if steps is not None:
      return steps
    num = self.num_train_examples
    if num is None:
      if not self.config.is_procedural:
        raise config_lib.ConfigError(
            "training.steps_per_epoch", None, f"data.dataset={self.config.data.dataset} has no "
            "known size: give training.steps_per_epoch")
      return 100
    return max(1, num // self.config.data.batch_size)

  @property
  def total_steps(self) -> int:
    return self.config.training.epochs * self.steps_per_epoch

  @property
  def kl_num_examples(self) -> tuple[int, str]:
    """The KL's N and where it came from (the set's size or the examples drawn)."""
    num = self.num_train_examples
    if num:
      return num, "training set size"
    return self.total_steps * self.config.data.batch_size, "epochs * steps_per_epoch * batch_size"

  def _common(self, batch_size: int) -> dict[str, Any]:
    data, render, training = self.config.data, self.config.render, self.config.training
    common = dict(batch_size=batch_size, crop_size=(data.crop_size, data.crop_size),
                  camera=self.render_camera, psf=render.psf,
                  render_options=render.render_options(), seed=training.seed, deterministic=True)
    if self.config.camera.range or self.config.model.camera_aware:  # docs/any_camera.md
      common.update(camera_range=self.config.build_camera_range(),
                    camera_input=self.config.model.camera_aware, input_camera=self.camera)
    return common

  def _augment(self):
    from d3tf.data import AugmentOptions  # pylint: disable=g-import-not-at-top
    data = self.config.data
    if data.augment == "full":
      return AugmentOptions(flip=data.flips)
    return AugmentOptions(scale_range=(1.0, 1.0), flip=data.flips,
                          channel_gain_range=(1.0, 1.0), brightness_range=(1.0, 1.0))

  def _scene_pool(self):
    """The training stream's :class:`~d3tf.data.scene_pool.PoolOptions`, or None (no pool)."""
    data = self.config.data
    if not data.scene_pool_size:
      return None
    from d3tf.data import mixing  # pylint: disable=g-import-not-at-top
    from d3tf.data import scene_pool  # pylint: disable=g-import-not-at-top
    window = (2 * data.crop_size, 2 * data.crop_size)
    if not self.config.is_procedural:  # Real frames: a window that fits NYU's 480x640.
      window = tuple(min(w, f) for w, f in zip(window, mixing.NYU_FRAME_SIZE))
    return scene_pool.PoolOptions(
        size=data.scene_pool_size, reuse=data.scene_reuse, window=window,
        engine=self.config.render.engine_for(pool_window_pixels=window[0] * window[1]))

  def build_inputs(self, split: str = "train", input_context=None, start_step: int = 0):
    """The (inputs, depth) batches of ``split``.

    Inputs are images, or ``{"image", "camera"}`` for a camera-aware model
    (``model.camera_aware``), each example with its own camera.

    Args:
      split: "train" (endless, augmented, starting at ``start_step``) or
        "validation" (a fixed set of ``training.validation_steps`` batches,
        centre crops; None where there is no validation data).
      input_context: A ``tf.distribute.InputContext``: the batch becomes the
        per-replica batch and the source is sharded across input pipelines.
      start_step: The training step the stream resumes at (examples already
        drawn are skipped, so none repeats).

    Returns:
      A ``tf.data.Dataset``, or None (validation without data).
    """
    from d3tf.data import make_dataset  # pylint: disable=g-import-not-at-top
    data, training = self.config.data, self.config.training
    batch = data.batch_size
    per_step = batch  # Examples this pipeline feeds per global step.
    shard = None
    if input_context is not None:
      batch = input_context.get_per_replica_batch_size(batch)
      per_step = data.batch_size // input_context.num_input_pipelines
      if input_context.num_input_pipelines > 1:
        shard = (input_context.num_input_pipelines, input_context.input_pipeline_id)
    common = self._common(batch)
    if shard is not None:  # Each pipeline draws its own stream.
      common["seed"] = training.seed + 1000003 * shard[1]
    if split == "train":
      source, _ = self.train_source()
      if shard is not None and hasattr(source, "shard"):  # Streams draw with their own seed.
        source = source.shard(*shard)
      return make_dataset(source, augment=self._augment(), start_index=start_step * per_step,
                          scene_pool=self._scene_pool(), **common)
    if split != "validation":
      raise ValueError(f"split must be 'train' or 'validation', got {split!r}")
    val_batches = training.validation_steps
    if not val_batches:
      return None
    val_path = None
    if self.config.is_procedural:
      val_source = "procedural"
    elif data.val_data_path:
      val_path = data.val_data_path
      val_source = self._reader(val_path, "test").as_dataset()
    elif data.dataset == "nyu_densedepth":
      val_path = data.data_path
      num_val = len(self._reader(val_path, "validation"))
      # Whole frames, spread evenly over the held-out scene(s) (neighbours are near-duplicates).
      val_source = self._reader(val_path, "validation", frame_stride=max(
          1, num_val // (val_batches * batch))).as_dataset()
      common = dict(common, crop_size=None)
    elif data.dataset == "dfd" and data.dfd_val_views:
      # The latest views of the train folder by capture time (neighbours are near-duplicates),
      # each whole but for the edge rows and columns beyond a multiple of 32 (645x432 -> 640x416).
      val_path = data.data_path
      reader = self._reader(val_path, "validation")
      val_source = reader.as_dataset()
      common = dict(common, crop_size=_whole_view_crop(reader))
      logging.info("Validation: the %d latest views of %s by capture time (%s to %s)",
                   len(reader), reader.rgb_dir, reader.samples()[0].name,
                   reader.samples()[-1].name)
    elif data.dataset in ("nyu_mat", "nyu_png", "dfd"):
      val_path = data.data_path
      try:
        val_source, _ = self._source(val_path, "test")
      except (ValueError, OSError) as e:
        logging.warning("No validation data (%s): the best model is chosen by training loss", e)
        val_source = None
    else:
      logging.warning("data.dataset=%s without a validation path: no validation; the best "
                      "model is chosen by training loss", data.dataset)
      val_source = None
    if val_source is None:
      return None
    kwargs = dict(common, repeat=False, augment=False, drop_remainder=False)
    if val_source == "procedural":
      kwargs.update(split="validation", procedural_options={"num_scenes": val_batches * batch})
    val = make_dataset(val_source, **kwargs).take(val_batches).cache()
    logging.info("Validation: %d batches of %d from %s (fixed, %s)", val_batches, batch,
                 val_path or "the procedural 'validation' split",
                 "whole frames" if kwargs["crop_size"] is None
                 else "centre crops {}x{}".format(*kwargs["crop_size"]))
    return val

  # ------------------------------------------------------------ the model
  def d3net_config(self, hp=None, sync_batch_norm: bool = False):
    """The ``D3NetConfig`` (the KL's N filled in for variational layers).

    Args:
      hp: See :meth:`build_model`.
      sync_batch_norm: Batch statistics over all replicas (set by the trainer
        under a strategy with more than one replica).
    """
    import dataclasses  # pylint: disable=g-import-not-at-top
    blocks = self.config.model.variational_blocks
    if hp is not None:
      blocks = config_lib.hyperparameter_values(hp).get("model", {}).get(
          "variational_blocks", blocks)
    num = self.kl_num_examples[0] if blocks else None
    config = self.config.model.d3net_config(num_train_examples=num, hp=hp)
    return dataclasses.replace(config, sync_batch_norm=True) if sync_batch_norm else config

  def build_model(self, hp=None, sync_batch_norm: bool = False):
    """D3-Net of the config.

    Args:
      hp: A ``keras_tuner.HyperParameters`` whose values named
        ``model.<field>`` (e.g. ``model.decoder_width``) override the
        config's model section; None builds the config as it is.
      sync_batch_norm: See :meth:`d3net_config`.
    """
    from d3tf import models  # pylint: disable=g-import-not-at-top
    return models.build_d3net(self.d3net_config(hp, sync_batch_norm),
                              imagenet_weights=self.config.model.imagenet_weights)

  def build_losses(self):
    """The data loss: ``training.loss``, or the aleatoric head's NLL, scaled for the global batch.

    A :class:`d3tf.losses.GlobalBatchLoss`: the plain loss on one device,
    divided by the replicas in sync under a ``tf.distribute`` strategy.
    """
    from d3tf import losses  # pylint: disable=g-import-not-at-top
    return losses.GlobalBatchLoss(self.loss_name)

  def build_metrics(self):
    """Masked abs-rel and RMS (Keras metrics, invalid depth masked out)."""
    from d3tf.training import keras_metrics  # pylint: disable=g-import-not-at-top
    max_depth = self.d3net_config().max_depth_m
    return [keras_metrics.MaskedAbsRel(max_depth_m=max_depth),
            keras_metrics.MaskedRMS(max_depth_m=max_depth)]

  def compile_model(self, model) -> None:
    """Compiles ``model`` with this task's optimizer, losses and metrics, and builds Adam's slots.

    The slots are made here, not by the first traced train step: a variable
    created while ``tf.function`` traces makes it trace the step a second time
    and keep both graphs (about 0.3 GB more for the full D3-Net;
    ``benchmarks/results/train_step.md``, run 5). Call it in the strategy's
    scope, as the model was built.
    """
    model.compile(optimizer=self.build_optimizer(), loss=self.build_losses(),
                  metrics=self.build_metrics())
    model.optimizer.build(model.trainable_variables)

  def build_optimizer(self):
    """Adam (Keras' update, TensorFlow's fused kernel: :mod:`d3tf.optimizers`).

    Its rate is ``training.learning_rate``, or with ``training.lr_schedule=cosine``
    a cosine decay from it to zero over :attr:`total_steps`.
    """
    from d3tf import optimizers  # pylint: disable=g-import-not-at-top
    training = self.config.training
    learning_rate = training.learning_rate
    if training.lr_schedule == "cosine":
      import keras  # pylint: disable=g-import-not-at-top
      learning_rate = keras.optimizers.schedules.CosineDecay(
          initial_learning_rate=training.learning_rate, decay_steps=self.total_steps, alpha=0.0)
    return optimizers.FusedAdam(learning_rate=learning_rate, beta_1=training.beta1)

  @property
  def loss_name(self) -> str:
    return self.config.training.loss_name(self.config.model.aleatoric)


def _whole_view_crop(reader) -> tuple[int, int]:
  """The largest centre crop of ``reader``'s first view whose sides are multiples of 32."""
  from d3tf.sizes import SIZE_MULTIPLE  # pylint: disable=g-import-not-at-top
  image, _ = reader.load(0)
  height, width = (side // SIZE_MULTIPLE * SIZE_MULTIPLE for side in image.shape[:2])
  if not height or not width:
    raise ValueError(f"{reader.samples()[0].image_path}: a view of {image.shape[1]}x"
                     f"{image.shape[0]} pixels is smaller than {SIZE_MULTIPLE}x{SIZE_MULTIPLE}")
  return height, width
