"""Training helpers shared by ``python -m d3tf.train``: Keras metrics and callbacks.

* :mod:`d3tf.training.keras_metrics`: masked depth metrics (abs-rel, RMS) as
  streaming Keras metrics, for validation during ``fit``;
* :mod:`d3tf.training.callbacks`: step checkpoints that resume mid-epoch,
  TensorBoard scalars and images, throughput / ETA logging;
* :mod:`d3tf.training.summaries`: TensorBoard event writing with TensorFlow
  alone (the ``tensorboard`` package is not needed to write logs, only to
  view them).

No absl flags are defined here: flags live in the CLI modules only.
"""
