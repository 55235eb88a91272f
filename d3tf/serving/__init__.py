"""Export and serving: SavedModel for TF Serving, TFLite, and serving clients.

* :mod:`d3tf.serving.protocol`: the exports' interface (signature, input and
  output names) and client-side input checks;
* :mod:`d3tf.serving.graph`: the serving graph (padding, MC sampling, decoding);
* :mod:`d3tf.serving.exporter`: writing exports (their layout and metadata
  are :mod:`d3tf.artifacts`'; predicting from them is :mod:`d3tf.inference`'s);
* :mod:`d3tf.serving.keras_restore`: a SavedModel export back into a Keras
  model (to fine-tune a shipped model);
* :mod:`d3tf.serving.rest_client` / :mod:`d3tf.serving.grpc_client`: clients of
  TF Serving's predict API;
* :mod:`d3tf.serving.testing`: test doubles of TF Serving (loopback servers).

Importing this package is cheap: the modules are imported on use.
"""
