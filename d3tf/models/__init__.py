"""D3-Net, the depth-from-defocus network, its custom and variational layers.

Importing this package registers the custom layers with Keras, and the
optimizer the training CLIs compile with (:class:`~d3tf.optimizers.FusedAdam`,
saved in a compiled ``model.keras``), so that
``keras.models.load_model("model.keras")`` works without ``custom_objects``.
"""

from d3tf.models.camera_layers import CameraFeatures
from d3tf.models.camera_layers import FiLM
from d3tf.models.camera_layers import ThinLensDepth
from d3tf.models.d3net import ALEATORIC_TYPES
from d3tf.models.d3net import ALEATORIC_VARIANCE_FACTOR
from d3tf.models.d3net import aleatoric_of
from d3tf.models.d3net import build_d3net
from d3tf.models.d3net import config_from_model
from d3tf.models.d3net import D3Net
from d3tf.models.d3net import D3NetConfig
from d3tf.models.d3net import ENCODER_OUTPUT_NAME
from d3tf.models.d3net import INPUT_FEATURES
from d3tf.models.d3net import load_imagenet_weights
from d3tf.models.d3net import SKIP_LAYER_NAMES
from d3tf.models.layers import BandPassSharpness
from d3tf.models.layers import ReblurRatios
from d3tf.models.layers import LogScale
from d3tf.models.layers import MCDropout
from d3tf.models.layers import MonteCarloLayer
from d3tf.models.layers import set_mc_dropout
from d3tf.models.layers import set_mc_sampling
from d3tf.models.layers import sampling_layers
from d3tf.models.layers import shares_sample_in_batch
from d3tf.models.layers import SizeMultipleCheck
from d3tf.models.layers import stochastic_kind
from d3tf.models.transfer import copy_weights_by_name
from d3tf.models.transfer import TransferReport
from d3tf.models.variational import Conv2DFlipout
from d3tf.models.variational import Conv2DReparameterization
from d3tf.models.variational import set_kl_weight
from d3tf.models.variational import VARIATIONAL_TYPES
from d3tf.models.variational import variational_layers
from d3tf.sizes import SIZE_MULTIPLE
from d3tf import optimizers as _optimizers  # Registers FusedAdam (see above).

__all__ = [
    "ALEATORIC_TYPES",
    "ALEATORIC_VARIANCE_FACTOR",
    "aleatoric_of",
    "BandPassSharpness",
    "CameraFeatures",
    "FiLM",
    "ThinLensDepth",
    "build_d3net",
    "Conv2DFlipout",
    "Conv2DReparameterization",
    "config_from_model",
    "copy_weights_by_name",
    "D3Net",
    "D3NetConfig",
    "ENCODER_OUTPUT_NAME",
    "INPUT_FEATURES",
    "load_imagenet_weights",
    "LogScale",
    "MCDropout",
    "MonteCarloLayer",
    "ReblurRatios",
    "set_kl_weight",
    "set_mc_dropout",
    "set_mc_sampling",
    "SIZE_MULTIPLE",
    "sampling_layers",
    "shares_sample_in_batch",
    "SizeMultipleCheck",
    "stochastic_kind",
    "SKIP_LAYER_NAMES",
    "TransferReport",
    "VARIATIONAL_TYPES",
    "variational_layers",
]
