"""Data: procedural RGB-D scenes, real dataset readers and the tf.data pipeline.

Every data source yields the same element: a ``tf.data.Dataset`` of dicts
``{"image": tf.uint8 [H, W, 3], "depth": tf.float32 [H, W]}`` with depth in
metres and 0 marking invalid pixels. :func:`make_dataset` turns a source into
training or evaluation batches.

Names are imported lazily, so that ``import d3tf.data`` stays cheap.
"""

import importlib

_EXPORTS = {
    # Procedural scenes (the embedded default source).
    "generate_scene": "d3tf.data.procedural",
    "procedural_dataset": "d3tf.data.procedural",
    "scene_batch": "d3tf.data.procedural",
    "SPLITS": "d3tf.data.procedural",
    "MIN_DEPTH_M": "d3tf.data.procedural",
    "MAX_DEPTH_M": "d3tf.data.procedural",
    # Augmentation.
    "AugmentOptions": "d3tf.data.augment",
    "augment_example": "d3tf.data.augment",
    "center_crop_to_multiple": "d3tf.data.augment",
    # Pipeline.
    "make_dataset": "d3tf.data.pipeline",
    "make_defocus_fn": "d3tf.data.pipeline",
    # Scene pool: each rendered scene reused for several fresh crops.
    "PoolOptions": "d3tf.data.scene_pool",
    # Resumable streams: real frames, procedural scenes, weighted mixtures.
    "mixed_stream": "d3tf.data.mixing",
    "procedural_stream": "d3tf.data.mixing",
    "reader_stream": "d3tf.data.mixing",
    # Real dataset readers and input validation.
    "DataError": "d3tf.data.validation",
    "validate_sample": "d3tf.data.validation",
    "DfdReader": "d3tf.data.readers.dfd",
    "DiwReader": "d3tf.data.readers.diw",
    "FolderReader": "d3tf.data.readers.folder",
    "MiddleburyReader": "d3tf.data.readers.middlebury",
    "NyuMatReader": "d3tf.data.readers.nyu",
    "NyuPngReader": "d3tf.data.readers.nyu",
    "NyuDenseDepthReader": "d3tf.data.readers.densedepth",
    "eigen_crop": "d3tf.data.readers.nyu",
    "eigen_crop_mask": "d3tf.data.readers.nyu",
    "TFRecordReader": "d3tf.data.readers.tfrecord",
    "write_tfrecords": "d3tf.data.readers.tfrecord",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name in _EXPORTS:
    return getattr(importlib.import_module(_EXPORTS[name]), name)
  raise AttributeError(f"module 'd3tf.data' has no attribute {name!r}")
