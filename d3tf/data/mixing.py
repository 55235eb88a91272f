"""Resumable training streams: real frames, procedural scenes, or a weighted mixture.

A *stream* here is a function ``stream(start_index) -> tf.data.Dataset``: the
endless, already shuffled sequence of source elements (the element contract,
``{"image": uint8 [H, W, 3], "depth": float32 [H, W]}`` plus
``"is_procedural": bool``), started at example ``start_index``. Pass it as
``source`` to :func:`d3tf.data.make_dataset`, which calls it with its own
``start_index``: a resumed run then sees exactly the examples an
uninterrupted run would have seen, and starting late costs no file decoding
and no scene generation.

* :func:`reader_stream`: a reader's samples in seeded, reshuffled epochs
  (``Dataset.range(n).shuffle(n).repeat()``: a full permutation per epoch,
  better than a 64-example buffer for ~1,000 correlated video frames). A late
  start skips sample *positions*, never decoded files.
* :func:`procedural_stream`: the endless procedural scenes, by default at
  the NYU frames' size (480 x 640) so that crops of both sources cover the
  same share of a room.
* :func:`mixed_stream`: both in one stream. Example ``i`` is procedural when
  a stateless uniform draw keyed by ``(seed, i)`` falls below
  ``procedural_weight`` (``Dataset.choose_from_datasets`` on that choice
  sequence), so the choice of any example is known without drawing the ones
  before it. Resuming at ``k`` counts the procedural choices among the first
  ``k`` (a cheap pass over integers), starts the procedural source at that
  count and the real stream at the rest. ``Dataset.sample_from_datasets``
  would mix alike, but its selector is a stateful random stream that cannot
  be started mid-way.

Resume is exact as long as no sample is skipped for a bad file
(``on_error="skip"``): a skipped sample shifts the real stream by one from
that point on, which a resumed run does not know about.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf

from d3tf.data import procedural

Stream = Callable[[int], tf.data.Dataset]

#: Size of the NYU frames (height, width), the default size of the procedural scenes.
NYU_FRAME_SIZE = (480, 640)
# Separates the choice stream's seeds from the other seed streams.
_MIX_SALT = 0x313C


def _check_start(start_index) -> int:
  if isinstance(start_index, bool) or not isinstance(start_index, (int, np.integer)) or (
      start_index < 0):
    raise ValueError(f"start_index must be an integer >= 0, got {start_index!r}")
  return int(start_index)


def _check_seed(seed) -> int:
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
  return int(seed)


def _contract(element, is_procedural: bool):
  return {"image": element["image"], "depth": element["depth"],
          "is_procedural": tf.constant(is_procedural)}


def reader_stream(reader, *, seed: int, shuffle: bool = True,
                  num_parallel_calls: int | None = None) -> Stream:
  """An endless, seeded stream of a reader's samples, reshuffled every epoch.

  Args:
    reader: A :class:`d3tf.data.readers.DepthReader` (its ``on_error``
      applies).
    seed: Seed of the per-epoch permutations.
    shuffle: False keeps the reader's order, epoch after epoch.
    num_parallel_calls: Parallel loads (default AUTOTUNE; order kept).

  Returns:
    ``stream(start_index)``: example ``i`` of ``stream(k)`` is example
    ``k + i`` of ``stream(0)``.

  Raises:
    ValueError: the reader has no samples, or a bad seed.
  """
  seed = _check_seed(seed)
  num = len(reader)
  if not num:
    raise ValueError(f"{reader.source}: no samples to stream")

  def stream(start_index: int) -> tf.data.Dataset:
    start_index = _check_start(start_index)
    indices = tf.data.Dataset.range(num)
    if shuffle:
      indices = indices.shuffle(num, seed=seed, reshuffle_each_iteration=True)
    indices = indices.repeat()
    if start_index:
      indices = indices.skip(start_index)
    dataset = reader.as_dataset(indices=indices, num_parallel_calls=num_parallel_calls)
    return dataset.map(lambda e: _contract(e, False))

  return stream


def procedural_stream(*, seed: int, split: str = "train",
                      size: Sequence[int] = NYU_FRAME_SIZE,
                      options: Mapping[str, Any] | None = None,
                      num_parallel_calls: int | None = None) -> Stream:
  """The endless procedural scenes as a stream (scene ``i`` = ``generate_scene(i)``).

  Args:
    seed: Seed of the scenes.
    split: Procedural split ("train", "validation", "test").
    size: (height, width) of the scenes.
    options: Other keyword arguments of :func:`d3tf.data.procedural_dataset`
      (e.g. ``supersample``).
    num_parallel_calls: Parallel scene generation (default AUTOTUNE).
  """
  seed = _check_seed(seed)
  height, width = (int(v) for v in size)
  kwargs = dict(options or {})
  for key in ("num_scenes", "start_index", "height", "width", "seed"):
    if key in kwargs:
      raise ValueError(f"procedural option {key!r} is set by procedural_stream, got "
                       f"{kwargs[key]!r}")
  kwargs.setdefault("deterministic", True)
  kwargs.setdefault("num_parallel_calls", num_parallel_calls)
  procedural.scene_rng(split, 0, seed)  # Validates the split and seed now.

  def stream(start_index: int) -> tf.data.Dataset:
    start_index = _check_start(start_index)
    dataset = procedural.procedural_dataset(split, None, height=height, width=width, seed=seed,
                                            start_index=start_index, **kwargs)
    return dataset.map(lambda e: _contract(e, True))

  return stream


def _choice_fn(seed: int, procedural_weight: float):
  key = tf.constant([seed, _MIX_SALT], tf.int64)

  def choose(index):
    u = tf.random.stateless_uniform(
        [], seed=tf.random.experimental.stateless_fold_in(key, index))
    return tf.cast(u < procedural_weight, tf.int64)

  return choose


def mix_choices(start_index: int, count: int, procedural_weight: float, seed: int) -> np.ndarray:
  """Which source examples ``start_index .. start_index + count - 1`` come from (1 = procedural).

  The same sequence :func:`mixed_stream` follows.
  """
  start_index, seed = _check_start(start_index), _check_seed(seed)
  choose = _choice_fn(seed, float(procedural_weight))
  ds = tf.data.Dataset.range(start_index, start_index + int(count)).map(choose)
  return np.fromiter(ds.as_numpy_iterator(), dtype=np.int64, count=int(count))


def mix_counts(start_index: int, procedural_weight: float, seed: int) -> tuple[int, int]:
  """``(real, procedural)`` examples among the first ``start_index`` of a mixed stream."""
  start_index, seed = _check_start(start_index), _check_seed(seed)
  if not start_index:
    return 0, 0
  choose = _choice_fn(seed, float(procedural_weight))
  n_procedural = int(tf.data.Dataset.range(start_index).map(choose).reduce(
      tf.constant(0, tf.int64), lambda total, c: total + c).numpy())
  return start_index - n_procedural, n_procedural


def mixed_stream(real: Stream | None, procedural_weight: float, *, seed: int,
                 procedural: Stream | None = None) -> Stream:
  """Real and procedural examples in one stream, a ``procedural_weight`` share procedural.

  Args:
    real: The real stream (e.g. :func:`reader_stream`); may be None only
      with ``procedural_weight == 1``.
    procedural_weight: Probability that an example is procedural, in [0, 1]:
      0 = real frames only, 1 = procedural scenes only (the other source is
      then never built).
    seed: Seed of the choice sequence (and of the default procedural stream).
    procedural: The procedural stream; default :func:`procedural_stream`
      with ``seed`` at the NYU frames' size.

  Returns:
    ``stream(start_index)`` of ``{"image", "depth", "is_procedural"}``;
    example ``i`` of ``stream(k)`` equals example ``k + i`` of ``stream(0)``.

  Raises:
    ValueError: a weight outside [0, 1], or no real stream for a weight below 1.
  """
  seed = _check_seed(seed)
  weight = float(procedural_weight)
  if not 0.0 <= weight <= 1.0:
    raise ValueError(f"procedural_weight must be in [0, 1], got {procedural_weight!r}")
  if real is None and weight < 1.0:
    raise ValueError(f"procedural_weight={weight:g} < 1 needs a real stream, got None")
  if weight == 0.0:
    return real
  if procedural is None:
    procedural = procedural_stream(seed=seed)
  if weight == 1.0:
    return procedural
  choose = _choice_fn(seed, weight)

  def stream(start_index: int) -> tf.data.Dataset:
    start_index = _check_start(start_index)
    n_real, n_procedural = mix_counts(start_index, weight, seed)
    choices = tf.data.Dataset.counter(start=start_index, dtype=tf.int64).map(choose)
    sources = [real(n_real), procedural(n_procedural)]
    # choose_from_datasets relaxes differing static sizes to [None, None, ...].
    return tf.data.Dataset.choose_from_datasets(sources, choices, stop_on_empty_dataset=True)

  return stream

