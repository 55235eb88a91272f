"""The tf.data pipeline: source -> augment -> defocus -> batch -> prefetch.

:func:`make_dataset` turns any data source that follows the element contract
(a ``tf.data.Dataset`` of ``{"image": uint8 [H, W, 3], "depth": float32 [H, W]
metres, 0 = invalid}`` dicts, extra keys ignored) into ``(inputs, depth)``
batches ready for Keras ``fit``:

* ``inputs``: float32 [B, h, w, 3] in [0, 1]: the defocused image rendered
  with ``camera`` (or the all-in-focus image when ``camera`` is None);
* ``depth``: float32 [B, h, w, 1] metres, 0 where invalid.

``h`` and ``w`` are multiples of 32. Depth that is NaN, infinite or negative
in the source becomes 0, and zoom augmentation divides depth by the zoom
while keeping 0 as 0, so the loss can mask invalid pixels by ``depth > 0``.

The defocus blur is rendered by :func:`d3tf.optics.render_defocus`, either per
example inside the parallel map (``render_placement="example"``, the default),
or on whole batches after batching (``render_placement="batch"``). Both run on
the CPU, as every ``tf.data`` map does; per example was about 1.5x faster on
the 2-core CPU (benchmarks/results/data.md), since examples render in parallel
and each renders only the depth slabs it occupies. To render on an accelerator
instead, build the dataset with ``camera=None`` and call the function from
:func:`make_defocus_fn` on the batch inside the training step.

With ``scene_pool``, training examples are cut from a pool of windows, each
rendered once and reused for several fresh crops (:mod:`d3tf.data.scene_pool`):
the input then costs about a tenth of a CPU train step instead of about as
much as the step.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from d3tf.data import augment as augment_lib
from d3tf.data import procedural
from d3tf.data import scene_pool as scene_pool_lib
from d3tf.optics import Camera
from d3tf.optics import RenderOptions
from d3tf.optics import render_defocus
from d3tf.optics import psf as psf_lib

RENDER_PLACEMENTS = ("batch", "example")
#: Default shuffle buffer for finite (real) sources, in examples.
DEFAULT_SHUFFLE_BUFFER = 64

# Salts that separate the per-example and per-batch seed streams.
_EXAMPLE_SALT = 0x0A09
_BATCH_SALT = 0x0BA7
_CAMERA_SALT = 0x0CA3
_POOL_SALT = 0x9001


def make_defocus_fn(camera: Camera, psf: str = "gaussian",
                    render_options: Mapping[str, Any] | None = None
                    ) -> Callable[..., tf.Tensor]:
  """A function that renders ``camera``'s defocus on batches, for use anywhere.

  The returned ``fn(images, depths, seed=None)`` calls
  :func:`d3tf.optics.render_defocus` with the given PSF and options; it is
  pure TF, so a training step can call it inside ``tf.function`` on the GPU.

  Args:
    camera: The thin-lens camera.
    psf: "gaussian" or "disk".
    render_options: Options of :class:`d3tf.optics.RenderOptions` (e.g.
      ``{"mode": "paper"}``), checked now.

  Returns:
    ``fn(images [B,H,W,3] in [0,1], depths [B,H,W(,1)] metres, seed=None) ->
    images``.
  """
  if not isinstance(camera, Camera):
    raise ValueError(f"camera must be a d3tf.optics.Camera, got {camera!r}")
  psf_lib.check_psf(psf)
  options = dict(render_options or {})
  RenderOptions.for_mode(**options)  # Raises ValueError naming a bad option.

  def defocus(images, depths, seed=None):
    return render_defocus(images, depths, camera, psf=psf, seed=seed, **options)

  return defocus


def _check_source(source: tf.data.Dataset) -> None:
  spec = source.element_spec
  if not isinstance(spec, Mapping) or "image" not in spec or "depth" not in spec:
    raise ValueError("source must yield dicts with 'image' and 'depth' (the element contract), "
                     f"got element_spec {spec!r}")
  image, depth = spec["image"], spec["depth"]
  if image.dtype not in (tf.uint8, tf.float32) or image.shape.rank not in (None, 3):
    raise ValueError(f"source 'image' must be uint8 [H, W, 3], got {image!r}")
  if not depth.dtype.is_floating or depth.shape.rank not in (None, 2, 3):
    raise ValueError(f"source 'depth' must be float32 [H, W], got {depth!r}")


def _float_image_and_depth(element) -> tuple[tf.Tensor, tf.Tensor]:
  """A source element's image as float [0, 1] and its depth [H, W], invalid depth 0."""
  depth = augment_lib.sanitize_depth(element["depth"])
  if depth.shape.rank == 3:
    depth = depth[..., 0]
  return _to_float_image(element["image"]), depth


def _to_float_image(image: tf.Tensor) -> tf.Tensor:
  if image.dtype == tf.uint8:
    return tf.cast(image, tf.float32) * (1.0 / 255.0)
  return tf.clip_by_value(tf.cast(image, tf.float32), 0.0, 1.0)


def _int_or_error(name: str, value, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
  return int(value)


def _no_autograph(function):
  """``function`` for ``Dataset.map`` as written: its Python is not converted by AutoGraph.

  The per-example and per-batch functions are TensorFlow ops with explicit
  ``tf.cond`` where a tensor decides; their ``if`` statements test Python
  values. AutoGraph would convert them and everything they call (the renderer,
  the scene generator's TF half) on every trace: about 20 s of start-up per
  dataset on the 2-core CPU, for nothing.
  """
  return tf.autograph.experimental.do_not_convert(function)


def make_dataset(source: tf.data.Dataset | str | Callable[[int], tf.data.Dataset] = "procedural",
                 *, batch_size: int,
                 crop_size: Sequence[int] | None = (256, 256), camera: Camera | None = None,
                 psf: str = "gaussian", render_options: Mapping[str, Any] | None = None,
                 render_placement: str = "example",
                 augment: bool | augment_lib.AugmentOptions = True,
                 shuffle_buffer: int | None = None, seed: int | None = None,
                 deterministic: bool = False, repeat: bool = True,
                 drop_remainder: bool | None = None, split: str = "train",
                 procedural_options: Mapping[str, Any] | None = None,
                 num_parallel_calls: int | None = None, start_index: int = 0,
                 camera_range=None, camera_input: bool = False,
                 input_camera: Camera | None = None,
                 scene_pool: scene_pool_lib.PoolOptions | None = None) -> tf.data.Dataset:
  """Builds the training or evaluation pipeline of (inputs, depth) batches.

  Order: source -> shuffle -> repeat -> [per example, in parallel: decode to
  float, sanitise depth, augment (zoom + crop, flip, colour gains) or centre
  crop, render defocus if ``render_placement="example"``] -> batch -> [render
  defocus if ``render_placement="batch"``] -> prefetch.

  Args:
    source: A ``tf.data.Dataset`` following the element contract, or
      "procedural" for :func:`d3tf.data.procedural.procedural_dataset` (endless,
      or ``procedural_options["num_scenes"]`` scenes), or a *stream*: a
      function ``stream(start_index)`` returning the endless, already
      shuffled source started at that example (see
      :mod:`d3tf.data.mixing`: real frames, procedural scenes or a weighted
      mixture); it is not shuffled again by default.
    batch_size: Examples per batch.
    crop_size: (height, width) of the output, multiples of 32. Required with
      augmentation; without it, None centre-crops each example to the largest
      multiple of 32 (examples of one batch must then share a size).
    camera: The camera whose defocus blur to render, or None to keep the
      all-in-focus images (the baseline, or rendering later with
      :func:`make_defocus_fn`).
    psf: "gaussian" or "disk".
    render_options: Options for :func:`d3tf.optics.render_defocus` (fields of
      :class:`d3tf.optics.RenderOptions`, e.g. ``{"mode": "paper"}``).
    render_placement: "example" (render inside the parallel per-example map)
      or "batch" (render whole batches after batching). Both give the same
      images without sensor noise.
    augment: True for the default :class:`AugmentOptions`, an
      :class:`AugmentOptions`, or False for the evaluation path (centre crop,
      no randomness in the data; sensor noise, if enabled, is still seeded).
    shuffle_buffer: Examples in the shuffle buffer; 0 disables shuffling.
      None: no shuffling for the procedural source (its scenes are already
      independent draws) and with ``repeat=False``, else 64.
    seed: Seed for shuffling, augmentation and render noise (and the
      procedural scenes, default 0). None draws a fresh one.
    deterministic: Keep the element order of parallel maps (reproducible with
      a seed); False lets tf.data reorder for throughput.
    repeat: Repeat the source endlessly (training); False for one pass.
    drop_remainder: Drop the last partial batch; defaults to ``repeat``.
    split: Split of the procedural source ("train", "validation", "test").
    procedural_options: Keyword arguments of ``procedural_dataset`` (e.g.
      ``num_scenes``, ``height``, ``width``, ``supersample``); height and
      width default to ``crop_size`` (or 256 x 256).
    num_parallel_calls: Parallelism of the TensorFlow maps (augment, render);
      default ``tf.data.AUTOTUNE``. The procedural scene generator has its own
      (``procedural_options["num_parallel_calls"]``, default 1: it holds the
      GIL, see :func:`d3tf.data.procedural.procedural_dataset`).
    start_index: Start the (repeated) stream at this example, as if that many
      examples had already been drawn: with a seed, example ``i`` of the
      result equals example ``start_index + i`` of the stream from 0 (same
      scene, same augmentation and render noise). Used to resume training
      mid-epoch. The endless procedural source starts there at no cost, a
      stream is called with ``start_index`` and starts there itself; other
      sources read and drop the first ``start_index`` elements.
    camera_range: A :class:`d3tf.optics.camera_range.CameraRange`: each
      example is rendered with its own camera, drawn from the range by
      (seed, example index) (:func:`~d3tf.optics.camera_range.sample_camera_vector`;
      the same camera on resume); replaces ``camera`` for rendering.
      Needs ``render_placement="example"``.
    camera_input: Also give each example's camera vector (float32 [4]:
      focal length mm, f-number, pixel pitch um, focus distance m): inputs
      become ``{"image": ..., "camera": [B, 4]}`` (camera-aware models). The
      vector is the drawn camera, else ``camera``, else ``input_camera``.
    input_camera: The camera of real defocused photos (nothing rendered), for
      ``camera_input``.
    scene_pool: A :class:`d3tf.data.scene_pool.PoolOptions` to draw the
      training examples from a pool of rendered windows, each reused for
      several fresh crops (see :mod:`d3tf.data.scene_pool`; the procedural
      scenes are then generated at the window's size), or None (every
      example from its own source element). Training only (``repeat`` and
      ``augment`` on); with ``render_placement="example"``.

  Returns:
    A ``tf.data.Dataset`` of ``(inputs float32 [B, h, w, 3] in [0, 1], depth
    float32 [B, h, w, 1] metres)``.

  Raises:
    ValueError: for a bad argument, naming it and its value.
  """
  batch_size = _int_or_error("batch_size", batch_size, 1)
  start_index = _int_or_error("start_index", start_index, 0)
  if render_placement not in RENDER_PLACEMENTS:
    raise ValueError(f"render_placement must be one of {RENDER_PLACEMENTS}, "
                     f"got {render_placement!r}")
  if camera is not None and not isinstance(camera, Camera):
    raise ValueError(f"camera must be a d3tf.optics.Camera or None, got {camera!r}")
  if isinstance(augment, augment_lib.AugmentOptions):
    augment_options = augment
  elif augment is True:
    augment_options = augment_lib.AugmentOptions()
  elif augment is False:
    augment_options = None
  else:
    raise ValueError(f"augment must be True, False or an AugmentOptions, got {augment!r}")
  if crop_size is not None:
    crop_size = augment_lib.check_crop_size(crop_size)
  elif augment_options is not None:
    raise ValueError("crop_size must be given (multiples of 32) when augment is on, got None")
  if scene_pool is not None:
    if not isinstance(scene_pool, scene_pool_lib.PoolOptions):
      raise ValueError(f"scene_pool must be a PoolOptions or None, got {scene_pool!r}")
    if augment_options is None or not repeat:
      raise ValueError("scene_pool applies to training streams (augment and repeat on), got "
                       f"augment={augment!r}, repeat={repeat!r}")
    if render_placement != "example":
      raise ValueError("scene_pool renders each pool member once: render_placement must be "
                       f"'example', got {render_placement!r}")
    window = scene_pool.window_for(crop_size)
  defocus = make_defocus_fn(camera, psf, render_options) if camera is not None else None
  fixed_vector = None
  if camera_range is not None:
    from d3tf.optics import camera_range as camera_range_lib  # pylint: disable=g-import-not-at-top
    if render_placement != "example":
      raise ValueError("camera_range renders per example: render_placement must be 'example', "
                       f"got {render_placement!r}")
    range_options = dict(render_options or {})
    psf_lib.check_psf(psf)
    defocus = lambda image, depth, seed, vector: camera_range_lib.render_defocus_vector(
        image, depth, vector, psf=psf, seed=seed, max_blur=camera_range.max_blur_px,
        **range_options)
  elif camera_input:
    vector_camera = camera if camera is not None else input_camera
    if vector_camera is None:
      raise ValueError("camera_input needs a camera_range, a camera or an input_camera")
    from d3tf.optics import camera_range as camera_range_lib  # pylint: disable=g-import-not-at-top
    fixed_vector = tf.constant(camera_range_lib.camera_vector(vector_camera))
  if scene_pool is not None and (camera_range is not None or camera_input):
    raise ValueError("scene_pool does not yet draw a camera per example: use scene_pool=None "
                     f"with camera_range={camera_range!r}, camera_input={camera_input!r}")
  pool_defocus = sensor_finish = None
  if scene_pool is not None and camera is not None:
    # Members render without sensor noise and rounding: each example gets its own after its crop.
    settings = RenderOptions.for_mode(**dict(render_options or {}))
    member_options = dict(render_options or {}, noise_shot_gain=0.0, noise_read_std=0.0,
                          output_bits=0)
    if scene_pool.engine is not None:
      member_options["engine"] = scene_pool.engine
    pool_defocus = make_defocus_fn(camera, psf, member_options)
    sensor_finish = scene_pool_lib.make_sensor_finish(
        settings.noise_shot_gain, settings.noise_read_std, settings.output_bits)
  if seed is None:
    base_seed = int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    deterministic_data = False
  else:
    base_seed = _int_or_error("seed", seed, 0)
    deterministic_data = True
  if num_parallel_calls is None:
    num_parallel_calls = tf.data.AUTOTUNE
  # With a pool, the source starts at the first member of start_index's generation.
  source_start = (start_index if scene_pool is None
                  else scene_pool_lib.first_member(start_index, scene_pool))

  # ------------------------------------------------------------------ source
  if isinstance(source, str):
    if source != "procedural":
      raise ValueError(f"source must be a tf.data.Dataset or 'procedural', got {source!r}")
    kwargs = dict(procedural_options or {})
    default_h, default_w = (window if scene_pool is not None else crop_size) or (256, 256)
    if scene_pool is not None:  # The crop's pixel scale: a window's centre crop is that scene.
      kwargs.setdefault("focal_px", procedural.focal_length_px(crop_size[1]))
    kwargs.setdefault("height", default_h)
    kwargs.setdefault("width", default_w)
    kwargs.setdefault("seed", base_seed if deterministic_data else 0)
    kwargs.setdefault("deterministic", deterministic)
    num_scenes = kwargs.pop("num_scenes", None)
    source_skip = source_start
    if num_scenes is None and source_start:  # Endless: start the generator there directly.
      kwargs["start_index"] = kwargs.get("start_index", 0) + source_start
      source_skip = 0
    # Endless from start_index: example i is scene i, keyed by the index the scene carries, so
    # the index range stays the one source (tf.data service can split it across workers).
    keyed = (scene_pool is None and num_scenes is None
             and kwargs.get("start_index", 0) == start_index)
    dataset = procedural.procedural_dataset(split, num_scenes, with_index=keyed, **kwargs)
    default_buffer = 0
  elif callable(source) and not isinstance(source, tf.data.Dataset):
    if procedural_options:
      raise ValueError("procedural_options only apply to source='procedural' (give them to "
                       f"the stream), got {dict(procedural_options)!r}")
    dataset = source(source_start)
    if not isinstance(dataset, tf.data.Dataset):
      raise ValueError(f"a stream source must return a tf.data.Dataset, got {dataset!r}")
    source_skip = 0
    default_buffer = 0
  elif isinstance(source, tf.data.Dataset):
    if procedural_options:
      raise ValueError("procedural_options only apply to source='procedural', got "
                       f"{dict(procedural_options)!r}")
    dataset = source
    source_skip = source_start
    default_buffer = DEFAULT_SHUFFLE_BUFFER if repeat else 0
  else:
    raise ValueError("source must be a tf.data.Dataset, 'procedural' or a stream function, got "
                     f"{source!r}")
  _check_source(dataset)
  keyed = isinstance(source, str) and keyed
  if keyed:
    dataset = dataset.map(lambda element: (element["index"], {"image": element["image"],
                                                              "depth": element["depth"]}))
  else:
    dataset = dataset.map(lambda element: {"image": element["image"], "depth": element["depth"]})

  shuffle_buffer = default_buffer if shuffle_buffer is None else _int_or_error(
      "shuffle_buffer", shuffle_buffer, 0)
  if shuffle_buffer > 1:
    dataset = dataset.shuffle(shuffle_buffer, seed=base_seed if deterministic_data else None,
                              reshuffle_each_iteration=True)
  if repeat:
    dataset = dataset.repeat()
  if source_skip:
    dataset = dataset.skip(source_skip)
  if drop_remainder is None:
    drop_remainder = bool(repeat)

  # ------------------------------------------------------------- scene pool
  if scene_pool is not None:
    pool_key = tf.constant([base_seed, _POOL_SALT], tf.int64)

    def prepare_member(index, element):
      image, depth = _float_image_and_depth(element)
      seed_pair = tf.random.experimental.stateless_fold_in(pool_key, index)
      return scene_pool_lib.prepare_member(image, depth, window, seed_pair, augment_options,
                                           pool_defocus)

    dataset = scene_pool_lib.pooled_examples(dataset, prepare_member, scene_pool, start_index,
                                             num_parallel_calls)

  # ------------------------------------------------------------- per example
  example_key = tf.constant([base_seed, _EXAMPLE_SALT], tf.int64)
  camera_key = tf.constant([base_seed, _CAMERA_SALT], tf.int64)

  def prepare_pooled(index, element):
    seed_pair = tf.random.experimental.stateless_fold_in(example_key, index)
    augment_seed, render_seed = tf.unstack(tf.random.experimental.stateless_split(seed_pair, 2))
    image, depth = scene_pool_lib.augment_crop(element["image"], element["depth"], crop_size,
                                               augment_seed, augment_options)
    if sensor_finish is not None:
      image = sensor_finish(image, render_seed)
    return image, depth[..., tf.newaxis]

  def prepare(index, element):
    image, depth = _float_image_and_depth(element)
    seed_pair = tf.random.experimental.stateless_fold_in(example_key, index)
    augment_seed, render_seed = tf.unstack(tf.random.experimental.stateless_split(seed_pair, 2))
    if augment_options is not None:
      image, depth = augment_lib.augment_example(image, depth, crop_size, augment_seed,
                                                 augment_options)
    elif crop_size is not None:
      image, depth = augment_lib.center_crop(image, depth, crop_size)
    else:
      image, depth = augment_lib.center_crop_to_multiple(image, depth)
    if camera_range is not None:
      vector = camera_range_lib.sample_camera_vector(camera_range, camera_key, index)
      image = defocus(image, depth, render_seed, vector)
    else:
      vector = fixed_vector
      if defocus is not None and render_placement == "example":
        image = defocus(image, depth, seed=render_seed)
    if camera_input:
      return {"image": image, "camera": vector}, depth[..., tf.newaxis]
    return image, depth[..., tf.newaxis]

  if scene_pool is not None:
    dataset = dataset.enumerate(start=start_index).map(
        _no_autograph(prepare_pooled), num_parallel_calls=num_parallel_calls,
        deterministic=deterministic)
  else:
    if not keyed:
      dataset = dataset.enumerate(start=start_index)
    dataset = dataset.map(_no_autograph(prepare), num_parallel_calls=num_parallel_calls,
                          deterministic=deterministic)
  dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)

  # ---------------------------------------------------------------- per batch
  if defocus is not None and render_placement == "batch":
    batch_key = tf.constant([base_seed, _BATCH_SALT], tf.int64)

    def render_batch(index, batch):
      images, depths = batch
      if camera_input:
        seed_pair = tf.random.experimental.stateless_fold_in(batch_key, index)
        return dict(images, image=defocus(images["image"], depths, seed=seed_pair)), depths
      seed_pair = tf.random.experimental.stateless_fold_in(batch_key, index)
      return defocus(images, depths, seed=seed_pair), depths

    first_batch = start_index // batch_size  # Exact when start_index is a multiple of it.
    dataset = dataset.enumerate(start=first_batch).map(
        _no_autograph(render_batch), num_parallel_calls=num_parallel_calls,
        deterministic=deterministic)

  def check(images, depths):
    if isinstance(images, dict):
      return dict(images, image=tf.debugging.assert_all_finite(
          images["image"], "make_dataset: non-finite input image")), depths
    images = tf.debugging.assert_all_finite(images, "make_dataset: non-finite input image")
    return images, depths

  dataset = dataset.map(_no_autograph(check)).prefetch(tf.data.AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = bool(deterministic)
  dataset = dataset.with_options(options)
  logging.info("make_dataset: batch %d, crop %s, camera %s, psf %s, placement %s, augment %s, "
               "seed %d%s, scene pool %s", batch_size, crop_size,
               f"range {camera_range.name}" if camera_range is not None else camera, psf,
               render_placement, augment_options, base_seed,
               ", camera vectors in the inputs" if camera_input else "", scene_pool)
  return dataset
