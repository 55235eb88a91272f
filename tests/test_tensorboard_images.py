"""The training CLI's TensorBoard images: the prediction drawn is the model's own."""

import numpy as np
import pytest
import tensorflow as tf

from d3tf import models
from d3tf.training import callbacks as callbacks_lib
from d3tf.training import summaries


def _images(log_dir) -> dict:
  """Tag -> uint8 [N, H, W, 3] of the validation event file's image summaries."""
  (path,) = (log_dir / "validation").glob("events.out.tfevents.*")
  images = {}
  for event in tf.compat.v1.train.summary_iterator(str(path)):
    for value in event.summary.value:
      if value.metadata.plugin_data.plugin_name == "images":
        encoded = tf.make_ndarray(value.tensor)[2:]  # width, height, then the PNGs.
        images[value.tag] = np.stack([tf.io.decode_png(png).numpy() for png in encoded])
  return images


@pytest.mark.parametrize("aleatoric", ["none", "laplace"])
def test_the_prediction_image_is_the_models_prediction(tmp_path, aleatoric):
  model = models.build_d3net(models.D3NetConfig.tiny(aleatoric=aleatoric, dropout_rate=0.0))
  rng = np.random.default_rng(0)
  inputs = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
  depth = rng.uniform(0.5, 4.0, (2, 32, 32, 1)).astype(np.float32)
  logger = callbacks_lib.TensorBoardLogger(str(tmp_path), image_batch=(inputs, depth),
                                           max_depth_m=4.0)
  logger.set_model(model)
  model.compile(optimizer="adam", loss="mae")  # The logger reads the global step from it.
  logger.on_epoch_end(0, logs={"val_rel": 0.5})
  images = _images(tmp_path)
  expected = model(inputs, training=False)
  expected = expected["depth"] if aleatoric != "none" else expected
  np.testing.assert_array_equal(images["prediction"],
                                summaries.colorize(np.asarray(expected), 0.0, 4.0))
  np.testing.assert_array_equal(images["ground_truth"], summaries.colorize(depth, 0.0, 4.0))
  assert images["input"].shape == (2, 32, 32, 3)
