"""D3-Net, the depth-from-defocus network, and its custom layers.

Importing this package registers the custom layers with Keras, so that
``keras.models.load_model("model.keras")`` works without ``custom_objects``.
"""

from d3tf.models.d3net import build_d3net
from d3tf.models.d3net import config_from_model
from d3tf.models.d3net import D3Net
from d3tf.models.d3net import D3NetConfig
from d3tf.models.d3net import ENCODER_OUTPUT_NAME
from d3tf.models.d3net import load_imagenet_weights
from d3tf.models.d3net import SIZE_MULTIPLE
from d3tf.models.d3net import SKIP_LAYER_NAMES
from d3tf.models.layers import MCDropout
from d3tf.models.layers import set_mc_dropout
from d3tf.models.layers import SizeMultipleCheck

__all__ = [
    "build_d3net",
    "config_from_model",
    "D3Net",
    "D3NetConfig",
    "ENCODER_OUTPUT_NAME",
    "load_imagenet_weights",
    "MCDropout",
    "set_mc_dropout",
    "SIZE_MULTIPLE",
    "SizeMultipleCheck",
    "SKIP_LAYER_NAMES",
]
