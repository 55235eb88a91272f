"""Tests of d3tf.uncertainty_metrics on hand-made arrays."""

import math

import numpy as np
import pytest

from d3tf import uncertainty_metrics as um


def _errors_case(seed=0, n=4000):
  rng = np.random.default_rng(seed)
  gt = rng.uniform(0.5, 9.5, n)
  error = rng.normal(0.0, rng.uniform(0.05, 1.0, n))  # Heteroscedastic errors.
  return gt, gt + error, np.abs(error)


def test_oracle_has_zero_ause_and_spearman_one():
  gt, pred, abs_error = _errors_case()
  for metric in um.AUSE_METRICS:
    curves = um.sparsification(gt, pred, abs_error, metric=metric)
    np.testing.assert_array_equal(curves["curve"], curves["oracle"])
    assert curves["ause"] == 0.0
  assert um.spearman(gt, pred, abs_error) == pytest.approx(1.0)
  # Any increasing function of the error ranks the pixels the same way.
  assert um.ause(gt, pred, 3.0 * abs_error ** 2 + 0.1) == 0.0


def test_random_ranking_has_positive_ause_and_no_correlation():
  gt, pred, abs_error = _errors_case(seed=1)
  rng = np.random.default_rng(2)
  random_std = rng.uniform(0.1, 1.0, gt.size)
  for metric in um.AUSE_METRICS:
    curves = um.sparsification(gt, pred, random_std, metric=metric)
    assert curves["ause"] > 0.05
    # The oracle is never worse than any ranking; a random ranking keeps about the full error.
    assert np.all(curves["oracle"] <= curves["curve"] + 1e-12)
    assert curves["curve"][0] == pytest.approx(curves["oracle"][0])  # Nothing removed yet.
  assert abs(um.spearman(gt, pred, random_std)) < 0.1
  # A reversed ranking (most confident where the error is largest) is worse still.
  assert um.ause(gt, pred, 1.0 / (abs_error + 1e-3)) > um.ause(gt, pred, random_std)
  assert um.spearman(gt, pred, 1.0 / (abs_error + 1e-3)) == pytest.approx(-1.0)


def test_sparsification_curve_by_hand():
  gt = np.ones(4)
  pred = gt + np.array([0.4, -0.1, 0.3, 0.2])
  std = np.array([0.1, 0.4, 0.3, 0.2])  # Removes |e| 0.1 first, then 0.3, then 0.2.
  curves = um.sparsification(gt, pred, std, fractions=[0.0, 0.25, 0.5, 0.75])
  np.testing.assert_allclose(curves["curve"], [0.25, 0.3, 0.3, 0.4])
  np.testing.assert_allclose(curves["oracle"], [0.25, 0.2, 0.15, 0.1])
  expected_area = np.trapezoid([0.0, 0.1, 0.15, 0.3], [0.0, 0.25, 0.5, 0.75])
  assert curves["ause"] == pytest.approx(expected_area)
  # A random ranking keeps the mean error 0.25 at every fraction, on average.
  random_area = np.trapezoid([0.0, 0.05, 0.1, 0.15], [0.0, 0.25, 0.5, 0.75])
  assert curves["ause_random"] == pytest.approx(random_area)
  rmse = um.sparsification(gt, pred, std, metric="rmse", fractions=[0.0, 0.75])
  np.testing.assert_allclose(rmse["curve"], [math.sqrt(0.075), 0.4])


def test_ause_random_matches_shuffled_rankings():
  gt, pred, _ = _errors_case(seed=3)
  rng = np.random.default_rng(4)
  shuffled = [um.ause(gt, pred, rng.permutation(gt.size).astype(float)) for _ in range(20)]
  expected = um.sparsification(gt, pred, np.ones(gt.size))["ause_random"]
  assert np.mean(shuffled) == pytest.approx(expected, rel=0.05)


def test_coverage_fractions_are_exact():
  gt = np.full((2, 4), 2.0)
  pred = gt + np.array([[0.5, -1.5, 2.5, 0.9], [-1.0, 2.0, 3.0, -0.1]])
  std = np.ones((2, 4))
  result = um.coverage(gt, pred, std)
  # |e| <= 1: 0.5, 0.9, 1.0, 0.1 (4 of 8); <= 2: also 1.5, 2.0 (6 of 8).
  assert result == {"within_1sigma": 0.5, "within_2sigma": 0.75}
  mask = np.array([True, True, False, False])  # Broadcast over the rows.
  assert um.coverage(gt, pred, std, mask) == {"within_1sigma": 0.5, "within_2sigma": 1.0}


def test_nll_known_values():
  gt = np.array([1.0, 2.0, 0.0, 20.0])  # The last two are invalid (0 and beyond 10 m).
  pred = np.array([1.0, 3.0, 5.0, 5.0])
  std = np.array([1.0, 2.0, 1.0, 1.0])
  half_log_2pi = 0.5 * math.log(2 * math.pi)
  first = half_log_2pi  # e = 0, std = 1.
  second = half_log_2pi + math.log(2.0) + 1.0 / 8.0  # e = 1, std = 2.
  assert um.gaussian_nll(gt, pred, std) == pytest.approx((first + second) / 2)
  everything = um.uncertainty_metrics(gt, pred, std)
  assert everything["n_pixels"] == 2 and everything["nll"] == pytest.approx((first + second) / 2)
  assert everything["mean_std"] == pytest.approx(1.5)
  assert set(um.UNCERTAINTY_METRIC_NAMES) <= set(everything)


def test_accumulator_pools_and_averages_per_image():
  gt, pred, abs_error = _errors_case(seed=3, n=2 * 32 * 32)
  gt, pred = gt.reshape(2, 32, 32), pred.reshape(2, 32, 32)
  std = np.random.default_rng(4).uniform(0.1, 1.0, gt.shape)
  acc = um.UncertaintyAccumulator()
  added = acc.update(gt[..., None], pred[..., None], std[..., None])
  acc.update(np.zeros((32, 32)), pred[0], std[0])  # No valid pixel: not in the means.
  assert len(added) == 2 and len(acc.per_image) == 3
  result = acc.result()
  pooled = um.uncertainty_metrics(gt, pred, std)
  for name in um.POOLED_NAMES:
    assert result["pixel_weighted"][name] == pytest.approx(pooled[name])
  single = [um.uncertainty_metrics(gt[i], pred[i], std[i]) for i in range(2)]
  for name in um.UNCERTAINTY_METRIC_NAMES:
    assert result["per_image_mean"][name] == pytest.approx(np.mean([m[name] for m in single]))
  assert result["per_image_mean"]["n_pixels"] == result["pixel_weighted"]["n_pixels"] == 2048
  assert result["num_images"] == 3 and len(result["sparsification"]["curve"]) == 50


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match=r"one shape.*\(3,\).*\(2,\)"):
    um.ause(np.ones(3), np.ones(2), np.ones(3))
  with pytest.raises(ValueError, match="metric.*'mae'"):
    um.ause(np.ones(3), np.ones(3), np.ones(3), metric="mae")
  with pytest.raises(ValueError, match=r"fractions.*\[0.5, 0.2\]"):
    um.sparsification(np.ones(3), np.ones(3), np.ones(3), fractions=[0.5, 0.2])
  assert math.isnan(um.ause(np.zeros(3), np.ones(3), np.ones(3)))  # No valid pixel.
  assert math.isnan(um.spearman(np.ones(3), np.ones(3) * 2, np.ones(3)))  # Constant std.


def test_sparsification_plot_is_written_and_checks_its_curves(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from d3tf import uncertainty_plots  # pylint: disable=g-import-not-at-top
  gt, pred, abs_error = _errors_case(seed=3)
  noisy = abs_error * np.random.default_rng(4).uniform(0.5, 2.0, gt.size)
  curves = {"oracle-like": um.sparsification(gt, pred, abs_error),
            "noisy": um.sparsification(gt, pred, noisy)}
  output = tmp_path / "new" / "sparsification.png"
  assert uncertainty_plots.write_sparsification_plot(curves, str(output), title="t") == str(output)
  with Image.open(output) as picture:
    assert picture.format == "PNG" and picture.width > 300 and picture.height > 200
    assert len(np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)) > 10
  with pytest.raises(ValueError, match="at least one model"):
    uncertainty_plots.write_sparsification_plot({}, str(output))
  with pytest.raises(ValueError, match=r"'noisy' lacks 'oracle'"):
    uncertainty_plots.write_sparsification_plot(
        {"noisy": {"fractions": [0, 0.5], "curve": [1, 1]}}, str(output))
  with pytest.raises(ValueError, match=r"'x'.*shapes \(2,\), \(3,\), \(2,\)"):
    uncertainty_plots.write_sparsification_plot(
        {"x": {"fractions": [0, 0.5], "curve": [1, 1, 1], "oracle": [1, 0.5]}}, str(output))
  with pytest.raises(ValueError, match=r"'x'.*positive and finite, got 0.0"):
    uncertainty_plots.write_sparsification_plot(
        {"x": {"fractions": [0, 0.5], "curve": [0, 0], "oracle": [0, 0]}}, str(output))


def test_uncertainty_maps_picture_is_written_and_checks_shapes(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from d3tf import uncertainty_plots  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  images = rng.uniform(0.0, 1.0, (2, 32, 48, 3)).astype(np.float32)
  truth = rng.uniform(0.5, 9.0, (2, 32, 48))
  truth[0, :4] = 0.0  # Invalid pixels are drawn black, not scored.
  depth = truth + rng.normal(0.0, 0.3, truth.shape)
  std = np.abs(depth - truth)[..., None] + 0.05  # [N, H, W, 1] is accepted too.
  output = tmp_path / "maps.png"
  uncertainty_plots.write_uncertainty_maps(images, truth, depth, std, str(output), title="t")
  with Image.open(output) as picture:
    assert picture.format == "PNG" and picture.width > picture.height > 100
  with pytest.raises(ValueError, match=r"\(2, 32, 48, 3\), \[\(2, 32, 48\), \(2, 32, 40\)"):
    uncertainty_plots.write_uncertainty_maps(images, truth, depth[..., :40], std, str(output))
