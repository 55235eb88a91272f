"""Copies the weights of one trained D3-Net into another, layer by layer, by name.

For fine-tuning (``python -m d3tf.train --init_from``) between models that
share their layer names but not all their layers: a deterministic model into
a Bayesian one (its decoder convolutions become the means of the variational
posteriors, whose scales keep their initialisation; a new aleatoric head keeps
its random initialisation), a Bayesian model back into a deterministic one
(the posterior means become the kernels), or the same architecture (every
weight).
"""

from __future__ import annotations

import dataclasses

from absl import logging
import keras
import numpy as np

from d3tf.models.variational import Conv2DFlipout
from d3tf.models.variational import Conv2DReparameterization

_VARIATIONAL = (Conv2DFlipout, Conv2DReparameterization)


@dataclasses.dataclass
class TransferReport:
  """What :func:`copy_weights_by_name` did.

  Attributes:
    copied: Target layers whose weights were all copied.
    to_posterior_mean: Variational target layers that got a deterministic
      kernel (and bias) as their posterior mean.
    from_posterior_mean: Deterministic target layers that got a variational
      layer's posterior mean.
    kept: Target layers with weights that the source lacks (initialisation kept).
    unused: Source layers with weights that the target lacks.
  """

  copied: list[str] = dataclasses.field(default_factory=list)
  to_posterior_mean: list[str] = dataclasses.field(default_factory=list)
  from_posterior_mean: list[str] = dataclasses.field(default_factory=list)
  kept: list[str] = dataclasses.field(default_factory=list)
  unused: list[str] = dataclasses.field(default_factory=list)


def _mean_weights(layer) -> list[np.ndarray]:
  """Kernel (and bias) of a convolution; the posterior mean of a variational one."""
  if isinstance(layer, _VARIATIONAL):
    weights = [keras.ops.convert_to_numpy(layer.kernel_loc)]
    return weights + ([keras.ops.convert_to_numpy(layer.bias)] if layer.bias is not None else [])
  return layer.get_weights()


def _shapes(weights) -> list[tuple[int, ...]]:
  return [tuple(w.shape) for w in weights]


def copy_weights_by_name(target: keras.Model, source: keras.Model) -> TransferReport:
  """Copies ``source``'s weights into the layers of ``target`` with the same names.

  Args:
    target: The model to initialise (changed in place).
    source: A trained model.

  Returns:
    A :class:`TransferReport`.

  Raises:
    ValueError: A layer of both models whose weights differ in shape (named,
      with both shapes), or no layer in common.
  """
  report = TransferReport()
  source_layers = {layer.name: layer for layer in source.layers if layer.weights}
  for layer in target.layers:
    if not layer.weights:
      continue
    origin = source_layers.pop(layer.name, None)
    if origin is None:
      report.kept.append(layer.name)
      continue
    target_variational = isinstance(layer, _VARIATIONAL)
    source_variational = isinstance(origin, _VARIATIONAL)
    if target_variational == source_variational:
      weights, wanted, done = origin.get_weights(), _shapes(layer.get_weights()), report.copied
    else:  # Kernel (and bias) against posterior mean, either way round.
      weights, wanted = _mean_weights(origin), _shapes(_mean_weights(layer))
      done = report.to_posterior_mean if target_variational else report.from_posterior_mean
    if _shapes(weights) != wanted:
      raise ValueError(f"Layer {layer.name!r}: the source's weights have shapes "
                       f"{_shapes(weights)}, the target's {wanted}")
    if target_variational and not source_variational:
      layer.kernel_loc.assign(weights[0])
      if layer.bias is not None:
        layer.bias.assign(weights[1])
    else:
      layer.set_weights(weights)
    done.append(layer.name)
  report.unused = sorted(source_layers)
  if not (report.copied or report.to_posterior_mean or report.from_posterior_mean):
    raise ValueError("The two models have no layer with weights in common (by name)")
  logging.info("Copied the weights of %d layers; %d posterior means from deterministic "
               "kernels, %d kernels from posterior means; kept the initialisation of %s; "
               "unused source layers: %s", len(report.copied), len(report.to_posterior_mean),
               len(report.from_posterior_mean), report.kept or "none", report.unused or "none")
  return report
