"""Tests of d3tf.losses: values on hand-made input, masking, empty batches, gradients, fit."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from d3tf import losses

NAN = float("nan")


def _t(array):
  return tf.constant(np.asarray(array, np.float32))


def _value(name, y_true, y_pred):
  return float(losses.get_loss(name)(_t(y_true), _t(y_pred)))


def test_l1_masks_zero_and_nan_ground_truth():
  y_true = [[[[1.0], [0.0]], [[2.0], [NAN]]]]
  y_pred = [[[[1.5], [9.0]], [[1.0], [9.0]]]]
  assert _value("l1", y_true, y_pred) == pytest.approx((0.5 + 1.0) / 2)


def test_berhu_threshold_is_a_fifth_of_the_largest_valid_residual():
  # Valid residuals 0.5, 1, 5 -> c = 1; the invalid pixel's residual (100) is ignored.
  y_true = np.array([1.0, 1.0, 1.0, 0.0]).reshape(1, 1, 4, 1)
  y_pred = np.array([1.5, 2.0, 6.0, 100.0]).reshape(1, 1, 4, 1)
  expected = (0.5 + 1.0 + (25.0 + 1.0) / 2.0) / 3.0
  assert _value("berhu", y_true, y_pred) == pytest.approx(expected)
  # c follows the batch: residuals 0.5 and 1 alone give c = 0.2, both in the quadratic part.
  assert _value("berhu", y_true[..., :2, :], y_pred[..., :2, :]) == pytest.approx(
      ((0.25 + 0.04) / 0.4 + (1.0 + 0.04) / 0.4) / 2)


def test_silog_per_image_with_lambda_085():
  y_true = np.array([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]]).reshape(3, 1, 2, 1)
  # Image 0: pred = 2 gt (g = ln 2 twice): (1 - 0.85) ln^2 2. Image 1: g = +-ln 2: ln^2 2.
  # Image 2 has no valid pixel and is left out of the mean.
  y_pred = np.array([[2.0, 4.0], [2.0, 1.0], [5.0, 5.0]]).reshape(3, 1, 2, 1)
  ln2sq = math.log(2.0) ** 2
  assert losses.SILOG_LAMBDA == 0.85
  assert _value("silog", y_true, y_pred) == pytest.approx((0.15 * ln2sq + ln2sq) / 2, rel=1e-5)
  # Scale errors are mostly forgiven: pred = 2 gt costs 0.15 of its squared log error.
  assert _value("silog", y_true[:1], y_pred[:1]) == pytest.approx(0.15 * ln2sq, rel=1e-5)


def test_log_l1_is_l1_on_log_depth_and_keeps_the_scale():
  # |ln 2 - ln 1| and |ln 1 - ln 2|; the invalid pixel (gt 0) is left out.
  y_true = np.array([1.0, 2.0, 0.0]).reshape(1, 1, 3, 1)
  y_pred = np.array([2.0, 1.0, 5.0]).reshape(1, 1, 3, 1)
  assert _value("log_l1", y_true, y_pred) == pytest.approx(math.log(2.0), rel=1e-5)
  # A relative error costs the same at every depth; a global scale error is not forgiven.
  assert _value("log_l1", [[[[1.0]]]], [[[[1.1]]]]) == pytest.approx(
      _value("log_l1", [[[[8.0]]]], [[[[8.8]]]]), rel=1e-5)
  assert _value("log_l1", [[[[1.0], [2.0]]]], [[[[2.0], [4.0]]]]) == pytest.approx(math.log(2.0))
  # Non-positive predictions are clamped to 1e-3 m inside the log.
  assert _value("log_l1", [[[[1.0]]]], [[[[-1.0]]]]) == pytest.approx(-math.log(1e-3), rel=1e-5)


def test_gradient_loss_by_hand():
  y_true = np.ones((1, 2, 2, 1))
  y_pred = np.array([[1.0, 2.0], [1.0, 2.0]]).reshape(1, 2, 2, 1)
  # Residual [[0, 1], [0, 1]]: at stride 1, x-pairs |1|, |1|, y-pairs 0, 0 -> 0.5; coarser
  # scales (1x1) have no pairs -> 0. Term = 0.5 / 4 scales. L1 = 0.5.
  term = float(losses.gradient_matching_term(_t(y_true), _t(y_pred)))
  assert term == pytest.approx(0.125)
  assert _value("gradient", y_true, y_pred) == pytest.approx(0.5 + 0.5 * 0.125)
  # Masking pixel (0, 1): only the pairs with both ends valid count: x row 1 (|1|), y col 0 (0).
  y_true[0, 0, 1, 0] = 0.0
  term = float(losses.gradient_matching_term(_t(y_true), _t(y_pred)))
  assert term == pytest.approx(0.5 / 4)
  assert _value("gradient", y_true, y_pred) == pytest.approx(1.0 / 3.0 + 0.5 * 0.125)
  # A constant offset has no gradient: only the L1 part remains.
  flat = np.full((1, 16, 16, 1), 2.0)
  assert _value("gradient", flat, flat + 0.3) == pytest.approx(0.3, rel=1e-5)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_no_valid_pixel_gives_zero_loss_and_zero_gradients_in_a_graph(name):
  fn = losses.get_loss(name)

  @tf.function
  def loss_and_grad(y_true, y_pred):
    with tf.GradientTape() as tape:
      tape.watch(y_pred)
      loss = fn(y_true, y_pred)
    return loss, tape.gradient(loss, y_pred)

  y_true = _t(np.array([0.0, NAN, -1.0, np.inf] * 16).reshape(2, 4, 8, 1))
  y_pred = _t(np.full((2, 4, 8, 1), 3.0))
  loss, grad = loss_and_grad(y_true, y_pred)
  assert float(loss) == 0.0
  np.testing.assert_array_equal(grad.numpy(), 0.0)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_gradients_are_finite_and_zero_on_invalid_pixels(name):
  rng = np.random.default_rng(1)
  y_true = rng.uniform(0.5, 10.0, (2, 16, 16, 1)).astype(np.float32)
  y_true[0, :3] = 0.0
  y_true[1, 5, 5] = NAN
  y_pred = tf.Variable(rng.uniform(0.5, 10.0, y_true.shape).astype(np.float32))
  with tf.GradientTape() as tape:
    loss = losses.get_loss(name)(_t(y_true), y_pred)
  grad = tape.gradient(loss, y_pred).numpy()
  assert np.isfinite(float(loss)) and float(loss) > 0
  assert np.all(np.isfinite(grad))
  if name != "gradient":  # gradient matching couples neighbours, L1/berHu/silog do not.
    assert np.all(grad[0, :3] == 0) and grad[1, 5, 5, 0] == 0
  # A perfect prediction costs nothing (berHu's threshold cannot divide by 0).
  perfect = tf.Variable(np.where(np.isfinite(y_true) & (y_true > 0), y_true, 1.0))
  with tf.GradientTape() as tape:
    loss = losses.get_loss(name)(_t(y_true), perfect)
  assert float(loss) == pytest.approx(0.0, abs=1e-6)
  assert np.all(np.isfinite(tape.gradient(loss, perfect).numpy()))


def test_channel_axis_may_be_missing_on_one_side():
  y_true = np.array([[[1.0, 2.0]]])
  y_pred = np.array([[[[2.0], [2.0]]]])
  assert _value("l1", y_true, y_pred) == pytest.approx(0.5)
  assert _value("l1", y_pred, y_true[..., None]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="ranks must match"):
    _value("l1", y_true[0, 0], y_pred)


def test_get_loss_names():
  assert losses.get_loss("BerHu") is losses.berhu_loss
  with pytest.raises(ValueError, match=r"'huber'.*'l1', 'berhu', 'silog', 'gradient'"):
    losses.get_loss("huber")


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_trains_in_model_fit_with_holes_and_round_trips_through_serialization(name):
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((8, 8, 3)),
                            keras.layers.Conv2D(1, 3, padding="same", activation="softplus")])
  model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=losses.get_loss(name))
  rng = np.random.default_rng(0)
  x = rng.random((4, 8, 8, 3)).astype(np.float32)
  y = rng.uniform(1.0, 3.0, (4, 8, 8, 1)).astype(np.float32)
  y[:, :2] = 0.0  # holes
  y[3] = 0.0  # an image without any valid pixel
  history = model.fit(x, y, batch_size=2, epochs=2, verbose=0)
  assert all(np.isfinite(v) for v in history.history["loss"])
  fn = losses.get_loss(name)
  config = keras.saving.serialize_keras_object(fn)
  assert keras.saving.deserialize_keras_object(config) is fn


def test_gaussian_and_laplace_nll_by_hand():
  y_true = _t(np.array([1.0, 2.0, 0.0, NAN]).reshape(1, 1, 4, 1))  # Two invalid pixels.
  depth = _t(np.array([1.0, 3.0, 7.0, 7.0]).reshape(1, 1, 4, 1))
  log_scale = _t(np.array([0.0, math.log(2.0), -50.0, -50.0]).reshape(1, 1, 4, 1))
  # Pixel 0: r = 0, s = 0. Pixel 1: r = 1, scale 2.
  gauss = [0.5 * math.log(2 * math.pi), math.log(2.0) + 0.5 * 0.25 + 0.5 * math.log(2 * math.pi)]
  laplace = [math.log(2.0), math.log(2.0) + 0.5 + math.log(2.0)]
  output = {"depth": depth, "log_scale": log_scale}
  assert float(losses.gaussian_nll_loss(y_true, output)) == pytest.approx(np.mean(gauss))
  assert float(losses.get_nll_loss("laplace")(y_true, output)) == pytest.approx(np.mean(laplace))
  stacked = tf.concat([depth, log_scale], axis=-1)  # [..., 2]: depth, log-scale.
  assert float(losses.gaussian_nll_loss(y_true, stacked)) == pytest.approx(np.mean(gauss))
  assert float(losses.laplace_nll_loss(y_true, depth, log_scale)) == pytest.approx(
      np.mean(laplace))
  # The Gaussian NLL of a residual r is smallest at scale |r|.
  values = [float(losses.gaussian_nll_loss(_t([[[[1.0]]]]), _t([[[[1.5]]]]),
                                           _t([[[[math.log(s)]]]]))) for s in (0.25, 0.5, 1.0)]
  assert values[1] < values[0] and values[1] < values[2]


def test_nll_gradients_are_finite_and_zero_on_invalid_pixels():
  y_true = _t(np.array([2.0, 0.0]).reshape(1, 1, 2, 1))
  depth = tf.Variable(np.array([3.0, 5.0], np.float32).reshape(1, 1, 2, 1))
  log_scale = tf.Variable(np.array([-1.0, -80.0], np.float32).reshape(1, 1, 2, 1))
  for name in losses.NLL_NAMES:
    with tf.GradientTape() as tape:
      value = losses.get_nll_loss(name)(y_true, {"depth": depth, "log_scale": log_scale})
    grads = tape.gradient(value, [depth, log_scale])
    for grad in grads:
      assert np.all(np.isfinite(grad.numpy())), name
      assert grad.numpy()[0, 0, 1, 0] == 0.0, name
    assert grads[0].numpy()[0, 0, 0, 0] > 0 and grads[1].numpy()[0, 0, 0, 0] < 0, name
  empty = losses.gaussian_nll_loss(_t(np.zeros((1, 2, 2, 1))), _t(np.ones((1, 2, 2, 2))))
  assert float(empty) == 0.0


def test_nll_bad_arguments_are_named():
  with pytest.raises(ValueError, match=r"missing \['log_scale'\]"):
    losses.gaussian_nll_loss(_t(np.ones((1, 2, 2, 1))), {"depth": _t(np.ones((1, 2, 2, 1)))})
  with pytest.raises(ValueError, match=r"\[\.\.\., 2\].*\(1, 2, 2, 3\)"):
    losses.laplace_nll_loss(_t(np.ones((1, 2, 2, 1))), _t(np.ones((1, 2, 2, 3))))
  with pytest.raises(ValueError, match="'cauchy'"):
    losses.get_nll_loss("cauchy")
  for fn in (losses.gaussian_nll_loss, losses.laplace_nll_loss):
    assert keras.saving.get_registered_object(keras.saving.get_registered_name(fn)) is fn
