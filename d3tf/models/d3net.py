"""D3-Net: a DenseNet-121 encoder-decoder that regresses depth in metres.

The network of Carvalho et al., "Deep Depth from Defocus" (ECCV-W 2018), as
in their code (``marcelampc/d3net_depth_estimation``, ``DenseUNet`` with
``BasicBlock`` decoder blocks):

Encoder (DenseNet-121 with a learned stem down-sampling):
  * ``conv1``: 7x7 stride-2 convolution + BN + LeakyReLU(0.2): /2;
  * ``down1``: a 4x4 stride-2 convolution + BN + LeakyReLU(0.2) where
    DenseNet has its 3x3 max-pool: /4;
  * dense blocks ``conv2`` .. ``conv5`` (6, 12, 24, 16 layers of
    BN-ReLU-1x1 conv (``bn_size * growth``)-BN-ReLU-3x3 conv (``growth``),
    each layer's output concatenated to its input), with transitions
    ``pool2`` .. ``pool4`` (BN-ReLU-1x1 conv (``compression``)-2x2 average
    pool) between them: /32;
  * a final BN + LeakyReLU(0.2) (the paper's code uses its leaky ReLU here
    too, not DenseNet's ReLU).

Skips (U-Net), each an explicitly named identity layer:
  ``skip_conv0`` (conv1's activation, /2), ``skip_transition1``,
  ``skip_transition2``, ``skip_transition3`` (the transitions' 1x1
  convolutions *before* their average pool: /4, /8, /16).

Decoder: five blocks ``decoder5`` (deepest) .. ``decoder1``. Block ``k``
takes the previous block's output concatenated with the skip at its
resolution (block 5 takes the encoder output alone), then
  4x4 stride-2 transposed conv + BN + ReLU (x2 resolution),
  3x3 conv + BN + ReLU,
with ``MCDropout(0.5)`` after both BNs of the ``dropout_blocks`` deepest
blocks (as the paper's ``BasicBlock``). Concatenating *before* the
up-sampling is the paper's order; with the paper's widths (half the input
channels: 512, 256, 128, 64, 64) it gives the paper's 24.2 M parameters.

Head: 3x3 conv to one channel, then ``max_depth_m * sigmoid``: depth in
metres, always inside (0, max_depth_m) (the range that evaluation scores;
NYUv2 and the procedural scenes lie inside 10 m). The untrained network
predicts about ``max_depth_m / 2``.

Camera-aware (``camera_aware=True``, off by default): inputs ``{"image",
"camera"}``; each decoder block is FiLM-conditioned on the camera, and the
head's convolution gives the signed blur in pixels (``signed_blur``), which
:class:`~d3tf.models.camera_layers.ThinLensDepth` turns into metres with the
camera's thin-lens formula (``docs/any_camera.md``).

Bayesian options (all off by default; the defaults build the paper's network
with its 24,220,225 trainable parameters and a single depth output):

* ``variational_blocks``: decoder blocks (numbers 1-5, 5 the deepest) whose
  3x3 convolution ``decoder{k}_conv`` is a variational convolution
  (:mod:`d3tf.models.variational`, ``variational_type`` "flipout" or
  "reparameterization"; the transposed convolutions stay deterministic). The
  KL term is divided by ``num_train_examples``. A sensible choice is the two
  deepest blocks, ``(5, 4)`` (where the paper puts its MC dropout; they hold
  few weights at low resolution, so sampling is cheap).
* ``aleatoric``: "gaussian" or "laplace" adds a second head, a 3x3 conv
  ``log_scale_conv`` + :class:`~d3tf.models.layers.LogScale` predicting the
  per-pixel log-scale (``log sigma`` of a Gaussian, ``log b`` of a Laplace,
  metres; scale >= 1 mm). The model then returns a dict ``{"depth": [B, H,
  W, 1], "log_scale": [B, H, W, 1]}``; with "none" it returns the depth
  tensor alone, as before. Train it with the matching negative
  log-likelihood (:func:`d3tf.losses.get_nll_loss`).

A Bayesian D3Net (either option on) computes its training loss itself
(:meth:`D3Net.compute_loss`): data loss (the compiled loss, which for an
aleatoric model takes the output dict) plus the layers' KL terms, and logs
them separately as the metrics ``nll`` (aleatoric) or ``data_loss``, and
``kl`` (``loss`` is their sum).

Input: float32 RGB in [0, 1], [B, H, W, 3] with H and W multiples of 32; the
model normalises with ImageNet's mean and standard deviation itself (the
statistics keras.applications' DenseNet weights expect).

Input features (``input_features``): "rgb" (default, the paper) feeds the
normalised RGB to the stem. "rgb+bandpass" concatenates three fixed sharpness
maps beside it (:class:`~d3tf.models.layers.BandPassSharpness`, layer
``bandpass_sharpness``: contrast-normalised fine and middle frequency bands
and their log RMS ratio, no weights), so the stem's 7x7 convolution sees six
channels. That ratio is what defocus blur changes; a small network trained
from scratch for a CPU budget does not build it from RGB (see
``benchmarks/diag_blur_learnability.py``). "rgb+reblur" concatenates three
re-blur ratio maps instead (:class:`~d3tf.models.layers.ReblurRatios`, layer
``reblur_ratios``: log ratios of the gradient energy of the grey image
re-blurred by Gaussians of 1, 2 and 4 pixels, contrast-invariant estimates of
the blur size, no weights). Either costs ``7 * 7 * 3 *
init_features`` stem weights; the input stays RGB, so the pipeline, exports
and inference are unchanged.

Layer names of the encoder are those of ``keras.applications.DenseNet121``
(``conv1_conv``, ``conv2_block1_0_bn``, ``pool2_conv``, ``bn``, ...), so that
ImageNet weights are copied by name (:func:`load_imagenet_weights`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any
import warnings

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from d3tf.models import batch_norm
from d3tf.models import camera_layers
from d3tf.models import recompute
from d3tf.models import variational
from d3tf.models.layers import BandPassSharpness
from d3tf.models.layers import ReblurRatios
from d3tf.models.layers import LogScale
from d3tf.models.layers import MCDropout
from d3tf.models.layers import SizeMultipleCheck
from d3tf.sizes import SIZE_MULTIPLE


#: Names of the layers whose outputs feed the decoder's skips, shallow to deep.
SKIP_LAYER_NAMES = ("skip_conv0", "skip_transition1", "skip_transition2", "skip_transition3")

#: Name of the last encoder layer (the bottleneck, /32).
ENCODER_OUTPUT_NAME = "relu"

#: Values of ``D3NetConfig.aleatoric``.
ALEATORIC_TYPES = ("none", "gaussian", "laplace")
#: Values of ``D3NetConfig.variational_type``.
VARIATIONAL_TYPES = variational.VARIATIONAL_TYPES
#: Values of ``D3NetConfig.input_features``.
INPUT_FEATURES = ("rgb", "rgb+bandpass", "rgb+reblur")
#: Variance of the aleatoric likelihood per squared unit of its scale
#: ``exp(log_scale)``: a Laplace distribution of scale b has variance 2 b^2.
ALEATORIC_VARIANCE_FACTOR = {"none": 1.0, "gaussian": 1.0, "laplace": 2.0}
#: Smallest scale the aleatoric head predicts, metres.
ALEATORIC_MIN_SCALE_M = 1e-3

#: Signed blur (pixels) per unit of the camera-aware head's convolution output.
SIGNED_BLUR_UNIT_PX = 8.0

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
# keras.applications.DenseNet's BatchNormalization epsilon.
_ENCODER_BN_EPSILON = 1.001e-5


def _as_int_tuple(name: str, values, length: int) -> tuple[int, ...]:
  """``values`` as a tuple of ``length`` positive ints, or a ValueError naming the field."""
  what = "a positive integer" if length == 1 else f"{length} positive integers"
  try:
    result = tuple(int(v) for v in values)
    exact = all(int(v) == v and not isinstance(v, bool) for v in values)
  except (TypeError, ValueError):
    result, exact = (), False
  if not exact or len(result) != length or any(v <= 0 for v in result):
    shown = values[0] if length == 1 else values
    raise ValueError(f"D3NetConfig.{name} must be {what}, got {shown!r}")
  return result


@dataclasses.dataclass(frozen=True)
class D3NetConfig:
  """Sizes of a D3-Net.

  Attributes:
    growth_rate: Channels each dense layer adds (DenseNet's ``k``).
    block_layers: Dense layers in each of the four dense blocks.
    init_features: Channels of the stem (conv1 and down1).
    bn_size: Bottleneck width of a dense layer, in multiples of growth_rate.
    compression: Fraction of channels a transition keeps.
    decoder_filters: Output channels of the five decoder blocks, deepest
      (decoder5) first.
    dropout_rate: Rate of the MC dropout layers.
    dropout_blocks: How many of the deepest decoder blocks have dropout.
    leaky_slope: Negative slope of the encoder's leaky ReLUs.
    max_depth_m: The head's depth range: outputs lie in (0, max_depth_m).
    bn_momentum: Momentum of the moving statistics of every BatchNormalization
      (0.9 is PyTorch's 0.1, which the paper trained with; the moving averages
      also settle within a few dozen steps of a short CPU run).
    variational_blocks: Decoder blocks (1-5, 5 the deepest) whose 3x3
      convolution is variational; empty (default): none. E.g. ``(5, 4)``.
    variational_type: "flipout" or "reparameterization".
    num_train_examples: Training-set size N that divides the KL term; needed
      when ``variational_blocks`` is set.
    prior_scale: Standard deviation of the variational weights' N(0, s) prior.
    posterior_scale_init: Initial posterior standard deviation of every
      variational weight.
    aleatoric: "none", or "gaussian" / "laplace" for a log-scale head (the
      model then outputs a dict with "depth" and "log_scale").
    input_features: "rgb" (the paper), "rgb+bandpass" to add three fixed
      band-pass sharpness maps beside the RGB at the stem, or "rgb+reblur" to
      add three multi-scale re-blur ratio maps (:class:`ReblurRatios`).
    bandpass_floor: Smallest band RMS of those maps, on the [0, 1] intensity
      scale (``BandPassSharpness.floor``); used with "rgb+bandpass" only.
    camera_aware: Take the camera as a second input (``{"image", "camera"}``,
      the camera a ``[B, 4]`` vector: focal length mm, f-number, pixel pitch
      um, focus distance m), predict the signed blur in pixels and convert it
      to metres with the thin-lens formula (:mod:`d3tf.models.camera_layers`);
      the decoder blocks are FiLM-conditioned on the camera. False (default):
      the paper's single-camera network, unchanged.
    min_depth_m: Camera-aware head: the nearest depth it predicts.
    sync_batch_norm: Batch statistics over the global batch of all replicas
      under a ``tf.distribute`` strategy (``BatchNormalization(synchronized=
      True)``), so that N replicas train like one device on the same global
      batch; False: per-replica statistics. No effect on one device or in
      inference.
    fused_batch_norm: Train every BatchNormalization with TensorFlow's fused
      kernel (:class:`d3tf.models.batch_norm.BatchNormalization`): the same
      maths as ``keras.layers.BatchNormalization`` (to float32 round-off), a
      faster step and less memory (``benchmarks/results/train_step.md``).
      False: Keras' layer, unchanged. Inference is Keras' computation either
      way, and the weights of both load into either.
    recompute: Memory-efficient dense blocks (:mod:`d3tf.models.recompute`):
      in training, each dense layer (its concatenation, both BNs and ReLUs,
      the 1x1 and 3x3 convolutions) is recomputed in the backward pass
      instead of its intermediates kept. Same maths, same layers and weights;
      less memory, more compute.
  """

  growth_rate: int = 32
  block_layers: tuple[int, ...] = (6, 12, 24, 16)
  init_features: int = 64
  bn_size: int = 4
  compression: float = 0.5
  decoder_filters: tuple[int, ...] = (512, 256, 128, 64, 64)
  dropout_rate: float = 0.5
  dropout_blocks: int = 2
  leaky_slope: float = 0.2
  max_depth_m: float = 10.0
  bn_momentum: float = 0.9
  variational_blocks: tuple[int, ...] = ()
  variational_type: str = "flipout"
  num_train_examples: int | None = None
  prior_scale: float = 1.0
  posterior_scale_init: float = 1e-3
  aleatoric: str = "none"
  input_features: str = "rgb"
  bandpass_floor: float = 1e-4
  camera_aware: bool = False
  min_depth_m: float = 0.1
  sync_batch_norm: bool = False
  fused_batch_norm: bool = True
  recompute: bool = False

  def __post_init__(self):
    set_field = lambda name, value: object.__setattr__(self, name, value)
    for name in ("growth_rate", "init_features", "bn_size"):
      set_field(name, _as_int_tuple(name, [getattr(self, name)], 1)[0])
    set_field("block_layers", _as_int_tuple("block_layers", self.block_layers, 4))
    set_field("decoder_filters", _as_int_tuple("decoder_filters", self.decoder_filters, 5))
    checks = (
        ("compression", lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
        ("dropout_rate", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("leaky_slope", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("max_depth_m", lambda v: 0.0 < v < math.inf, "positive and finite"),
        ("bn_momentum", lambda v: 0.0 <= v < 1.0, "in [0, 1)"),
        ("bandpass_floor", lambda v: 0.0 < v < 1.0, "in (0, 1)"),
    )
    for name, ok, text in checks:
      try:
        value = float(getattr(self, name))
      except (TypeError, ValueError):
        value = math.nan
      if not ok(value):
        raise ValueError(f"D3NetConfig.{name} must be {text}, got {getattr(self, name)!r}")
      set_field(name, value)
    blocks = self.dropout_blocks
    if (isinstance(blocks, bool) or not isinstance(blocks, (int, np.integer)) or
        not 0 <= blocks <= 5):
      raise ValueError(f"D3NetConfig.dropout_blocks must be an integer in [0, 5], got {blocks!r}")
    set_field("dropout_blocks", int(blocks))
    if not isinstance(self.camera_aware, (bool, np.bool_)):
      raise ValueError(f"D3NetConfig.camera_aware must be True or False, got "
                       f"{self.camera_aware!r}")
    set_field("camera_aware", bool(self.camera_aware))
    for name in ("fused_batch_norm", "recompute"):
      if not isinstance(getattr(self, name), (bool, np.bool_)):
        raise ValueError(f"D3NetConfig.{name} must be True or False, got "
                         f"{getattr(self, name)!r}")
      set_field(name, bool(getattr(self, name)))
    if not 0.0 < float(self.min_depth_m) < self.max_depth_m:
      raise ValueError(f"D3NetConfig.min_depth_m must be in (0, max_depth_m={self.max_depth_m}), "
                       f"got {self.min_depth_m!r}")
    set_field("min_depth_m", float(self.min_depth_m))
    if self.input_features not in INPUT_FEATURES:
      raise ValueError(f"D3NetConfig.input_features must be one of {INPUT_FEATURES}, got "
                       f"{self.input_features!r}")
    self._check_bayesian(set_field)

  def _check_bayesian(self, set_field) -> None:
    blocks = self.variational_blocks
    if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
      raise ValueError("D3NetConfig.variational_blocks must be a sequence of decoder block "
                       f"numbers in 1-5, got {blocks!r}")
    if not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 1 <= b <= 5
               for b in blocks) or len(set(blocks)) != len(tuple(blocks)):
      raise ValueError("D3NetConfig.variational_blocks must be distinct decoder block numbers "
                       f"in 1-5 (5 the deepest), got {blocks!r}")
    set_field("variational_blocks", tuple(sorted((int(b) for b in blocks), reverse=True)))
    if self.variational_type not in VARIATIONAL_TYPES:
      raise ValueError(f"D3NetConfig.variational_type must be one of {VARIATIONAL_TYPES}, got "
                       f"{self.variational_type!r}")
    if self.aleatoric not in ALEATORIC_TYPES:
      raise ValueError(f"D3NetConfig.aleatoric must be one of {ALEATORIC_TYPES}, got "
                       f"{self.aleatoric!r}")
    n = self.num_train_examples
    if n is not None:
      if isinstance(n, bool) or not isinstance(n, (int, np.integer, float)) or n != int(n) or \
          n < 1:
        raise ValueError(f"D3NetConfig.num_train_examples must be a positive integer, got {n!r}")
      set_field("num_train_examples", int(n))
    elif self.variational_blocks:
      raise ValueError("D3NetConfig.num_train_examples must be a positive integer when "
                       f"variational_blocks is set ({self.variational_blocks}), got None")
    for name in ("prior_scale", "posterior_scale_init"):
      value = getattr(self, name)
      try:
        number = float(value)
      except (TypeError, ValueError):
        number = math.nan
      if not 0.0 < number < math.inf:
        raise ValueError(f"D3NetConfig.{name} must be positive and finite, got {value!r}")
      set_field(name, number)

  @property
  def is_bayesian(self) -> bool:
    """True with variational layers or an aleatoric head (the model logs its loss terms)."""
    return bool(self.variational_blocks) or self.aleatoric != "none"

  # ----------------------------------------------------------------- presets
  @classmethod
  def full(cls, **overrides) -> "D3NetConfig":
    """The paper's D3-Net: DenseNet-121 encoder, about 24.2 M parameters."""
    return cls(**overrides)

  @classmethod
  def small(cls, **overrides) -> "D3NetConfig":
    """A narrow, shallow D3-Net for CPU experiments (0.75 M parameters).

    Trains at about 4.5 steps/s on 2 CPU cores at 128x128, batch 8.
    """
    values = dict(growth_rate=12, block_layers=(2, 4, 6, 4), init_features=24, bn_size=4,
                  decoder_filters=(96, 64, 48, 32, 16))
    values.update(overrides)
    return cls(**values)

  @classmethod
  def medium(cls, **overrides) -> "D3NetConfig":
    """The small D3-Net a third wider and 1.5-2x deeper (2.1 M parameters, 8.6 MB float32).

    For a camera-aware model that must serve many cameras and still ship well
    under 20 MB. In the camera-aware NYU pipeline on 2 CPU cores it trains at
    the small one's pace (the per-example renders set it, not the network).
    """
    values = dict(growth_rate=16, block_layers=(3, 6, 12, 8), init_features=32, bn_size=4,
                  decoder_filters=(128, 96, 64, 48, 24))
    values.update(overrides)
    return cls(**values)

  @classmethod
  def tiny(cls, **overrides) -> "D3NetConfig":
    """About 15 k parameters: for tests (a forward pass takes milliseconds)."""
    values = dict(growth_rate=4, block_layers=(1, 1, 1, 1), init_features=8, bn_size=2,
                  decoder_filters=(8, 8, 8, 8, 8))
    values.update(overrides)
    return cls(**values)

  @property
  def is_densenet121(self) -> bool:
    """True when the encoder has DenseNet-121's shapes (ImageNet weights fit)."""
    return (self.growth_rate == 32 and self.block_layers == (6, 12, 24, 16) and
            self.init_features == 64 and self.bn_size == 4 and self.compression == 0.5)

  # ---------------------------------------------------------- serialisation
  def to_dict(self) -> dict[str, Any]:
    """A JSON-friendly dict (tuples become lists)."""
    result = dataclasses.asdict(self)
    for name in ("block_layers", "decoder_filters", "variational_blocks"):
      result[name] = list(result[name])
    if not self.camera_aware:  # Single-camera configs keep their keys (older d3tf reads them).
      del result["camera_aware"], result["min_depth_m"]
    # Training options at their defaults are left out: older d3tf reads the config (same maths).
    for name in ("fused_batch_norm", "recompute"):
      if getattr(self, name) == getattr(D3NetConfig, name):
        del result[name]
    return result

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> "D3NetConfig":
    """Inverse of :meth:`to_dict`; unknown keys are an error."""
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ValueError(f"Unknown D3NetConfig fields {unknown}; known: {sorted(known)}")
    return cls(**values)


# ------------------------------------------------------------------ graph
class _Builder:
  """Builds the functional graph of a D3-Net with explicitly named layers."""

  def __init__(self, config: D3NetConfig):
    self.config = config

  def bn(self, x, name: str, encoder: bool = True):
    epsilon = _ENCODER_BN_EPSILON if encoder else 1e-3
    layer_class = (batch_norm.BatchNormalization if self.config.fused_batch_norm
                   else keras.layers.BatchNormalization)
    return layer_class(epsilon=epsilon, momentum=self.config.bn_momentum,
                       synchronized=self.config.sync_batch_norm, name=name)(x)

  def leaky(self, x, name: str):
    return keras.layers.LeakyReLU(negative_slope=self.config.leaky_slope, name=name)(x)

  def dense_block(self, x, num_layers: int, name: str):
    c = self.config
    for i in range(num_layers):
      prefix = f"{name}_block{i + 1}"
      y = self.bn(x, f"{prefix}_0_bn")
      y = keras.layers.Activation("relu", name=f"{prefix}_0_relu")(y)
      y = keras.layers.Conv2D(c.bn_size * c.growth_rate, 1, use_bias=False,
                              name=f"{prefix}_1_conv")(y)
      y = self.bn(y, f"{prefix}_1_bn")
      y = keras.layers.Activation("relu", name=f"{prefix}_1_relu")(y)
      y = keras.layers.Conv2D(c.growth_rate, 3, padding="same", use_bias=False,
                              name=f"{prefix}_2_conv")(y)
      x = keras.layers.Concatenate(name=f"{prefix}_concat")([x, y])
    return x

  def transition(self, x, name: str):
    """Returns (pre-pool features, pooled features)."""
    x = self.bn(x, f"{name}_bn")
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    filters = int(x.shape[-1] * self.config.compression)
    features = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
    pooled = keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(features)
    return features, pooled

  def decoder_block(self, x, filters: int, dropout: bool, name: str, bayesian: bool = False):
    c = self.config
    x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same",
                                     name=f"{name}_upconv")(x)
    x = self.bn(x, f"{name}_up_bn", encoder=False)
    if dropout:
      x = MCDropout(c.dropout_rate, name=f"{name}_up_dropout")(x)
    x = keras.layers.Activation("relu", name=f"{name}_up_relu")(x)
    if bayesian:
      conv = variational.variational_conv_class(c.variational_type)(
          filters, 3, padding="same", use_bias=False, num_train_examples=c.num_train_examples,
          prior_scale=c.prior_scale, posterior_scale_init=c.posterior_scale_init,
          name=f"{name}_conv")
    else:
      conv = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")
    x = conv(x)
    x = self.bn(x, f"{name}_bn", encoder=False)
    if dropout:
      x = MCDropout(c.dropout_rate, name=f"{name}_dropout")(x)
    return keras.layers.Activation("relu", name=f"{name}_relu")(x)

  def film(self, x, name: str):
    """FiLM-conditions ``x`` on the camera (camera-aware models); identity otherwise."""
    if self.camera_hidden is None:
      return x
    gamma_beta = keras.layers.Dense(2 * x.shape[-1], kernel_initializer="zeros",
                                    name=f"{name}_film_dense")(self.camera_hidden)
    return camera_layers.FiLM(name=f"{name}_film")([x, gamma_beta])

  def build(self):
    c = self.config
    inputs = keras.Input(shape=(None, None, 3), name="image")
    self.camera_hidden = camera = None
    if c.camera_aware:
      camera = keras.Input(shape=(4,), name="camera")
      features = camera_layers.CameraFeatures(name="camera_features")(camera)
      self.camera_hidden = keras.layers.Dense(32, activation="relu",
                                              name="camera_hidden")(features)
    checked = SizeMultipleCheck(SIZE_MULTIPLE, name="size_check")(inputs)
    x = keras.layers.Normalization(mean=list(_IMAGENET_MEAN),
                                   variance=[s * s for s in _IMAGENET_STD],
                                   name="imagenet_normalization")(checked)
    if c.input_features == "rgb+bandpass":
      sharpness = BandPassSharpness(floor=c.bandpass_floor,
                                    name="bandpass_sharpness")(checked)
      x = keras.layers.Concatenate(name="input_features")([x, sharpness])
    elif c.input_features == "rgb+reblur":
      ratios = ReblurRatios(name="reblur_ratios")(checked)
      x = keras.layers.Concatenate(name="input_features")([x, ratios])
    # Stem: 7x7/2 conv, then a learned 4x4/2 down-sampling instead of the max-pool.
    x = keras.layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = keras.layers.Conv2D(c.init_features, 7, strides=2, use_bias=False, name="conv1_conv")(x)
    x = self.bn(x, "conv1_bn")
    x = self.leaky(x, "conv1_relu")
    skips = [keras.layers.Identity(name=SKIP_LAYER_NAMES[0])(x)]
    x = keras.layers.ZeroPadding2D(1, name="down1_pad")(x)
    x = keras.layers.Conv2D(c.init_features, 4, strides=2, use_bias=False, name="down1_conv")(x)
    x = self.bn(x, "down1_bn")
    x = self.leaky(x, "down1_relu")
    for i, num_layers in enumerate(c.block_layers):
      x = self.dense_block(x, num_layers, name=f"conv{i + 2}")
      if i < len(c.block_layers) - 1:
        features, x = self.transition(x, name=f"pool{i + 2}")
        skips.append(keras.layers.Identity(name=SKIP_LAYER_NAMES[i + 1])(features))
    x = self.bn(x, "bn")
    x = self.leaky(x, ENCODER_OUTPUT_NAME)

    # Decoder: deepest block first; skips concatenated before each up-sampling.
    for k in range(5, 0, -1):
      name = f"decoder{k}"
      if k < 5:
        x = keras.layers.Concatenate(name=f"{name}_concat")([x, skips[k - 1]])
      x = self.decoder_block(x, c.decoder_filters[5 - k], dropout=(5 - k) < c.dropout_blocks,
                             name=name, bayesian=k in c.variational_blocks)
      x = self.film(x, name)
    features = x
    # The heads' convolutions follow the dtype policy like the rest of the network: under mixed
    # precision a float32 head would convolve a float32 copy of the full-resolution features
    # and keep it for its backward pass (64 MB at batch 4, 256x256; 128 MB less at the train
    # step's peak with its float32 gradient, benchmarks/results/train_step.md, run 6). What
    # follows them computes in float32 whatever the policy: the sigmoid's saturation, the
    # metres scale, the thin-lens conversion and the log-scale need float32's range and
    # precision (their inputs are cast to it).
    x = keras.layers.Conv2D(1, 3, padding="same", name="depth_conv")(features)
    if c.camera_aware:
      blur = keras.layers.Rescaling(SIGNED_BLUR_UNIT_PX, dtype="float32", name="signed_blur")(x)
      depth = camera_layers.ThinLensDepth(c.min_depth_m, c.max_depth_m, dtype="float32",
                                          name="depth")([blur, camera])
      inputs = {"image": inputs, "camera": camera}
    else:
      x = keras.layers.Activation("sigmoid", dtype="float32", name="depth_sigmoid")(x)
      depth = keras.layers.Rescaling(c.max_depth_m, dtype="float32", name="depth")(x)
    if c.aleatoric == "none":
      return inputs, depth
    # Zero kernel, bias softplus^-1(1 m): the untrained head predicts a 1 m scale everywhere.
    z = keras.layers.Conv2D(1, 3, padding="same", kernel_initializer="zeros",
                            bias_initializer=keras.initializers.Constant(math.log(math.expm1(1.0))),
                            name="log_scale_conv")(features)
    log_scale = LogScale(ALEATORIC_MIN_SCALE_M, dtype="float32", name="log_scale")(z)
    return inputs, {"depth": depth, "log_scale": log_scale}


@keras.saving.register_keras_serializable(package="d3tf")
class D3Net(keras.Model):
  """The D3-Net functional model; its config is a :class:`D3NetConfig`.

  Build one with :func:`build_d3net`. ``get_config`` stores only the
  D3NetConfig (as keras-hub backbones do), and ``from_config`` rebuilds the
  same graph, whose layers all have fixed names, so ``model.save`` /
  ``keras.models.load_model`` round-trip without ``custom_objects``.

  A Bayesian config (variational layers and/or an aleatoric head) changes
  training: :meth:`compute_loss` adds the layers' KL terms to the data loss
  and tracks both as metrics (``nll`` for an aleatoric model, else
  ``data_loss``; and ``kl``); :meth:`compute_metrics` scores the depth output
  alone. A plain config trains exactly as a ``keras.Model``.

  Attributes:
    d3net_config: The :class:`D3NetConfig` the model was built from.
  """

  def __init__(self, config: D3NetConfig | dict[str, Any] | None = None, name: str = "d3net",
               **kwargs):
    if config is None:
      config = D3NetConfig.full()
    elif isinstance(config, dict):
      config = D3NetConfig.from_dict(config)
    inputs, outputs = _Builder(config).build()
    super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
    self.d3net_config = config
    self._recompute_roles = recompute.recompute_roles(self) if config.recompute else {}
    self.data_loss_tracker = self.kl_tracker = None
    if config.is_bayesian:
      self.data_loss_tracker = keras.metrics.Mean(
          name="nll" if config.aleatoric != "none" else "data_loss")
      if config.variational_blocks:
        self.kl_tracker = keras.metrics.Mean(name="kl")

  def call(self, inputs, training=None, mask=None, **kwargs):
    """The functional graph; with ``recompute``, in training, dense layers recomputed."""
    if training and self._recompute_roles and mask is None and not kwargs:
      return recompute.call_recomputing(self, inputs, self._recompute_roles, training=training)
    return super().call(inputs, training=training, mask=mask, **kwargs)

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    """The total loss; for a Bayesian config, data loss + KL, each tracked as a metric.

    With an aleatoric head ``y_pred`` is the output dict, passed whole to the
    compiled loss (a callable such as :func:`d3tf.losses.gaussian_nll_loss`).
    """
    if not self.d3net_config.is_bayesian:
      return super().compute_loss(x, y, y_pred, sample_weight, training=training)
    # Under tf.distribute each replica's loss is divided by the replicas in sync before the
    # gradients are summed (Keras divides add_loss terms so; the compiled loss as Keras scales
    # it, see d3tf.losses.GlobalBatchLoss): every replica adds the whole KL, so KL / replicas.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    # The KL from the layers themselves, not from self.losses: under MirroredStrategy the
    # replicas call one Python model in parallel and its add_loss list gathers every
    # replica's term (measured: twice the KL with 2 replicas).
    layers = variational.variational_layers(self)
    kl = (tf.add_n([tf.cast(layer.kl_loss(), tf.float32) for layer in layers]) if layers
          else keras.ops.zeros(()))
    kl_share = kl / float(replicas)
    if isinstance(y_pred, dict) or callable(self.loss):
      if not callable(self.loss):
        raise ValueError(f"A D3Net with an aleatoric head needs one callable loss that takes "
                         f"the output dict (e.g. d3tf.losses.gaussian_nll_loss), got "
                         f"{self.loss!r}")
      data = keras.ops.cast(self.loss(y, y_pred), "float32")
      total = data + kl_share
    else:
      total = super().compute_loss(x, y, y_pred, sample_weight, training=training)
      data = total - kl_share
    self.data_loss_tracker.update_state(data * float(replicas))  # Per replica, unscaled.
    if self.kl_tracker is not None:
      self.kl_tracker.update_state(kl)
    return total

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    """Builds from one local replica's first batch (shapes are all a symbolic build needs).

    Keras 3.15 first reduces the whole ``(inputs, depth)`` batch of a distributed
    dataset with one ``strategy.reduce``, which MultiWorkerMirroredStrategy refuses
    for a nested structure ("Attempt to convert a value (PerReplica...)").
    """
    strategy = getattr(self, "_distribute_strategy", None)
    if iterator is not None and strategy is not None and (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)):
      for _, _, it in iterator:
        batch = next(it)
        data_batch = tf.nest.map_structure(
            lambda v: strategy.experimental_local_results(v)[0], batch)
        break
      iterator = None
    return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

  def compute_metrics(self, x, y, y_pred, sample_weight=None):
    """The compiled metrics, computed on the depth output only."""
    if isinstance(y_pred, dict):
      y_pred = y_pred["depth"]
    logs = super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    if tf.distribute.has_strategy() and isinstance(
        tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
      # Keras 3.15 reduces a step's logs across workers with strategy.reduce("MEAN", v,
      # axis=0), which fails on scalars: give it [1] tensors (the mean over the replicas).
      logs = {k: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v
              for k, v in logs.items()}
    return logs

  def get_config(self) -> dict[str, Any]:
    return {"name": self.name, "trainable": self.trainable,
            "config": self.d3net_config.to_dict()}

  @classmethod
  def from_config(cls, config: dict[str, Any], custom_objects=None) -> "D3Net":
    del custom_objects  # Nothing custom inside but registered layers.
    return cls(**config)


def build_d3net(config: D3NetConfig | None = None, imagenet_weights: str | None = None,
                name: str = "d3net") -> D3Net:
  """Builds a D3-Net (see the module docstring for the architecture).

  Args:
    config: Sizes; default :meth:`D3NetConfig.full`.
    imagenet_weights: Optional path of a keras.applications DenseNet121 weight
      file (``include_top=False`` or ``True``; legacy ``.h5`` or Keras 3
      ``.weights.h5``) to initialise the encoder with. Needs a DenseNet-121
      config. Default: random initialisation.
    name: The model's name.

  Returns:
    A :class:`D3Net` mapping images [B, H, W, 3] in [0, 1] (H, W multiples of
    32) to depth [B, H, W, 1] in metres (with an aleatoric head: a dict of
    "depth" and "log_scale", both [B, H, W, 1]).

  Raises:
    FileNotFoundError: ``imagenet_weights`` does not exist.
    ValueError: The config is invalid, or the weight file does not fit.
  """
  model = D3Net(config or D3NetConfig.full(), name=name)
  if imagenet_weights:
    load_imagenet_weights(model, imagenet_weights)
  return model


def aleatoric_of(model, fallback: str = "none") -> str:
  """The aleatoric likelihood of a model: its ``D3NetConfig.aleatoric``, else ``fallback``.

  Args:
    model: A Keras model (a :class:`D3Net` knows its config; other models do
      not).
    fallback: The kind for a model without a config, e.g. from its metadata.

  Raises:
    ValueError: an unknown kind, echoed.
  """
  kind = getattr(getattr(model, "d3net_config", None), "aleatoric", None) or fallback
  if kind not in ALEATORIC_TYPES:
    raise ValueError(f"unknown aleatoric likelihood {kind!r} (expected one of {ALEATORIC_TYPES})")
  return kind


def config_from_model(model: keras.Model) -> D3NetConfig:
  """The :class:`D3NetConfig` of a model built by :func:`build_d3net` (or loaded)."""
  config = getattr(model, "d3net_config", None)
  if isinstance(config, D3NetConfig):
    return config
  raise ValueError(f"Model {model.name!r} is not a D3Net (type {type(model).__name__})")


def load_imagenet_weights(model: keras.Model, path: str) -> int:
  """Copies ImageNet DenseNet-121 weights into a D3-Net's encoder.

  The file is loaded into ``keras.applications.DenseNet121(weights=None)``
  (first without the classifier, then with it), and every layer with weights
  is copied to the D3-Net layer of the same name, shapes checked. The stem's
  ``down1`` convolution (DenseNet has a max-pool there) and the decoder keep
  their random initialisation. With ``input_features="rgb+bandpass"`` the
  stem convolution gets ImageNet's kernel on its three RGB channels and keeps
  its random one on the band-pass channels.

  Args:
    model: A D3-Net with a DenseNet-121 config.
    path: The weight file, e.g.
      ``densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5``.

  Returns:
    The number of layers copied.

  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: The model is no DenseNet-121 D3-Net, or the file does not
      hold DenseNet-121 weights.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"ImageNet weight file {path!r} not found (expected the weights of "
                            "keras.applications.DenseNet121, e.g. "
                            "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5)")
  config = config_from_model(model)
  if not config.is_densenet121:
    raise ValueError("ImageNet weights need the DenseNet-121 encoder (D3NetConfig.full()), got "
                     f"{config}")
  source, errors = None, []
  for include_top, shape in ((False, (None, None, 3)), (True, (224, 224, 3))):
    candidate = keras.applications.DenseNet121(include_top=include_top, weights=None,
                                               input_shape=shape)
    kernels = {layer.name: layer.get_weights()[0] for layer in candidate.layers
               if isinstance(layer, keras.layers.Conv2D)}
    try:
      with warnings.catch_warnings():  # Keras warns once per layer it skips.
        warnings.simplefilter("ignore")
        candidate.load_weights(path)
    except Exception as error:  # pylint: disable=broad-except  # Keras raises many kinds.
      message = str(error).split("\n")[0][:300]
      errors.append(f"include_top={include_top}: {type(error).__name__}: {message}")
      continue
    # A Keras 3 file may load partly with warnings only: every (randomly
    # initialised) convolution must have been overwritten.
    missed = [name for name, kernel in kernels.items()
              if np.array_equal(kernel, candidate.get_layer(name).get_weights()[0])]
    if missed:
      errors.append(f"include_top={include_top}: no weights for {len(missed)} convolutions, "
                    f"e.g. {missed[:3]}")
      continue
    source = candidate
    break
  if source is None:
    raise ValueError(f"ImageNet weight file {path!r} does not match keras.applications."
                     "DenseNet121 (include_top=False or True): " + " | ".join(errors))
  copied = 0
  for layer in source.layers:
    weights = layer.get_weights()
    if not weights or layer.name == "predictions":
      continue
    try:
      target = model.get_layer(layer.name)
    except ValueError:
      raise ValueError(f"D3-Net has no layer {layer.name!r} for the ImageNet weights of "
                       f"{path!r}") from None
    shapes = [w.shape for w in target.get_weights()]
    if layer.name == "conv1_conv" and config.input_features != "rgb":
      kernel = target.get_weights()[0]
      if kernel.shape[:2] + kernel.shape[3:] == weights[0].shape[:2] + weights[0].shape[3:]:
        kernel[:, :, :weights[0].shape[2], :] = weights[0]
        weights = [kernel]
    if shapes != [w.shape for w in weights]:
      raise ValueError(f"ImageNet weights of layer {layer.name!r} in {path!r} have shapes "
                       f"{[w.shape for w in weights]}, D3-Net's {shapes}")
    target.set_weights(weights)
    copied += 1
  logging.info("Copied ImageNet weights of %d DenseNet-121 layers from %s", copied, path)
  return copied
