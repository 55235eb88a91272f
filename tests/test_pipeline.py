"""Tests of the tf.data pipeline and its augmentation (tiny sizes, CPU)."""

import numpy as np
import pytest
import tensorflow as tf

from d3tf.data import augment
from d3tf.data import pipeline
from d3tf.optics import Camera

H, W = 96, 160  # Source size of the synthetic examples.


def _ramp_source(num=4, nan_holes=False):
  """Images whose colour encodes position; depth is a function of the colour."""
  x = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :].repeat(H, 0)
  y = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None].repeat(W, 1)
  image = np.stack([x, y, np.full_like(x, 0.5)], -1)
  image_u8 = np.round(image * 255).astype(np.uint8)
  depth = 1.0 + 4.0 * image_u8[..., 0] / 255.0 + 2.0 * image_u8[..., 1] / 255.0
  depth = depth.astype(np.float32)
  if nan_holes:
    depth[10:20, 10:30] = np.nan
    depth[40:50, 60:70] = 0.0
    depth[70:75, 5:15] = -1.0
  images = np.repeat(image_u8[None], num, 0)
  depths = np.repeat(depth[None], num, 0)
  return tf.data.Dataset.from_tensor_slices({"image": images, "depth": depths,
                                             "name": [f"ex{i}" for i in range(num)]})


def _depth_of_colour(images):
  return 1.0 + 4.0 * images[..., 0] + 2.0 * images[..., 1]


def test_procedural_batches_shapes_and_values():
  ds = pipeline.make_dataset("procedural", batch_size=2, crop_size=(64, 96), seed=0,
                             deterministic=True)
  assert ds.element_spec[0].shape.as_list() == [2, 64, 96, 3]
  assert ds.element_spec[1].shape.as_list() == [2, 64, 96, 1]
  inputs, depth = next(iter(ds))
  assert inputs.dtype == tf.float32 and depth.dtype == tf.float32
  assert 0.0 <= float(tf.reduce_min(inputs)) and float(tf.reduce_max(inputs)) <= 1.0
  d = depth.numpy()
  assert np.all(np.isfinite(d))
  # Zoom augmentation divides depth by up to 1.5: 0.5 m / 1.5 .. 10 m.
  assert d.min() >= 0.5 / 1.5 - 1e-6 and d.max() <= 10.0


def test_augmentation_keeps_image_and_depth_aligned():
  options = augment.AugmentOptions(scale_range=(1.2, 1.6), scale_depth=False,
                                   channel_gain_range=(1.0, 1.0), brightness_range=(1.0, 1.0))
  ds = pipeline.make_dataset(_ramp_source(8), batch_size=8, crop_size=(64, 96), augment=options,
                             seed=1, repeat=False, deterministic=True)
  images, depths = next(iter(ds))
  images, depths = images.numpy(), depths.numpy()[..., 0]
  # Depth still follows the colour at every pixel (to interpolation error).
  error = np.abs(depths - _depth_of_colour(images))
  assert error.max() < 0.08, error.max()
  # And the augmentation did something: some crops are flipped, all are zoomed.
  slopes = np.sign(images[:, 32, -1, 0] - images[:, 32, 0, 0])
  assert (slopes < 0).any() and (slopes > 0).any()
  # A zoom >= 1.2 makes 96 output columns span at most 95 / 1.2 input columns.
  spans = np.abs(images[:, 32, -1, 0] - images[:, 32, 0, 0])
  assert np.all(spans <= 95 / 1.2 / (W - 1) + 0.01)


def test_scale_augmentation_divides_depth_and_keeps_zeros():
  image = np.full((H, W, 3), 255, np.uint8)
  image[30:70, 40:120] = 0
  depth = np.full((H, W), 3.0, np.float32)
  depth[30:70, 40:120] = 0.0
  source = tf.data.Dataset.from_tensors({"image": image, "depth": depth}).repeat(4)
  options = augment.AugmentOptions(scale_range=(1.5, 1.5), flip=True,
                                   channel_gain_range=(1.0, 1.0), brightness_range=(1.0, 1.0))
  ds = pipeline.make_dataset(source, batch_size=4, crop_size=(64, 96), augment=options, seed=2,
                             repeat=False)
  images, depths = next(iter(ds))
  d = depths.numpy()[..., 0]
  values = np.unique(d)
  np.testing.assert_allclose(values[values > 0], [2.0], rtol=1e-6)
  assert (d == 0).any()
  # Invalid pixels are exactly where the black square went.
  assert images.numpy()[..., 0][d == 0].mean() < 0.1
  assert images.numpy()[..., 0][d > 0].mean() > 0.9


def test_invalid_depth_becomes_zero_never_nan():
  camera = Camera.nyu(focus_distance_m=2.0)
  ds = pipeline.make_dataset(_ramp_source(2, nan_holes=True), batch_size=2, crop_size=None,
                             augment=False, camera=camera, repeat=False)
  images, depths = next(iter(ds))
  assert np.all(np.isfinite(images.numpy())) and np.all(np.isfinite(depths.numpy()))
  assert (depths.numpy() == 0).sum() == 2 * (200 + 100 + 50)
  assert depths.numpy().min() == 0.0


def test_eval_path_center_crops_to_multiple_of_32_without_resampling():
  ds = pipeline.make_dataset(_ramp_source(3), batch_size=2, crop_size=None, augment=False,
                             repeat=False)
  batches = list(ds.as_numpy_iterator())
  assert [b[0].shape[0] for b in batches] == [2, 1]
  images, depths = batches[0]
  assert images.shape == (2, 96, 160, 3)  # Already multiples of 32: unchanged.
  source = next(iter(_ramp_source(1)))
  np.testing.assert_array_equal(depths[0, ..., 0], source["depth"].numpy())
  # An odd size: 100 x 130 -> 96 x 128, centred.
  odd = tf.data.Dataset.from_tensors({"image": tf.zeros([100, 130, 3], tf.uint8),
                                      "depth": tf.reshape(tf.range(13000, dtype=tf.float32),
                                                          [100, 130])})
  images, depths = next(iter(pipeline.make_dataset(odd, batch_size=1, crop_size=None,
                                                   augment=False, repeat=False)))
  assert images.shape == (1, 96, 128, 3)
  assert depths[0, 0, 0, 0] == 2 * 130 + 1


def test_crop_size_must_be_multiple_of_32():
  with pytest.raises(ValueError, match=r"\(64, 90\)"):
    pipeline.make_dataset("procedural", batch_size=1, crop_size=(64, 90))
  with pytest.raises(ValueError, match="crop_size"):
    pipeline.make_dataset("procedural", batch_size=1, crop_size=None, augment=True)


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="'gpu'"):
    pipeline.make_dataset("procedural", batch_size=1, render_placement="gpu")
  with pytest.raises(ValueError, match="bogus"):
    pipeline.make_dataset("procedural", batch_size=1, camera=Camera.nyu(),
                          render_options={"bogus": 1})
  with pytest.raises(ValueError, match="batch_size"):
    pipeline.make_dataset("procedural", batch_size=0)
  with pytest.raises(ValueError, match="'depth'"):
    pipeline.make_dataset(tf.data.Dataset.from_tensors({"image": tf.zeros([32, 32, 3], tf.uint8)}),
                          batch_size=1)


def test_render_placements_batch_and_example_agree_and_blur():
  camera = Camera.nyu(focus_distance_m=2.0)
  common = dict(batch_size=2, crop_size=(64, 96), seed=4, deterministic=True, repeat=False,
                augment=False, procedural_options={"num_scenes": 2})
  sharp, depth = next(iter(pipeline.make_dataset("procedural", **common)))
  out = {}
  for placement in ("batch", "example"):
    images, d = next(iter(pipeline.make_dataset("procedural", camera=camera,
                                                render_placement=placement, **common)))
    np.testing.assert_array_equal(d.numpy(), depth.numpy())
    assert images.shape == sharp.shape
    assert np.all(np.isfinite(images.numpy()))
    assert 0.0 <= images.numpy().min() and images.numpy().max() <= 1.0
    out[placement] = images.numpy()
  # Blur removes detail: less gradient energy than the sharp image.
  def detail(x):
    return np.square(np.diff(x, axis=2)).mean()
  assert detail(out["batch"]) < 0.8 * detail(sharp.numpy())
  assert np.abs(out["batch"] - sharp.numpy()).max() > 0.05
  np.testing.assert_allclose(out["batch"], out["example"], atol=2e-3)


def test_deterministic_with_seed():
  def first(seed):
    ds = pipeline.make_dataset(_ramp_source(4), batch_size=4, crop_size=(64, 64), seed=seed,
                               deterministic=True)
    return next(iter(ds))[0].numpy()
  np.testing.assert_array_equal(first(11), first(11))
  assert not np.array_equal(first(11), first(12))


def test_finite_procedural_split_and_remainder():
  ds = pipeline.make_dataset("procedural", batch_size=2, crop_size=(32, 32), augment=False,
                             repeat=False, split="validation",
                             procedural_options={"num_scenes": 5})
  sizes = [int(x.shape[0]) for x, _ in ds]
  assert sizes == [2, 2, 1]


def test_defocus_fn_runs_in_tf_function():
  fn = pipeline.make_defocus_fn(Camera.nyu(focus_distance_m=2.0), psf="disk")
  images = tf.random.stateless_uniform([1, 32, 32, 3], [1, 2])
  depths = tf.fill([1, 32, 32, 1], 0.7)
  out = tf.function(fn)(images, depths, tf.constant([3, 4]))
  assert out.shape == images.shape
  assert float(tf.math.reduce_std(out)) < 0.5 * float(tf.math.reduce_std(images))
