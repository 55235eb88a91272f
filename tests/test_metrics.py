"""Tests of d3tf.metrics on arrays small enough to score by hand."""

import json
import math

import numpy as np
import pytest

from d3tf import metrics

# Four valid pixels (gt 1, 2, 4, 2 m); a hole (0) and a pixel beyond 10 m are excluded.
GT = np.array([[1.0, 2.0, 0.0], [4.0, 2.0, 12.0]], np.float32)
PRED = np.array([[2.0, 2.0, 5.0], [2.0, 3.0, 7.0]], np.float32)


def test_standard_metrics_match_hand_computation():
  m = metrics.depth_metrics(GT, PRED)
  # Valid pairs (gt, pred): (1, 2), (2, 2), (4, 2), (2, 3); d = pred - gt = 1, 0, -2, 1.
  assert m["n_pixels"] == 4
  assert m["rel"] == pytest.approx((1 / 1 + 0 / 2 + 2 / 4 + 1 / 2) / 4)  # 0.5
  assert m["sq_rel"] == pytest.approx((1 / 1 + 0 + 4 / 4 + 1 / 2) / 4)  # 0.625
  assert m["rms"] == pytest.approx(math.sqrt((1 + 0 + 4 + 1) / 4))
  ln2, ln15 = math.log(2), math.log(1.5)
  assert m["rmslog"] == pytest.approx(math.sqrt((ln2**2 + 0 + ln2**2 + ln15**2) / 4))
  assert m["log10"] == pytest.approx((2 * math.log10(2) + math.log10(1.5)) / 4)
  # max(pred/gt, gt/pred) = 2, 1, 2, 1.5 against 1.25, 1.5625, 1.953.
  assert (m["delta1"], m["delta2"], m["delta3"]) == pytest.approx((0.25, 0.5, 0.5))


def test_rel_divides_by_ground_truth_so_swapping_changes_it():
  gt, pred = np.array([2.0]), np.array([1.0])
  assert metrics.depth_metrics(gt, pred)["rel"] == pytest.approx(0.5)
  assert metrics.depth_metrics(pred, gt)["rel"] == pytest.approx(1.0)
  assert metrics.depth_metrics(gt, pred)["sq_rel"] == pytest.approx(0.5)
  assert metrics.depth_metrics(pred, gt)["sq_rel"] == pytest.approx(1.0)


def test_masking_excludes_zero_nan_too_far_and_masked_pixels():
  gt = np.array([[np.nan, 0.0, -1.0, 10.5, 3.0, 5.0]])
  pred = np.array([[7.0, 7.0, 7.0, 7.0, 4.0, 7.0]])
  m = metrics.depth_metrics(gt, pred)
  assert m["n_pixels"] == 2
  assert m["rms"] == pytest.approx(math.sqrt((1 + 4) / 2))
  mask = np.array([[True, True, True, True, True, False]])
  m = metrics.depth_metrics(gt, pred, mask)
  assert m["n_pixels"] == 1 and m["rms"] == pytest.approx(1.0)
  # max_depth_m is inclusive and configurable.
  assert metrics.depth_metrics(gt, pred, max_depth_m=10.5)["n_pixels"] == 3
  # A trailing channel axis is accepted on any argument.
  m = metrics.depth_metrics(gt[..., None], pred[..., None], mask[..., None])
  assert m["n_pixels"] == 1


def test_prediction_is_clipped_to_the_depth_range():
  m = metrics.depth_metrics(np.array([5.0, 1.0]), np.array([25.0, 0.0]), min_depth_m=0.5)
  # 25 -> 10 (error 5); 0 -> 0.5 (error 0.5).
  assert m["rms"] == pytest.approx(math.sqrt((25 + 0.25) / 2))
  assert math.isfinite(m["rmslog"]) and math.isfinite(m["log10"])


def test_no_valid_pixel_gives_nan_and_zero_count():
  m = metrics.depth_metrics(np.zeros((2, 2)), np.ones((2, 2)))
  assert m["n_pixels"] == 0
  assert all(math.isnan(m[name]) for name in metrics.METRIC_NAMES)


def test_median_scaling():
  gt = np.array([1.0, 2.0, 3.0, 0.0])
  m = metrics.depth_metrics(gt, 2 * gt + np.array([0, 0, 0, 50.0]), median_scaling=True)
  assert m["median_scale"] == pytest.approx(0.5)
  assert m["rel"] == pytest.approx(0.0, abs=1e-12) and m["delta1"] == 1.0
  assert "median_scale" not in metrics.depth_metrics(gt, gt)


def test_bad_arguments_name_the_problem():
  with pytest.raises(ValueError, match=r"same shape.*\(2,\).*\(3,\)"):
    metrics.depth_metrics(np.ones(2), np.ones(3))
  with pytest.raises(ValueError, match="non-finite"):
    metrics.depth_metrics(np.ones(2), np.array([1.0, np.nan]))
  with pytest.raises(ValueError, match="boolean"):
    metrics.depth_metrics(np.ones(2), np.ones(2), mask=np.ones(2))
  with pytest.raises(ValueError, match="min_depth_m"):
    metrics.depth_metrics(np.ones(2), np.ones(2), min_depth_m=20.0)
  # A NaN prediction on an *invalid* pixel does not matter.
  assert metrics.depth_metrics(np.array([1.0, 0.0]), np.array([1.0, np.nan]))["rel"] == 0.0


def test_rms_per_depth_bin_by_hand():
  gt = np.array([0.5, 1.5, 1.7, 10.0, 0.0, 11.0])
  pred = np.array([1.5, 1.5, 3.7, 10.0, 3.0, 3.0])
  bins = metrics.rms_per_depth_bin(gt, pred)
  assert len(bins) == 10 and (bins[0]["lo_m"], bins[0]["hi_m"]) == (0.0, 1.0)
  assert bins[0]["rms"] == pytest.approx(1.0) and bins[0]["n_pixels"] == 1
  assert bins[1]["rms"] == pytest.approx(math.sqrt((0 + 4) / 2)) and bins[1]["n_pixels"] == 2
  assert bins[9]["rms"] == 0.0 and bins[9]["n_pixels"] == 1  # 10 m falls in the last bin.
  assert all(math.isnan(b["rms"]) and b["n_pixels"] == 0 for b in bins[2:9])
  custom = metrics.rms_per_depth_bin(gt, pred, bin_edges_m=[0, 2, 10])
  assert [b["n_pixels"] for b in custom] == [3, 1]
  with pytest.raises(ValueError, match="increasing"):
    metrics.rms_per_depth_bin(gt, pred, bin_edges_m=[3, 1])


def _random_images(seed):
  rng = np.random.default_rng(seed)
  gts, preds = [], []
  for _ in range(5):
    gt = rng.uniform(0.5, 11.0, (6, 7))
    gt[rng.random(gt.shape) < 0.3] = 0.0  # holes: images get different valid counts.
    gts.append(gt)
    preds.append(gt * rng.uniform(0.7, 1.4, gt.shape))
  return np.stack(gts), np.stack(preds)


def test_accumulator_averages_per_pixel_and_per_image():
  gts, preds = _random_images(0)
  acc = metrics.MetricsAccumulator()
  acc.update(gts[:2], preds[:2])  # a batch,
  acc.update(gts[2], preds[2])  # a single image,
  acc.update(gts[3:, ..., None], preds[3:, ..., None])  # a batch with a channel axis.
  result = acc.result()
  assert result["num_images"] == 5 and result["num_empty_images"] == 0

  pooled = metrics.depth_metrics(gts, preds)
  for name in metrics.METRIC_NAMES:
    assert result["pixel_weighted"][name] == pytest.approx(pooled[name], rel=1e-12)
  assert result["pixel_weighted"]["n_pixels"] == pooled["n_pixels"]

  each = [metrics.depth_metrics(g, p) for g, p in zip(gts, preds)]
  for name in metrics.METRIC_NAMES:
    assert result["per_image_mean"][name] == pytest.approx(np.mean([m[name] for m in each]))
  assert acc.per_image == each
  # The two conventions really differ here (images have different valid counts).
  assert result["per_image_mean"]["rel"] != pytest.approx(result["pixel_weighted"]["rel"],
                                                          rel=1e-9)

  bins = metrics.rms_per_depth_bin(gts, preds)
  for mine, ref in zip(result["rms_per_depth_bin"], bins):
    assert mine["n_pixels"] == ref["n_pixels"]
    assert mine["rms"] == pytest.approx(ref["rms"], nan_ok=True)
  json.dumps(result)  # plain Python numbers only.


def test_accumulator_median_scales_each_image_and_skips_empty_images():
  gt = np.array([[1.0, 2.0, 3.0]])
  acc = metrics.MetricsAccumulator(median_scaling=True)
  acc.update(gt, 2 * gt)
  acc.update(gt, 3 * gt)
  acc.update(np.zeros_like(gt), gt)  # no valid pixel.
  result = acc.result()
  assert [m.get("median_scale") for m in acc.per_image[:2]] == pytest.approx([1 / 2, 1 / 3])
  assert result["per_image_mean"]["rel"] == pytest.approx(0.0, abs=1e-12)
  assert result["pixel_weighted"]["rms"] == pytest.approx(0.0, abs=1e-12)
  assert result["num_images"] == 3 and result["num_empty_images"] == 1
  assert result["per_image_mean"]["n_pixels"] == 6
  acc.reset()
  assert acc.num_images == 0 and math.isnan(acc.result()["per_image_mean"]["rel"])


def test_wkdr_on_hand_made_pairs():
  # Depth grows to the right.
  depth = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
  pairs = np.array([[0, 2, 0, 0],  # A (col 2, 3 m) farther than B (col 0, 1 m): '>' is right.
                    [1, 0, 1, 1],  # A 1 m, B 2 m: '<' is right.
                    [0, 0, 1, 2],  # A 1 m, B 3 m labelled '>': wrong.
                    [0, 1, 1, 1]])  # a tie (2 m vs 2 m): counts as wrong.
  ordinal = np.array([1, -1, 1, 1])
  assert metrics.wkdr(depth, pairs, ordinal) == pytest.approx(0.5)
  assert metrics.wkdr(depth, pairs[:2], ordinal[:2]) == 0.0
  assert metrics.wkdr(depth[..., None], pairs[2:3], ordinal[2:3]) == 1.0
  # Batched: one pair per image, as DIW has.
  batch = np.stack([depth, depth[:, ::-1]])
  assert metrics.wkdr(batch, pairs[None, :1].repeat(2, 0), np.array([[1], [1]])) == 0.5
  with pytest.raises(ValueError, match="inside the 2x3"):
    metrics.wkdr(depth, np.array([[0, 3, 0, 0]]), np.array([1]))
  with pytest.raises(ValueError, match=r"\+1 or -1"):
    metrics.wkdr(depth, pairs[:1], np.array([0]))


def test_format_table():
  m = metrics.depth_metrics(GT, PRED)
  table = metrics.format_table(m)
  assert "rel" in table and "delta3" in table and "0.5000" in table and "0.6250" in table
  acc = metrics.MetricsAccumulator()
  acc.update(GT, PRED)
  table = metrics.format_table(acc.result())
  assert "per-image mean" in table and "pixel-weighted" in table
  assert len(table.splitlines()) == 4
  nan_table = metrics.format_table(metrics.depth_metrics(np.zeros(2), np.ones(2)))
  assert " - " in nan_table or nan_table.rstrip().endswith("-")
  bins = metrics.format_bin_table(acc.rms_per_depth_bin())
  assert "0-1" in bins and "9-10" in bins
