"""Tests of d3tf.tiling: tiled prediction equals the untiled one (exactly for a constant model)."""

import numpy as np
import pytest

from d3tf import tiling


def test_tile_geometry():
  assert tiling.tile_side(1024 * 1024) == 1024 and tiling.tile_side(100 * 100) == 96
  assert tiling.tile_starts(100, 128, 16) == [0]
  assert tiling.tile_starts(300, 128, 32) == [0, 96, 172]
  with pytest.raises(ValueError, match="max_tile_pixels must be at least 1024"):
    tiling.tile_side(500)


def _constant_model(images, samples=1):
  shape = images.shape[:3]
  return {"depth": np.full(shape, 2.5, np.float32),
          "depth_std": np.full(shape, 0.3, np.float32)}


def test_constant_model_is_exact_and_full_size():
  image = np.random.default_rng(0).integers(0, 255, (150, 230, 3), dtype=np.uint8)
  calls = []

  def model(images, samples=1):
    calls.append(images.shape)
    return _constant_model(images, samples)

  out = tiling.predict_tiled(model, image, max_tile_pixels=64 * 64, overlap=16, samples=3)
  assert len(calls) > 1 and all(s[1] <= 64 and s[2] <= 64 for s in calls)
  assert out["depth"].shape == (1, 150, 230) and out["depth_std"].shape == (1, 150, 230)
  np.testing.assert_array_equal(out["depth"], np.full((1, 150, 230), 2.5, np.float32))
  np.testing.assert_allclose(out["depth_std"], 0.3, rtol=1e-6)
  small = np.zeros((32, 32, 3), np.uint8)  # Within the budget: one untiled pass.
  calls.clear()
  tiling.predict_tiled(model, small, max_tile_pixels=64 * 64)
  assert calls == [(1, 32, 32, 3)]


def test_tiny_model_matches_untiled_away_from_seams():
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = models.build_d3net(models.D3NetConfig.tiny(dropout_rate=0.0))
  predictor = inference.Predictor(model, None)
  rng = np.random.default_rng(1)
  image = rng.integers(0, 255, (96, 200, 3), dtype=np.uint8)
  full = predictor.predict(image)["depth"]
  tiled = tiling.predict_tiled(predictor.predict, image, max_tile_pixels=96 * 96, overlap=32)
  assert tiled["depth"].shape == full.shape == (1, 96, 200)
  # Tiles of 96 start at 0, 64 and 104 (the last at the edge): far from the overlaps the
  # tile sees the same pixels, only its receptive field is cut at the tile's edge.
  # (The untiled pass reflect-pads 200 to 224 columns, so the image's own edges differ too.)
  diff = np.abs(tiled["depth"] - full)[0, :, 16:-16]
  scale = float(np.abs(full).mean())
  assert float(diff.mean()) < 0.01 * scale, (float(diff.mean()), scale)  # Measured: 0.07 %.
  assert np.all(np.isfinite(tiled["depth"]))
