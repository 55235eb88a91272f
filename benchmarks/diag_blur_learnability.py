r"""Diagnostic: can the small D3-Net learn to read defocus blur at all?

The headline experiment (``benchmarks/results/experiment_procedural.md``) found
defocus models that score like all-in-focus ones. This isolates the blur cue:
every training crop is a textured patch of a procedural scene moved to ONE
random depth (a fronto-parallel plane, log-uniform in ``[min, max]`` metres)
and defocused by the camera. Nothing but blur tells the depth, so a model
that cannot read blur can do no better than a constant (the "constant" row:
the best single depth for the L1 loss, the median). Same network, optimiser
and crop size as the experiment. As a reference for how much the crops tell,
a line fitted to two sharpness numbers per crop (log RMS Laplacian and log RMS
Sobel gradient: "hand_features") predicts the depth of held-out crops.

Usage (data written by ``d3tf.data.write_procedural``, see the experiment's
flagfiles)::

  python benchmarks/diag_blur_learnability.py \
      --data_path='data/procedural_480x640/train-*.tfrecord' \
      --focus_distance_m=8 --min_depth_m=0.5 --max_depth_m=8 --steps=1500
"""

from __future__ import annotations

import json
import math
import time
from typing import Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

_DATA = flags.DEFINE_string("data_path", "data/procedural_480x640/train-*.tfrecord",
                            "TFRecord shards of scenes (their images give the textures).")
_FOCUS = flags.DEFINE_float("focus_distance_m", 8.0, "Focus distance of the NYU camera, metres.")
_MIN = flags.DEFINE_float("min_depth_m", 0.5, "Nearest plane depth, metres.")
_MAX = flags.DEFINE_float("max_depth_m", 8.0, "Farthest plane depth, metres.")
_STEPS = flags.DEFINE_integer("steps", 1500, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Crops per step.")
_CROP = flags.DEFINE_integer("crop_size", 128, "Crop side, pixels (a multiple of 32).")
_LR = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (beta1 0.5).")
_DROPOUT = flags.DEFINE_float("dropout_rate", 0.5, "MC dropout rate of the small D3-Net.")
_EVAL = flags.DEFINE_integer("eval_batches", 25, "Held-out batches scored at the end.")
_OUTPUT = flags.DEFINE_string("output_json", None, "Where to write the results (optional).")
_NETWORK = flags.DEFINE_enum("network", "d3net", ["d3net", "plain"],
                             "'d3net': the small D3-Net (depth map, averaged per crop); 'plain': "
                             "five 3x3 conv + batch-norm + ReLU layers, global average pooling "
                             "and a dense layer to one depth per crop.")
_BANDPASS = flags.DEFINE_bool("bandpass_input", False,
                              "Replace the RGB input by three fixed, contrast-normalised "
                              "sharpness maps (d3tf.models.BandPassSharpness, the layer behind "
                              "D3NetConfig(input_features='rgb+bandpass')).")
_BANDPASS_FLOOR = flags.DEFINE_float(
    "bandpass_floor", 1e-3, "Smallest band RMS of the band-pass maps (BandPassSharpness.floor). "
    "The recorded diagnostic results used 1e-3; D3-Net's layer defaults to 1e-4, below the "
    "procedural textures' fine band.")


def _build_network(keras):
  """The network the diagnostic trains (depth map [B, H, W, 1] in metres)."""
  from d3tf.models import D3NetConfig, build_d3net  # pylint: disable=g-import-not-at-top
  inputs = keras.Input((None, None, 3), name="image")
  from d3tf.models import BandPassSharpness  # pylint: disable=g-import-not-at-top
  x = (BandPassSharpness(floor=_BANDPASS_FLOOR.value, name="bandpass")(inputs)
       if _BANDPASS.value else inputs)
  if _NETWORK.value == "d3net":
    depth = build_d3net(D3NetConfig.small(dropout_rate=_DROPOUT.value))(x)
  else:
    for filters, stride in ((16, 1), (32, 1), (32, 1), (32, 2), (32, 2)):
      x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
      x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(1, activation="sigmoid")(x)
    x = keras.layers.Rescaling(10.0)(x)  # Depth in (0, 10) m, as D3-Net's head.
    depth = keras.layers.Lambda(
        lambda v: keras.ops.broadcast_to(v[:, None, None, :],
                                         (keras.ops.shape(v)[0], _CROP.value, _CROP.value, 1)))(x)
  return keras.Model(inputs, depth)


def _plane_dataset(camera, seed: int):
  """Batches of (defocused crop, constant depth map), endless."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from d3tf.data import TFRecordReader  # pylint: disable=g-import-not-at-top
  from d3tf.optics import render_defocus  # pylint: disable=g-import-not-at-top

  crop, lo, hi = _CROP.value, math.log(_MIN.value), math.log(_MAX.value)
  source = TFRecordReader(_DATA.value).as_dataset().repeat()

  def make(index, element):
    key = tf.stack([tf.cast(index, tf.int32), tf.constant(seed, tf.int32)])
    image = tf.image.stateless_random_crop(tf.image.convert_image_dtype(element["image"],
                                                                        tf.float32),
                                           [crop, crop, 3], key)
    log_depth = tf.random.stateless_uniform([], key + 1, lo, hi)
    depth = tf.fill([crop, crop], tf.exp(log_depth))
    blurred = render_defocus(image, depth, camera, seed=key)
    return blurred, depth[..., None]

  return (source.enumerate().map(make, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(_BATCH.value, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def _sharpness_features(image: np.ndarray) -> list[float]:
  """log RMS Laplacian, log RMS Sobel gradient of the grey image, and 1."""
  from scipy import ndimage  # pylint: disable=g-import-not-at-top
  grey = image.mean(axis=-1)
  laplacian = np.sqrt(np.mean(np.square(ndimage.laplace(grey))))
  gradient = np.sqrt(np.mean(np.square(ndimage.sobel(grey))))
  return [math.log(laplacian + 1e-6), math.log(gradient + 1e-6), 1.0]


def _hand_feature_depth(features: np.ndarray, gt: np.ndarray) -> np.ndarray:
  """Depth of the second half from a least-squares fit of log depth on the first half.

  Two numbers per crop (high-frequency energy against gradient energy: their
  ratio is a sharpness that does not depend on the texture's contrast) show
  how much the blur tells about depth without any learning beyond a line.
  """
  half = gt.size // 2
  weights, *_ = np.linalg.lstsq(features[:half], np.log(gt[:half]), rcond=None)
  return np.exp(features[half:] @ weights)


def main(argv: Sequence[str]) -> None:
  del argv
  import keras  # pylint: disable=g-import-not-at-top
  from scipy import stats  # pylint: disable=g-import-not-at-top

  from d3tf import losses  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  camera = Camera.nyu(focus_distance_m=_FOCUS.value)
  model = _build_network(keras)
  model.compile(optimizer=keras.optimizers.Adam(_LR.value, beta_1=0.5), loss=losses.l1_loss)
  began = time.monotonic()
  history = model.fit(_plane_dataset(camera, seed=0), steps_per_epoch=100,
                      epochs=max(1, _STEPS.value // 100), verbose=2)
  train_seconds = time.monotonic() - began

  gt, pred, features = [], [], []
  for images, depths in _plane_dataset(camera, seed=1).take(_EVAL.value):
    pred.append(model(images, training=False).numpy()[..., 0].mean(axis=(1, 2)))
    gt.append(depths.numpy()[:, 0, 0, 0])
    features.extend(_sharpness_features(image) for image in images.numpy())
  gt, pred = np.concatenate(gt), np.concatenate(pred)
  constant = float(np.median(gt))
  hand = _hand_feature_depth(np.asarray(features), gt)
  half = gt.size // 2
  result = {
      "camera": camera.to_dict(), "depth_range_m": [_MIN.value, _MAX.value],
      "steps": _STEPS.value, "batch_size": _BATCH.value, "crop_size": _CROP.value,
      "learning_rate": _LR.value, "dropout_rate": _DROPOUT.value, "eval_crops": int(gt.size),
      "network": _NETWORK.value, "bandpass_input": _BANDPASS.value,
      "bandpass_floor": _BANDPASS_FLOOR.value if _BANDPASS.value else None,
      "train_seconds": round(train_seconds, 1),
      "final_train_loss": float(history.history["loss"][-1]),
      "model": {"rel": float(np.mean(np.abs(pred - gt) / gt)),
                "abs_m": float(np.mean(np.abs(pred - gt))),
                "spearman": float(stats.spearmanr(pred, gt).statistic)},
      "constant": {"rel": float(np.mean(np.abs(constant - gt) / gt)),
                   "abs_m": float(np.mean(np.abs(constant - gt)))},
      # Fitted on the first half of the held-out crops, scored on the second.
      "hand_features_second_half": {
          "rel": float(np.mean(np.abs(hand - gt[half:]) / gt[half:])),
          "abs_m": float(np.mean(np.abs(hand - gt[half:]))),
          "spearman": float(stats.spearmanr(hand, gt[half:]).statistic)},
      "model_second_half": {"rel": float(np.mean(np.abs(pred[half:] - gt[half:]) / gt[half:])),
                            "abs_m": float(np.mean(np.abs(pred[half:] - gt[half:])))},
  }
  logging.info("Blur learnability: %s", json.dumps(result, indent=2))
  if _OUTPUT.value:
    with open(_OUTPUT.value, "w", encoding="utf-8") as f:
      json.dump(result, f, indent=2)


if __name__ == "__main__":
  app.run(main)
