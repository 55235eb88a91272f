"""Flip test-time averaging (d3tf.inference.flip_average): the wrapper, a real model, evaluate."""

import numpy as np
import pytest

from d3tf import inference
from d3tf.experiment import eval_lib
from d3tf.inference import flip_average


class _RampPredictor:
  """Depth = the red channel + the column index: a prediction that a mirror image changes."""

  camera_aware = False
  metadata = None

  def __init__(self):
    self.calls = []

  def predict(self, images, samples=1, camera=None):
    images = np.asarray(images, np.float32)
    self.calls.append((images.copy(), samples, camera))
    ramp = np.arange(images.shape[2], dtype=np.float32)
    depth = images[..., 0] + ramp
    return {"depth": depth, "depth_std": np.full_like(depth, 1.0 + images.shape[0])}


def test_the_depth_of_the_image_and_of_its_mirror_are_averaged():
  images = np.random.default_rng(0).random((2, 4, 6, 3)).astype(np.float32)
  wrapped = _RampPredictor()
  predictor = flip_average.FlipAveragingPredictor(wrapped)
  out = predictor.predict(images, samples=3, camera="cam")
  # The image gives red + x; its mirror, mirrored back, gives red + (5 - x): the mean is
  # red + 2.5 everywhere.
  np.testing.assert_allclose(out["depth"], images[..., 0] + 2.5, rtol=0, atol=1e-6)
  assert len(wrapped.calls) == 2
  np.testing.assert_array_equal(wrapped.calls[1][0], images[:, :, ::-1])
  assert [call[1:] for call in wrapped.calls] == [(3, "cam"), (3, "cam")]
  assert predictor.camera_aware is False and predictor.metadata is None  # Delegated.


def test_standard_deviations_are_averaged_as_variances_and_mismatches_refused():
  ones = np.ones((1, 2, 2), np.float32)
  out = flip_average.average_with_mirror({"depth": ones, "depth_std": ones * 3},
                                         {"depth": ones * 2, "depth_std": ones * 4})
  np.testing.assert_allclose(out["depth"], 1.5)
  np.testing.assert_allclose(out["depth_std"], np.sqrt((9 + 16) / 2), rtol=1e-6)
  assert out["depth_std"].dtype == np.float32
  with pytest.raises(ValueError, match="different outputs"):
    flip_average.average_with_mirror({"depth": ones}, {"depth": ones, "depth_std": ones})
  with pytest.raises(ValueError, match="'depth' has shape"):
    flip_average.average_with_mirror({"depth": ones}, {"depth": np.ones((1, 2, 3))})
  with pytest.raises(ValueError, match="needs a predictor with predict"):
    flip_average.FlipAveragingPredictor(object())


def test_a_camera_aware_model_through_load_predictor(camera_aware_model_dir):
  plain = inference.load_predictor(camera_aware_model_dir)
  flipped = inference.load_predictor(camera_aware_model_dir, flip_average=True)
  assert isinstance(flipped, inference.FlipAveragingPredictor) and flipped.camera_aware
  images = np.random.default_rng(1).random((2, 40, 72, 3)).astype(np.float32)
  camera = [35.0, 2.8, 36.0, 1.7]
  expected = (plain.predict(images, camera=camera)["depth"] +
              plain.predict(images[:, :, ::-1], camera=camera)["depth"][:, :, ::-1]) / 2
  depth = flipped.predict(images, camera=camera)["depth"]
  np.testing.assert_allclose(depth, expected, rtol=1e-5, atol=1e-5)
  assert not np.allclose(depth, plain.predict(images, camera=camera)["depth"], atol=1e-4)


def test_evaluate_with_flip_average_records_it_and_scores_the_averaged_depth(
    camera_aware_model_dir, tmp_path):
  common = dict(model=str(camera_aware_model_dir), dataset="procedural", num_examples=2,
                height=64, width=64, batch_size=2)
  plain = eval_lib.run_evaluation(eval_lib.EvalConfig(**common,
                                                      output_json=str(tmp_path / "a.json")))
  flipped = eval_lib.run_evaluation(eval_lib.EvalConfig(**common, flip_average=True,
                                                        output_json=str(tmp_path / "b.json")))
  assert plain["flip_average"] is False and flipped["flip_average"] is True
  assert flipped["metrics"]["rel"] != plain["metrics"]["rel"]
  assert np.isfinite(flipped["metrics"]["rel"])
