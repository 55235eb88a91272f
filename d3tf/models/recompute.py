"""Memory-efficient dense blocks: each dense layer recomputed in the backward pass.

In a dense block, layer ``i`` concatenates the block input with the ``i - 1``
feature maps before it, normalises and rectifies that wide tensor and reduces
it with a 1x1 convolution (the bottleneck), then normalises, rectifies and
convolves that with a 3x3 convolution to the layer's narrow output.
Back-propagation keeps the concatenation (the BN's input) and the ReLU's
output (the convolution's input) of every layer: memory quadratic in the
block's depth. Pleiss et al. ("Memory-Efficient Implementation of DenseNets",
2017) recompute those in the backward pass instead; torchvision's
``DenseNet(memory_efficient=True)`` checkpoints the concatenation, BN, ReLU and
1x1 convolution. Here the whole dense layer runs under ``tf.recompute_grad``
(the bottleneck's output, its BN and ReLU as well, twice the block's growth
rate in channels per layer): the backward pass keeps only the pieces (the
block input and the layers' narrow outputs), and a layer's intermediates
exist only while its gradient is computed, after the decoder's activations
are gone. At 256x256 and batch 4 the full D3-Net's train step peaks 107 MB
lower than with the bottleneck alone recomputed, under mixed bfloat16, in the
same time (``benchmarks/results/train_step.md``, run 6).

The model's graph, layers and weights stay as they are (checkpoints load
either way): :func:`call_recomputing` runs the functional graph with the
nodes of each dense layer deferred and then computed together. Same maths;
the BN's moving averages are updated once (in the forward pass, not again
when recomputed).
"""

from __future__ import annotations

import contextlib
import re

import keras
import tensorflow as tf

#: Roles of a dense layer's nodes (``conv2_block1_concat``, ``conv2_block1_0_bn``, ...): the
#: concatenation starts a deferred chain, "bn", "relu" and "inner" extend it, "conv" (the
#: layer's 3x3 convolution) ends it and computes it under ``tf.recompute_grad``.
_ROLE_PATTERN = re.compile(r"^conv\d+_block\d+_(concat|0_bn|0_relu|1_conv|1_bn|1_relu|2_conv)$")
_ROLES = {"concat": "concat", "0_bn": "bn", "0_relu": "relu", "1_conv": "inner", "1_bn": "bn",
          "1_relu": "relu", "2_conv": "conv"}


def recompute_roles(model: keras.Model) -> dict[int, str]:
  """Maps ``id(layer)`` of each node of every dense layer to its role (:data:`_ROLES`)."""
  roles = {}
  for layer in model.layers:
    match = _ROLE_PATTERN.match(layer.name)
    if match:
      roles[id(layer)] = _ROLES[match.group(1)]
  return roles


class _Pieces:
  """A concatenation not computed yet: the tensors to concatenate on the channel axis."""

  def __init__(self, tensors):
    self.tensors = list(tensors)

  def materialise(self):
    return self.tensors[0] if len(self.tensors) == 1 else tf.concat(self.tensors, axis=-1)


class _Deferred:
  """Layers to apply, in order, to the concatenation of ``pieces``."""

  def __init__(self, pieces: _Pieces, layers):
    self.pieces = pieces
    self.layers = list(layers)


@contextlib.contextmanager
def _statistics_frozen(layer):
  """Keeps a BatchNormalization's moving averages as they are (momentum 1) during a call."""
  momentum = layer.momentum
  layer.momentum = 1.0  # moving * 1 + batch * 0: the same value assigned again.
  try:
    yield
  finally:
    layer.momentum = momentum


def _recomputed(deferred: _Deferred, training):
  """The deferred layers' output, their intermediates recomputed in the backward pass."""
  layers = deferred.layers
  calls = []

  def forward(*tensors):
    recomputing = bool(calls)
    calls.append(None)
    x = _Pieces(tensors).materialise()
    for layer in layers:
      frozen = (_statistics_frozen(layer) if recomputing and
                isinstance(layer, keras.layers.BatchNormalization) else contextlib.nullcontext())
      with frozen:
        x = layer(x, training=training) if isinstance(
            layer, keras.layers.BatchNormalization) else layer(x)
    return x

  return tf.recompute_grad(forward)(*deferred.pieces.tensors)


def call_recomputing(model: keras.Model, inputs, roles: dict[int, str], training=True):
  """``model(inputs, training=training)`` with the dense layers' bottlenecks recomputed.

  Args:
    model: A functional D3-Net.
    inputs: Its inputs.
    roles: :func:`recompute_roles` of ``model``.
    training: The call's training flag.

  Returns:
    The model's outputs, as ``model.call`` returns them.
  """

  def materialise(value):
    if isinstance(value, _Deferred):
      value = _recomputed(value, training)
    return value.materialise() if isinstance(value, _Pieces) else value

  def operation_fn(operation):
    role = roles.get(id(operation))

    def call(*args, **kwargs):
      if role == "concat":
        tensors = []
        for piece in args[0]:
          tensors.extend(piece.tensors if isinstance(piece, _Pieces) else [materialise(piece)])
        return _Pieces(tensors)
      if role in ("bn", "relu", "inner", "conv"):
        source = args[0]
        if isinstance(source, _Pieces):
          source = _Deferred(source, [])
        elif not isinstance(source, _Deferred):
          source = _Deferred(_Pieces([source]), [])
        deferred = _Deferred(source.pieces, source.layers + [operation])
        return _recomputed(deferred, training) if role == "conv" else deferred
      args, kwargs = tf.nest.map_structure(materialise, (args, kwargs))
      if "training" in getattr(operation, "_call_context_args", {}):
        kwargs["training"] = training
      return operation(*args, **kwargs)

    return call

  # Functional.call, with our operation_fn (Keras 3's private graph runner).
  inputs = model._standardize_inputs(inputs)  # pylint: disable=protected-access
  outputs = model._run_through_graph(inputs, operation_fn=operation_fn)  # pylint: disable=protected-access
  return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs
