"""Readers of real RGB-D datasets, all with the same element contract.

Every reader lists its samples in Python (``samples()``), loads one
(``load(sample) -> (image uint8 [H, W, 3], depth float32 [H, W] metres, 0 =
invalid)``) and builds a ``tf.data.Dataset`` of ``{"image", "depth", "name"}``
dicts (``as_dataset()``). Bad input raises
:class:`~d3tf.data.validation.DataError` naming the file, or with
``on_error="skip"`` is logged and counted.

* :class:`NyuMatReader`, :class:`NyuPngReader`: NYU Depth v2 labelled set.
* :class:`NyuDenseDepthReader`: NYU training frames in DenseDepth's layout
  (``<scene>_out/<n>.jpg`` + uint8 ``<n>.png``), split by scene.
* :class:`DfdReader`: the real DSLR depth-from-defocus dataset.
* :class:`MiddleburyReader`: Middlebury stereo, disparity to metric depth.
* :class:`DiwReader`: Depth in the Wild (relative depth pairs, no dense depth;
  its dataset has ``"pairs"`` and ``"ordinal"`` instead of ``"depth"``).
* :class:`FolderReader`: any folder(s) of RGB + depth (16-bit PNG or .npy).
* :class:`TFRecordReader`, :func:`write_tfrecords`: TFRecord shards.

:mod:`d3tf.data.readers.tfrecord` imports TensorFlow when imported; the other
readers only import it in ``as_dataset()``.
"""

from d3tf.data.readers.common import DepthReader
from d3tf.data.readers.common import Sample
from d3tf.data.readers.common import read_depth_npy
from d3tf.data.readers.common import read_depth_png
from d3tf.data.readers.common import read_image
from d3tf.data.readers.densedepth import NyuDenseDepthReader
from d3tf.data.readers.dfd import DfdReader
from d3tf.data.readers.diw import DiwReader
from d3tf.data.readers.diw import DiwSample
from d3tf.data.readers.folder import FolderReader
from d3tf.data.readers.middlebury import MiddleburyReader
from d3tf.data.readers.middlebury import read_pfm
from d3tf.data.readers.nyu import EIGEN_CROP
from d3tf.data.readers.nyu import NyuMatReader
from d3tf.data.readers.nyu import NyuPngReader
from d3tf.data.readers.nyu import eigen_crop
from d3tf.data.readers.nyu import eigen_crop_mask
from d3tf.data.readers.nyu import read_splits

__all__ = [
    "DepthReader",
    "DfdReader",
    "DiwReader",
    "DiwSample",
    "EIGEN_CROP",
    "FolderReader",
    "MiddleburyReader",
    "NyuDenseDepthReader",
    "NyuMatReader",
    "NyuPngReader",
    "Sample",
    "TFRecordReader",
    "eigen_crop",
    "eigen_crop_mask",
    "read_depth_npy",
    "read_depth_png",
    "read_image",
    "read_pfm",
    "read_splits",
    "write_tfrecords",
]


def __getattr__(name):
  # TFRecord support needs TensorFlow at import time: load it on first use.
  if name in ("TFRecordReader", "write_tfrecords"):
    from d3tf.data.readers import tfrecord  # pylint: disable=g-import-not-at-top
    return getattr(tfrecord, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
