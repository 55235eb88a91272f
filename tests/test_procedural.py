"""Tests of the procedural RGB-D scene generator (tiny sizes, CPU)."""

import numpy as np
import pytest

from d3tf.data import procedural
from d3tf.data import textures


@pytest.fixture(scope="module")
def scenes():
  return [procedural.generate_scene(i, split="train", seed=0, height=64, width=96)
          for i in range(6)]


def test_shapes_and_dtypes(scenes):
  for scene in scenes:
    assert scene["image"].shape == (64, 96, 3)
    assert scene["image"].dtype == np.uint8
    assert scene["depth"].shape == (64, 96)
    assert scene["depth"].dtype == np.float32


def test_depth_range_is_nyu_like_and_finite(scenes):
  depths = np.stack([s["depth"] for s in scenes])
  assert np.all(np.isfinite(depths))
  assert depths.min() >= procedural.MIN_DEPTH_M
  assert depths.max() <= procedural.MAX_DEPTH_M
  # Rooms give a spread of depths, not a constant: near floor to far wall.
  spread = depths.max(axis=(1, 2)) - depths.min(axis=(1, 2))
  assert np.all(spread > 1.0)
  # Clipping is a last guard, not what shapes the depth.
  assert np.mean(depths <= procedural.MIN_DEPTH_M) < 0.02


def test_images_are_textured_and_exposed(scenes):
  for scene in scenes:
    image = scene["image"].astype(np.float32)
    assert 30 < image.mean() < 230
    # Local texture: horizontal differences are not all zero.
    assert np.abs(np.diff(image, axis=1)).mean() > 1.0


def test_deterministic_for_seed():
  a = procedural.generate_scene(3, split="validation", seed=7, height=48, width=64)
  b = procedural.generate_scene(3, split="validation", seed=7, height=48, width=64)
  np.testing.assert_array_equal(a["image"], b["image"])
  np.testing.assert_array_equal(a["depth"], b["depth"])


def test_splits_seeds_and_indices_differ():
  def scene(**kw):
    args = dict(index=2, split="train", seed=0, height=48, width=64)
    args.update(kw)
    return procedural.generate_scene(args.pop("index"), **args)
  base = scene()
  for other in (scene(split="validation"), scene(split="test"), scene(seed=1), scene(index=3)):
    assert not np.array_equal(base["image"], other["image"])
    assert not np.array_equal(base["depth"], other["depth"])


def test_split_streams_are_disjoint():
  states = {split: procedural.scene_rng(split, 0, 0).bit_generator.state["state"]["state"]
            for split in procedural.SPLITS}
  assert len(set(states.values())) == 3


def test_content_is_independent_of_resolution():
  small = procedural.generate_scene(1, height=32, width=32)["depth"]
  large = procedural.generate_scene(1, height=64, width=64)["depth"]
  # The same scene at twice the resolution: pixel (i, j) of the small image
  # sees about what pixels (2i..2i+1, 2j..2j+1) of the large one see.
  agree = np.abs(small - large[::2, ::2]) < 0.1 * small
  assert agree.mean() > 0.9


def test_supersampling_keeps_the_scene():
  plain = procedural.generate_scene(0, height=32, width=32)
  fine = procedural.generate_scene(0, height=32, width=32, supersample=2)
  assert fine["image"].shape == plain["image"].shape
  diff = np.abs(fine["image"].astype(int) - plain["image"].astype(int))
  assert np.median(diff) < 12


def test_bad_arguments_name_the_value():
  with pytest.raises(ValueError, match="'tra1n'"):
    procedural.generate_scene(0, split="tra1n")
  with pytest.raises(ValueError, match="-1"):
    procedural.generate_scene(-1)
  with pytest.raises(ValueError, match="height"):
    procedural.generate_scene(0, height=8)
  with pytest.raises(ValueError, match="supersample"):
    procedural.generate_scene(0, supersample=5)


def test_texture_fades_to_mean_beyond_nyquist():
  rng = np.random.default_rng(0)
  material = textures.make_material(rng, "checker", np.array([0.2, 0.4, 0.6], np.float32))
  u = np.linspace(0.0, 50.0, 4000, dtype=np.float32)
  v = np.full_like(u, 0.37)
  sharp = material(u, v, np.full_like(u, 1e-4))
  blurred = material(u, v, np.full_like(u, 5.0))  # Pixels far larger than a tile.
  assert sharp.std(axis=0).max() > 3 * blurred.std(axis=0).max()


def test_value_noise_range():
  x = np.linspace(-10, 10, 10000, dtype=np.float32)
  n = textures.value_noise(x, x * 0.7)
  assert n.dtype == np.float32
  assert -1.0 <= n.min() and n.max() <= 1.0
  assert n.std() > 0.1


def test_procedural_dataset_follows_the_contract():
  import tensorflow as tf
  ds = procedural.procedural_dataset("test", 3, height=32, width=48, seed=5)
  assert ds.element_spec["image"] == tf.TensorSpec([32, 48, 3], tf.uint8)
  assert ds.element_spec["depth"] == tf.TensorSpec([32, 48], tf.float32)
  elements = list(ds.as_numpy_iterator())
  assert len(elements) == 3
  direct = procedural.generate_scene(1, split="test", seed=5, height=32, width=48)
  np.testing.assert_array_equal(elements[1]["image"], direct["image"])
  np.testing.assert_array_equal(elements[1]["depth"], direct["depth"])


def test_procedural_dataset_endless():
  ds = procedural.procedural_dataset("train", None, height=32, width=32, start_index=10)
  first = next(iter(ds.skip(4)))
  direct = procedural.generate_scene(14, height=32, width=32)
  np.testing.assert_array_equal(first["depth"].numpy(), direct["depth"])
