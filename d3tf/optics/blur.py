"""Convolution of image planes with one PSF, laid out for speed on CPU and GPU.

The renderer keeps its slabs *planar*: a float32 tensor ``[C, B, H, W]``
(channel-major), because broadcasting a per-pixel mask over channels is cheap
in that layout and slow in NHWC with few channels. Blurs use two tricks:

* a separable (Gaussian) kernel runs as a depthwise convolution along H with
  the W axis as the channel axis (many channels: the fast path of TensorFlow's
  depthwise kernels), then the planes are transposed and the same is done
  along W. The result therefore comes back **transposed**, ``[C, B, W, H]``;
  the renderer keeps its accumulators in that layout and transposes once at
  the end.
* a non-separable kernel (the disk) is applied by FFT, whose cost does not
  grow with the blur, or, when it is the sum of two separable terms (3x3
  disks), as two separable blurs; the result is transposed too.

Callers pad the planes by exactly the kernel radius beforehand (reflection or
zeros); the blurs return the unpadded ('VALID') region.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Kernel:
  """One PSF as NumPy weights: separable (1-D, applied on both axes) or 2-D.

  Attributes:
    weights: A normalised 1-D array (separable) or square 2-D array, odd-sized.
  """

  weights: np.ndarray

  @property
  def separable(self) -> bool:
    return self.weights.ndim == 1

  @property
  def radius(self) -> int:
    return self.weights.shape[0] // 2

  @property
  def is_identity(self) -> bool:
    return self.weights.size == 1

  def separable_terms(self, tolerance: float = 1e-7) -> list[tuple[float, np.ndarray]]:
    """A 2-D kernel as few ``(lambda, q)`` terms with ``sum lambda * outer(q, q)`` equal to it.

    The kernel is a symmetric matrix (PSFs here are symmetric under
    transposition), so its eigendecomposition gives such terms; the fewest
    whose sum matches every weight within ``tolerance`` are returned.
    """
    values, vectors = np.linalg.eigh(self.weights)
    order = np.argsort(-np.abs(values))
    terms = []
    approximation = np.zeros_like(self.weights)
    for i in order:
      terms.append((float(values[i]), vectors[:, i]))
      approximation = approximation + values[i] * np.outer(vectors[:, i], vectors[:, i])
      if np.abs(approximation - self.weights).max() <= tolerance:
        break
    return terms


#: A 2-D kernel that is a sum of at most this many separable terms (3x3 disks
#: are two) is applied as such: two depthwise passes per term cost less than
#: an FFT at these sizes on CPU.
_MAX_SEPARABLE_TERMS = 2


def _transpose_hw(planes: tf.Tensor) -> tf.Tensor:
  return tf.transpose(planes, [0, 1, 3, 2])


def _depthwise_along_rows(planes: tf.Tensor, taps: tf.Tensor) -> tf.Tensor:
  """Correlates every column of ``[C, B, H, W]`` planes with 1-D ``taps`` along H.

  'VALID': the output loses ``len(taps) - 1`` rows, the padding of the input.
  """
  shape = tf.shape(planes)
  channels, batch, height, width = shape[0], shape[1], shape[2], shape[3]
  x = tf.reshape(planes, tf.stack([channels * batch, height, 1, width]))
  filters = tf.tile(tf.reshape(taps, [-1, 1, 1, 1]), tf.stack([1, 1, width, 1]))
  y = tf.nn.depthwise_conv2d(x, filters, [1, 1, 1, 1], "VALID")
  return tf.reshape(y, tf.stack([channels, batch, tf.shape(y)[1], width]))


def _fast_fft_length(n: int) -> int:
  """The smallest product of 2s, 3s and 5s that is >= n (FFTs of such sizes are fast)."""
  best = 1
  while best < n:
    best *= 2
  power3 = 1
  while power3 < 2 * n:
    power5 = power3
    while power5 < 2 * n:
      candidate = power5
      while candidate < n:
        candidate *= 2
      best = min(best, candidate)
      power5 *= 5
    power3 *= 3
  return best


def _fft_convolve(planes: tf.Tensor, kernel) -> tf.Tensor:
  """2-D convolution of ``[C, B, H, W]`` planes with a centred square kernel, by FFT.

  'VALID': the output loses the kernel's radius on every side (where the
  circular convolution wraps around). Where the size is known when the graph
  is built, the planes are zero-padded to a size whose FFT is fast (the
  padding lies beyond the part that is kept).
  """
  height, width = planes.shape[2], planes.shape[3]
  if height is not None and width is not None:
    fft_height, fft_width = _fast_fft_length(height), _fast_fft_length(width)
    planes = tf.pad(planes, [[0, 0], [0, 0], [0, fft_height - height], [0, fft_width - width]])
  else:
    height, width = tf.shape(planes)[2], tf.shape(planes)[3]
    fft_height, fft_width = height, width
  side = kernel.shape[0]
  radius = side // 2
  if isinstance(kernel, np.ndarray) and isinstance(fft_height, int):
    # Static kernel and size: its spectrum is a constant, computed once here.
    padded = np.zeros((fft_height, fft_width))
    padded[:side, :side] = kernel
    padded = np.roll(padded, (-radius, -radius), axis=(0, 1))
    kernel_spectrum = tf.constant(np.fft.rfft2(padded).astype(np.complex64))
  else:
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    kernel = tf.pad(kernel, tf.stack([[0, fft_height - side], [0, fft_width - side]]))
    kernel = tf.roll(kernel, shift=[-radius, -radius], axis=[0, 1])
    kernel_spectrum = tf.signal.rfft2d(kernel)
  spectrum = tf.signal.rfft2d(planes) * kernel_spectrum
  full = tf.signal.irfft2d(spectrum, fft_length=tf.stack([fft_height, fft_width]))
  return full[:, :, radius:height - radius, radius:width - radius]


def blur_planes_transposed(planes: tf.Tensor, kernel: Kernel) -> tf.Tensor:
  """Blurs ``[C, B, H, W]`` planes with ``kernel``; returns ``[C, B, W, H]``.

  Args:
    planes: float32 planes, padded by ``kernel.radius`` on H and W.
    kernel: The PSF.

  Returns:
    The blurred planes with H and W swapped, without the padding.
  """
  if kernel.is_identity:
    return _transpose_hw(planes)
  if kernel.separable:
    return blur_planes_transposed_by_weights(planes, tf.constant(kernel.weights, tf.float32))
  terms = kernel.separable_terms()
  if len(terms) <= _MAX_SEPARABLE_TERMS:  # small disks: cheaper than an FFT.
    return tf.add_n([value * blur_planes_transposed_by_weights(
        planes, tf.constant(vector, tf.float32)) for value, vector in terms])
  return _transpose_hw(_fft_convolve(planes, kernel.weights))


def blur_planes_transposed_by_weights(planes: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """As :func:`blur_planes_transposed`, for kernel weights held in a tensor.

  Args:
    planes: float32 ``[C, B, H, W]`` planes, padded by the kernel's radius
      (half its static size).
    weights: A symmetric kernel with a static shape: 1-D (separable, applied
      along both axes) or square 2-D; it may be computed in the graph (e.g.
      gathered from a table of slab kernels inside a ``tf.while_loop``).

  Returns:
    The blurred planes, ``[C, B, W, H]``, without the padding.
  """
  if weights.shape.rank == 1:
    rows = _depthwise_along_rows(planes, weights)  # symmetric: correlation = convolution.
    return _depthwise_along_rows(_transpose_hw(rows), weights)
  return _transpose_hw(_fft_convolve(planes, weights))


def kernel_table(kernels: list[Kernel]) -> np.ndarray:
  """Stacks kernels of one kind into one float32 array, zero-padded to the largest.

  Returns:
    ``[L, K]`` for separable kernels or ``[L, K, K]`` for 2-D ones, each kernel
    centred, so that entry ``i`` blurs exactly as ``kernels[i]``.
  """
  radius = max(kernel.radius for kernel in kernels)
  side = 2 * radius + 1
  rank = kernels[0].weights.ndim
  table = np.zeros((len(kernels),) + (side,) * rank, np.float32)
  for i, kernel in enumerate(kernels):
    offset = radius - kernel.radius
    window = tuple(slice(offset, offset + kernel.weights.shape[0]) for _ in range(rank))
    table[(i,) + window] = kernel.weights
  return table
