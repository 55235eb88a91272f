"""Tests for d3tf.data.mixing: resumable real / procedural / mixed training streams."""

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf.data import mixing
from d3tf.data import pipeline
from d3tf.data.readers import densedepth

S = 32  # Frame and scene size of the tiny streams.


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
  """Two scenes of 3 frames, 32 x 32, each frame a constant image of value 10 * frame."""
  root = tmp_path_factory.mktemp("nyu")
  for scene, numbers in (("s1", (1, 2, 3)), ("s2", (4, 5, 6))):
    directory = root / f"{scene}_out"
    directory.mkdir()
    for n in numbers:
      # PNG content under the .jpg name (Pillow reads by content): exact pixel values.
      Image.fromarray(np.full((S, S, 3), 10 * n, np.uint8)).save(directory / f"{n}.jpg",
                                                                 format="PNG")
      Image.fromarray(np.full((S, S), 25 * n, np.uint8)).save(directory / f"{n}.png")
  return densedepth.NyuDenseDepthReader(root, split="all")


def _take(stream, start, count):
  return list(stream(start).take(count).as_numpy_iterator())


def _same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert bool(x["is_procedural"]) == bool(y["is_procedural"])
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["depth"], y["depth"])


def test_reader_stream_epochs_are_seeded_permutations(reader):
  stream = mixing.reader_stream(reader, seed=3)
  values = [int(e["image"][0, 0, 0]) // 10 for e in _take(stream, 0, 12)]
  assert sorted(values[:6]) == [1, 2, 3, 4, 5, 6] and sorted(values[6:]) == [1, 2, 3, 4, 5, 6]
  assert values[:6] != values[6:] or values[:6] != [1, 2, 3, 4, 5, 6]  # Reshuffled.
  again = [int(e["image"][0, 0, 0]) // 10 for e in _take(mixing.reader_stream(reader, seed=3),
                                                          0, 12)]
  assert values == again
  late = [int(e["image"][0, 0, 0]) // 10 for e in _take(stream, 5, 7)]
  assert late == values[5:]
  ordered = [int(e["image"][0, 0, 0]) // 10
             for e in _take(mixing.reader_stream(reader, seed=3, shuffle=False), 0, 7)]
  assert ordered == [1, 2, 3, 4, 5, 6, 1]


def test_mix_choices_match_the_weight():
  for weight in (0.2, 0.5, 0.8):
    choices = mixing.mix_choices(0, 4000, weight, seed=1)
    assert set(np.unique(choices)) <= {0, 1}
    assert abs(choices.mean() - weight) < 0.03, (weight, choices.mean())
  np.testing.assert_array_equal(mixing.mix_choices(0, 50, 0.5, seed=1),
                                mixing.mix_choices(0, 50, 0.5, seed=1))
  assert not np.array_equal(mixing.mix_choices(0, 50, 0.5, seed=1),
                            mixing.mix_choices(0, 50, 0.5, seed=2))
  np.testing.assert_array_equal(mixing.mix_choices(30, 20, 0.5, seed=1),
                                mixing.mix_choices(0, 50, 0.5, seed=1)[30:])
  real, proc = mixing.mix_counts(50, 0.5, seed=1)
  assert proc == int(mixing.mix_choices(0, 50, 0.5, seed=1).sum()) and real + proc == 50


def _mixed(reader, weight, seed=0):
  return mixing.mixed_stream(
      mixing.reader_stream(reader, seed=seed), weight, seed=seed,
      procedural=mixing.procedural_stream(seed=seed, size=(S, S)))


def test_mixed_stream_fraction_determinism_and_exact_resume(reader):
  stream = _mixed(reader, 0.3, seed=5)
  elements = _take(stream, 0, 120)
  flags = np.array([bool(e["is_procedural"]) for e in elements])
  np.testing.assert_array_equal(flags, mixing.mix_choices(0, 120, 0.3, seed=5).astype(bool))
  assert abs(flags.mean() - 0.3) < 0.1, flags.mean()
  real_values = [int(e["image"][0, 0, 0]) for e in elements if not e["is_procedural"]]
  assert set(real_values) == {10, 20, 30, 40, 50, 60}
  _same(elements, _take(_mixed(reader, 0.3, seed=5), 0, 120))  # Deterministic.
  _same(_take(stream, 37, 40), elements[37:77])  # Resumes exactly.


def test_weights_zero_and_one_use_one_source(reader):
  real_only = _take(_mixed(reader, 0.0), 0, 10)
  assert not any(e["is_procedural"] for e in real_only)
  proc_only = _take(mixing.mixed_stream(None, 1.0, seed=0,
                                        procedural=mixing.procedural_stream(seed=0, size=(S, S))),
                    0, 3)
  assert all(e["is_procedural"] for e in proc_only)
  with pytest.raises(ValueError, match=r"procedural_weight must be in \[0, 1\], got 1.5"):
    mixing.mixed_stream(None, 1.5, seed=0)
  with pytest.raises(ValueError, match="needs a real stream"):
    mixing.mixed_stream(None, 0.5, seed=0)
  with pytest.raises(ValueError, match="set by procedural_stream"):
    mixing.procedural_stream(seed=0, options={"height": 64})


def test_make_dataset_resumes_a_mixed_stream_exactly(reader):
  kwargs = dict(batch_size=2, crop_size=(S, S), seed=7, deterministic=True)
  full = list(pipeline.make_dataset(_mixed(reader, 0.5, seed=7), **kwargs).take(4)
              .as_numpy_iterator())
  resumed = list(pipeline.make_dataset(_mixed(reader, 0.5, seed=7), start_index=4, **kwargs)
                 .take(2).as_numpy_iterator())
  for (xa, ya), (xb, yb) in zip(full[2:], resumed):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  assert full[0][0].shape == (2, S, S, 3) and full[0][1].shape == (2, S, S, 1)
  with pytest.raises(ValueError, match="procedural_options only apply"):
    pipeline.make_dataset(_mixed(reader, 0.5), procedural_options={"num_scenes": 2}, **kwargs)
  with pytest.raises(ValueError, match="must return a tf.data.Dataset"):
    pipeline.make_dataset(lambda start: None, **kwargs)


def test_real_and_procedural_sizes_may_differ(reader):
  stream = mixing.mixed_stream(mixing.reader_stream(reader, seed=0), 0.5, seed=0,
                               procedural=mixing.procedural_stream(seed=0, size=(64, 96)))
  assert stream(0).element_spec["image"].shape.as_list() == [None, None, 3]
  shapes = {e["image"].shape for e in _take(stream, 0, 12)}
  assert shapes == {(S, S, 3), (64, 96, 3)}
  batches = pipeline.make_dataset(stream, batch_size=4, crop_size=(S, S), seed=0,
                                  deterministic=True).take(2)
  for inputs, depth in batches:
    assert inputs.shape == (4, S, S, 3) and tf.reduce_all(depth > 0)
