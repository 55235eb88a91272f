"""A pool of rendered scenes, each reused for several fresh crops: a cheap training stream.

Generating a procedural scene (Python, holds the GIL) and rendering its defocus
cost far more CPU than the crop, flip and noise of an example: fed one fresh
scene per example, the default training job spent about as much CPU on its
input as on its train step (``benchmarks/results/train_input.md``). The pool
pays that cost once per scene and draws many examples from it:

* The source is read in *generations* of ``size`` members (scenes or frames).
  Each member is prepared once: cut to a ``window`` larger than the training
  crop (a random window of a real frame, or the whole procedural scene,
  generated at the window's size), zoomed if the augmentation zooms, and
  rendered with the camera's defocus, without sensor noise.
* Each generation then yields ``size * reuse`` examples: example ``k`` of the
  generation is a fresh random crop of member ``k % size`` (each member
  ``reuse`` times, each batch from distinct members), flipped, colour-gained
  and given fresh sensor noise (all seeded by the example's index).
* The next generation reads the next ``size`` members of the source: the pool
  is refreshed whole, generation by generation, and it is built in the
  background while the previous one is consumed.

For a fixed camera, cropping after rendering gives the same image as rendering
after cropping, except within a blur radius of the crop's border, where the
render of the larger window sees the real scene instead of a reflected
(``border="reflect"``) or black one: crop-after-render is the better image
there. Crops are taken at whole-pixel offsets (no resampling). Colour gains act
on the rendered image (as a camera's white balance does) instead of the sharp
one, and the zoom of ``AugmentOptions.scale_range`` is drawn once per member
and generation, before rendering, so that blur and depth stay consistent.

The trade-off: ``reuse`` times fewer distinct scenes per step (each a
``window``-sized scene, e.g. twice the crop's side, so four crops' worth of
pixels), for about ``reuse`` times less CPU per example spent on generating
and rendering.

Determinism and resume: example ``i``'s member is source element
``(i // (size * reuse)) * size + i % (size * reuse) % size`` and every random
draw is keyed by ``(seed, i)`` or by ``(seed, member index)`` with stateless
ops, so the stream is a pure function of the seed; :func:`pooled_examples`
started at ``start_index`` rebuilds only that example's generation and yields
exactly what an uninterrupted stream yields from there.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from d3tf.data import augment as augment_lib
from d3tf.optics import color
from d3tf.optics import noise as noise_lib

#: Largest pool size and reuse accepted (a pool holds ``size`` windows in memory).
MAX_POOL_SIZE = 4096
MAX_REUSE = 1024


@dataclasses.dataclass(frozen=True)
class PoolOptions:
  """Settings of the scene pool.

  Attributes:
    size: Members (scenes or frames) per generation, >= 1. Memory: two
      generations of ``size`` windows (float32 image and depth: about 1 MB
      each at 256x256).
    reuse: Examples drawn from each member per generation, >= 1 (1: every
      example from its own member, as without a pool but with crops taken
      after rendering).
    window: (height, width) of the rendered windows, or None for twice the
      crop's size. Must be at least the crop's size; real frames must be at
      least the window's size.
    engine: The renderer's engine for the members (one of
      :data:`d3tf.optics.render.ENGINES`), or None for the pipeline's render
      options' engine. Members all have the window's shape, the case the
      compiled "tiled" engine is made for (one compilation, ~5 s, then about
      2x less CPU per member than "reference" at 256x256).
  """

  size: int = 64
  reuse: int = 64
  window: tuple[int, int] | None = None
  engine: str | None = None

  def __post_init__(self):
    for name, value, high in (("size", self.size, MAX_POOL_SIZE),
                              ("reuse", self.reuse, MAX_REUSE)):
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
          1 <= value <= high):
        raise ValueError(f"scene pool {name} must be an integer in [1, {high}], got {value!r}")
    if self.window is not None:
      object.__setattr__(self, "window", _pair("scene pool window", self.window))
    if self.engine is not None:
      from d3tf.optics.render import ENGINES  # pylint: disable=g-import-not-at-top
      if self.engine not in ENGINES:
        raise ValueError(f"scene pool engine must be one of {ENGINES} or None, "
                         f"got {self.engine!r}")

  def window_for(self, crop_size: Sequence[int]) -> tuple[int, int]:
    """The window (height, width) for crops of ``crop_size``; checks it holds them."""
    crop_h, crop_w = (int(v) for v in crop_size)
    window = self.window or (2 * crop_h, 2 * crop_w)
    if window[0] < crop_h or window[1] < crop_w:
      raise ValueError(f"scene pool window {window} must be at least the crop size "
                       f"{(crop_h, crop_w)}")
    return window

  @property
  def examples_per_generation(self) -> int:
    return self.size * self.reuse


def _pair(name: str, value) -> tuple[int, int]:
  try:
    height, width = value
  except (TypeError, ValueError):
    raise ValueError(f"{name} must be a (height, width) pair, got {value!r}") from None
  for v in (height, width):
    if isinstance(v, bool) or int(v) != v or v < 1:
      raise ValueError(f"{name} must be positive integers, got {value!r}")
  return int(height), int(width)


def member_of(index: int, options: PoolOptions) -> int:
  """The source element (pool member) that example ``index`` of the stream is cut from."""
  generation, k = divmod(int(index), options.examples_per_generation)
  return generation * options.size + k % options.size


def first_member(start_index: int, options: PoolOptions) -> int:
  """The first source element a stream started at ``start_index`` reads."""
  return int(start_index) // options.examples_per_generation * options.size


def random_crop(image: tf.Tensor, depth: tf.Tensor, crop_size: Sequence[int],
                seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """A random ``crop_size`` window of image [H, W, C] and depth [H, W], at whole pixels.

  Raises (when run) InvalidArgumentError if the image is smaller than the crop.
  """
  crop_h, crop_w = (int(v) for v in crop_size)
  # The offset tf.image.stateless_random_crop draws for image and depth stacked as one
  # [H, W, C + 1] tensor, without building that stack (a copy of the whole window).
  shape = tf.shape(depth)
  limit = shape - tf.constant([crop_h, crop_w]) + 1
  with tf.control_dependencies([tf.debugging.assert_positive(
      limit, "random_crop: the window is smaller than the crop")]):
    offset = tf.random.stateless_uniform([3], seed=seed, maxval=tf.int32.max, dtype=tf.int32)
    offset = offset[:2] % limit
  return (tf.slice(image, tf.concat([offset, [0]], 0), [crop_h, crop_w, -1]),
          tf.slice(depth, offset, [crop_h, crop_w]))


def prepare_member(image: tf.Tensor, depth: tf.Tensor, window: Sequence[int], seed: tf.Tensor,
                   augment_options: augment_lib.AugmentOptions | None,
                   defocus: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None
                   ) -> tuple[tf.Tensor, tf.Tensor]:
  """Cuts a member's window (zoomed if the augmentation zooms) and renders it.

  Args:
    image: float32 [H, W, 3] in [0, 1].
    depth: float32 [H, W] metres, 0 = invalid.
    window: (height, width) of the window.
    seed: Shape-[2] integer seed of the window's position and zoom.
    augment_options: The augmentation (its zoom, if any, applies here).
    defocus: ``defocus(image, depth)`` rendering without sensor noise, or
      None to keep the sharp image.

  Returns:
    The (rendered) window image [h, w, 3] and its depth [h, w].
  """
  scale_range = augment_options.scale_range if augment_options is not None else (1.0, 1.0)
  if tuple(scale_range) != (1.0, 1.0):
    image, depth = augment_lib.random_scale_crop(image, depth, window, scale_range, seed,
                                                 augment_options.scale_depth)
  else:
    image, depth = random_crop(image, depth, window, seed)
  if defocus is not None:
    image = defocus(image, depth)
  return image, depth


def augment_crop(image: tf.Tensor, depth: tf.Tensor, crop_size: Sequence[int], seed: tf.Tensor,
                 augment_options: augment_lib.AugmentOptions
                 ) -> tuple[tf.Tensor, tf.Tensor]:
  """An example from a pool member: whole-pixel random crop, flip, colour gains."""
  seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
  image, depth = random_crop(image, depth, crop_size, seeds[0])
  if augment_options.flip:
    image, depth = augment_lib.random_flip(image, depth, seeds[1])
  if (tuple(augment_options.channel_gain_range) != (1.0, 1.0)
      or tuple(augment_options.brightness_range) != (1.0, 1.0)):
    image = augment_lib.random_colour_gains(image, augment_options.channel_gain_range,
                                            augment_options.brightness_range, seeds[2])
  return image, depth


def make_sensor_finish(shot_gain: float, read_std: float, output_bits: int
                       ) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None:
  """What the renderer does after the blur, for images rendered without it.

  Returns ``finish(image, seed)``: sensor noise in linear light, then rounding
  to ``2**output_bits`` levels (as :func:`d3tf.optics.render_defocus` does
  with those options), or None when there is nothing to do.
  """
  noisy = shot_gain > 0 or read_std > 0
  if not noisy and not output_bits:
    return None

  def finish(image, seed):
    if noisy:
      linear = noise_lib.add_sensor_noise(color.srgb_to_linear(image), shot_gain, read_std, seed)
      image = tf.clip_by_value(color.linear_to_srgb(linear), 0.0, 1.0)
    if output_bits:
      levels = float(2 ** int(output_bits) - 1)
      image = tf.round(image * levels) / levels
    return image

  return finish


def pooled_examples(members: tf.data.Dataset,
                    prepare: Callable[[tf.Tensor, dict], tuple[tf.Tensor, tf.Tensor]],
                    options: PoolOptions, start_index: int = 0,
                    num_parallel_calls: int | None = None) -> tf.data.Dataset:
  """The pooled stream: example ``i`` is one of ``reuse`` uses of member ``member_of(i)``.

  Args:
    members: The endless source elements (dicts with "image" and "depth"),
      starting at element ``first_member(start_index, options)``.
    prepare: ``prepare(member_index, element) -> (image, depth)``: the
      member's rendered window (see :func:`prepare_member`), same shape for
      every member.
    options: The pool's settings.
    start_index: The first example, as if that many had been drawn.
    num_parallel_calls: Parallel member preparations (default AUTOTUNE;
      order kept).

  Returns:
    A dataset of ``{"image", "depth"}`` windows, one per example, in order;
    the caller crops and augments example ``i`` with its own seed.
  """
  size, per_generation = options.size, options.examples_per_generation
  first_generation, first_k = divmod(int(start_index), per_generation)
  first = first_generation * size
  # As written, not converted by AutoGraph (TF ops; ``if`` only on Python values): converting
  # the renderer it calls costs seconds of start-up per dataset.
  prepared = members.enumerate(start=first).map(
      tf.autograph.experimental.do_not_convert(prepare),
      num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE, deterministic=True)
  # One generation per element; the next one is built while this one is used.
  pools = prepared.batch(size, drop_remainder=True).prefetch(1)

  def expand(generation, pool):
    images, depths = pool
    start = tf.where(generation == first_generation, tf.constant(first_k, tf.int64),
                     tf.constant(0, tf.int64))

    def take(k):
      slot = k % size
      return {"image": images[slot], "depth": depths[slot]}

    return tf.data.Dataset.range(start, per_generation).map(take)

  return pools.enumerate(start=first_generation).flat_map(
      tf.autograph.experimental.do_not_convert(expand))
