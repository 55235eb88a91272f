"""The scene pool: deterministic, resumable mid-generation, fresh crops, refreshed pools."""

import numpy as np
import pytest
import tensorflow as tf

from d3tf.data import make_dataset
from d3tf.data import scene_pool
from d3tf.experiment import config as config_lib
from d3tf.optics import Camera

# Source element j: channel 0 holds j (which member an example came from), channels 1 and 2 a
# ramp along x and y (where its crop was taken); depth 1 + j / 100 metres.
_SIDE = 64


def _source(num=1000):
  ramp = np.arange(_SIDE, dtype=np.uint8)

  def element(j):
    value = tf.cast(j, tf.uint8)
    image = tf.stack([tf.fill([_SIDE, _SIDE], value),
                      tf.tile(ramp[tf.newaxis, :], [_SIDE, 1]),
                      tf.tile(ramp[:, tf.newaxis], [1, _SIDE])], axis=-1)
    depth = tf.fill([_SIDE, _SIDE], 1.0 + tf.cast(j, tf.float32) / 100)
    return {"image": image, "depth": depth}

  return tf.data.Dataset.range(num).map(element)


def _examples(pool, start=0, count=12, seed=0, flip=False, **kwargs):
  from d3tf.data import AugmentOptions  # pylint: disable=g-import-not-at-top
  augment = AugmentOptions(scale_range=(1.0, 1.0), flip=flip, channel_gain_range=(1.0, 1.0),
                           brightness_range=(1.0, 1.0))
  kwargs = {"shuffle_buffer": 0, "camera": None, **kwargs}
  ds = make_dataset(kwargs.pop("source", None) or _source(), batch_size=1, crop_size=(32, 32),
                    augment=augment, seed=seed, deterministic=True, start_index=start,
                    scene_pool=pool, **kwargs)
  return [(images[0], depths[0]) for images, depths in ds.take(count).as_numpy_iterator()]


def _member(image):
  return int(round(float(image[0, 0, 0]) * 255))


def _offset(image):
  return int(round(float(image[0, 0, 1]) * 255)), int(round(float(image[0, 0, 2]) * 255))


def test_members_follow_generations_and_pools_refresh():
  pool = scene_pool.PoolOptions(size=3, reuse=2, window=(40, 40))
  examples = _examples(pool, count=12)
  members = [_member(image) for image, _ in examples]
  # Generation 0: members 0-2, each twice, round robin; generation 1: members 3-5 (refreshed).
  assert members == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5]
  assert members == [scene_pool.member_of(i, pool) for i in range(12)]
  # Depth is cut from the same member as the image.
  for (image, depth), member in zip(examples, members):
    np.testing.assert_allclose(depth, 1.0 + member / 100, rtol=1e-6)


def test_reuses_of_a_member_get_fresh_crops():
  pool = scene_pool.PoolOptions(size=2, reuse=8)
  examples = _examples(pool, count=16)
  by_member = {}
  for image, _ in examples:
    by_member.setdefault(_member(image), []).append(_offset(image))
  assert set(by_member) == {0, 1}
  for offsets in by_member.values():
    assert len(offsets) == 8 and len(set(offsets)) >= 6  # 33x33 whole-pixel offsets.
  for image, _ in examples:  # Whole-pixel crops: the ramp steps by exactly 1.
    np.testing.assert_allclose(np.diff(image[0, :, 1]) * 255, 1.0, atol=1e-3)


def test_deterministic_and_resumable_at_any_example():
  pool = scene_pool.PoolOptions(size=2, reuse=3)
  stream = _examples(pool, count=14, seed=5, flip=True)
  assert all(np.array_equal(a[0], b[0]) for a, b in zip(stream, _examples(pool, count=14, seed=5,
                                                                          flip=True)))
  other_seed = _examples(pool, count=14, seed=6, flip=True)
  assert any(not np.array_equal(a[0], b[0]) for a, b in zip(stream, other_seed))
  for start in (1, 5, 6, 9):  # Mid-generation, at a generation's start, in the next one.
    resumed = _examples(pool, start=start, count=14 - start, seed=5, flip=True)
    for (image, depth), (want_image, want_depth) in zip(resumed, stream[start:]):
      np.testing.assert_array_equal(image, want_image)
      np.testing.assert_array_equal(depth, want_depth)


def test_procedural_pool_resumes():
  """The default job's source: procedural scenes generated at the window's size."""
  pool = scene_pool.PoolOptions(size=2, reuse=2)
  stream = _examples(pool, count=7, seed=1, source="procedural", shuffle_buffer=None)
  assert stream[0][0].shape == (32, 32, 3) and stream[0][1].shape == (32, 32, 1)
  assert not np.array_equal(stream[0][1], stream[4][1])  # Generation 1 has new scenes.
  resumed = _examples(pool, start=3, count=4, seed=1, source="procedural", shuffle_buffer=None)
  for (image, depth), (want_image, want_depth) in zip(resumed, stream[3:]):
    np.testing.assert_array_equal(image, want_image)
    np.testing.assert_array_equal(depth, want_depth)


def test_pooled_render_gets_sensor_noise_and_rounding_after_the_crop():
  pool = scene_pool.PoolOptions(size=2, reuse=2)
  examples = _examples(pool, count=3, seed=1, source="procedural", shuffle_buffer=None,
                       camera=Camera.nyu(), render_options={"noise_read_std": 0.05,
                                                            "output_bits": 8})
  image = examples[0][0]
  np.testing.assert_allclose(image * 255, np.round(image * 255), atol=1e-3)
  assert 0.0 <= image.min() and image.max() <= 1.0


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 0}, "scene pool size must be an integer in [1, 4096], got 0"),
    ({"reuse": 2.5}, "scene pool reuse must be an integer in [1, 1024], got 2.5"),
    ({"window": (16, 64)}, "scene pool window (16, 64) must be at least the crop size"),
    ({"engine": "fast"}, "scene pool engine must be one of ('fused', 'reference', 'tiled') or "
                         "None, got 'fast'"),
])
def test_bad_pool_options_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                     .replace("[", r"\[").replace("]", r"\]")):
    scene_pool.PoolOptions(**kwargs).window_for((32, 32))


def test_pool_only_for_training_streams():
  with pytest.raises(ValueError, match="scene_pool applies to training streams"):
    make_dataset(_source(), batch_size=1, crop_size=(32, 32), augment=False, repeat=False,
                 scene_pool=scene_pool.PoolOptions())


@pytest.mark.parametrize("field, value, message", [
    ("scene_pool_size", -1, "data.scene_pool_size must be >= 0, got -1"),
    ("scene_pool_size", 5000, "data.scene_pool_size must be <= 4096, got 5000"),
    ("scene_reuse", 0, "data.scene_reuse must be >= 1, got 0"),
])
def test_config_validates_pool_fields(field, value, message):
  with pytest.raises(config_lib.ConfigError, match=message) as error:
    config_lib.ExperimentConfig().replace(data={field: value})
  assert error.value.field == f"data.{field}" and error.value.value == value


def test_pool_resolves_on_for_procedural_only():
  procedural = config_lib.ExperimentConfig().resolved().data
  assert procedural.scene_pool_size == config_lib.DEFAULT_SCENE_POOL_SIZE
  real = config_lib.ExperimentConfig().replace(
      data={"dataset": "nyu_mat", "data_path": "x.mat"}).resolved().data
  assert real.scene_pool_size == 0
  off = config_lib.ExperimentConfig().replace(data={"scene_pool_size": 0}).resolved().data
  assert off.scene_pool_size == 0


@pytest.mark.parametrize("crop, batch, size", [
    (64, 8, 64), (128, 8, 64), (192, 8, 28), (256, 4, 16), (256, 32, 32), (512, 4, 8)])
def test_the_default_pool_holds_fewer_windows_of_larger_crops(crop, batch, size):
  data = config_lib.ExperimentConfig().replace(
      data={"crop_size": crop, "batch_size": batch}).resolved().data
  assert data.scene_pool_size == size == config_lib.default_scene_pool_size(crop, batch)
  explicit = config_lib.ExperimentConfig().replace(
      data={"crop_size": crop, "batch_size": batch, "scene_pool_size": 64}).resolved().data
  assert explicit.scene_pool_size == 64


def test_a_pool_window_is_a_wider_view_around_the_crop_sized_scene():
  from d3tf.data import procedural  # pylint: disable=g-import-not-at-top
  crop = procedural.generate_scene(3, height=32, width=32)
  window = procedural.generate_scene(3, height=64, width=64,
                                     focal_px=procedural.focal_length_px(32))
  np.testing.assert_allclose(window["depth"][16:48, 16:48], crop["depth"], rtol=1e-5)
  with pytest.raises(ValueError, match="focal_px must be a positive number or None, got -1"):
    procedural.generate_scene(3, height=32, width=32, focal_px=-1)


def test_auto_engine_renders_large_pool_windows_with_the_tiled_engine():
  from d3tf.experiment.task import DepthTask  # pylint: disable=g-import-not-at-top
  default = config_lib.ExperimentConfig()
  assert default.render.engine == "auto"
  # The default job's 256x256 windows are tiled; a small run's windows skip the compilation.
  assert DepthTask(default)._scene_pool().engine == "tiled"  # pylint: disable=protected-access
  small = DepthTask(default.replace(data={"crop_size": 64}))
  assert small._scene_pool().engine == "reference"  # pylint: disable=protected-access
  # Anything else "auto" renders (streams, validation, the render CLI) is the reference engine.
  assert default.render.engine_for() == "reference"
  assert "engine" not in default.render.render_options()
  # An explicit engine is used everywhere, the pool included.
  explicit = default.replace(render={"engine": "reference"})
  assert DepthTask(explicit)._scene_pool().engine == "reference"  # pylint: disable=protected-access
  assert explicit.render.engine_for(pool_window_pixels=1 << 20) == "reference"
  fused = config_lib.RenderConfig(engine="fused")
  assert fused.engine_for() == "fused" and fused.render_options()["engine"] == "fused"
