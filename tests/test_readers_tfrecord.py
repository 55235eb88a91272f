"""Tests for TFRecord shards: writer and reader round trip, bad records."""

import numpy as np
import pytest
import tensorflow as tf

from d3tf.data import stream_errors
from d3tf.data.readers import nyu
from d3tf.data.readers import tfrecord
from d3tf.data.validation import DataError


def _samples(n=5, h=6, w=7):
  rng = np.random.default_rng(0)
  out = []
  for i in range(n):
    depth = rng.uniform(0.5, 9.0, (h, w)).astype(np.float32)
    depth[0, i % w] = 0.0  # an invalid pixel
    out.append((f"s{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8), depth))
  return out


def test_float32_round_trip_in_shards(tmp_path):
  samples = _samples()
  paths = tfrecord.write_tfrecords(samples, tmp_path / "out" / "train", samples_per_shard=2)
  assert [p.rsplit("/", 1)[1] for p in paths] == [
      "train-00000-of-00003.tfrecord", "train-00001-of-00003.tfrecord",
      "train-00002-of-00003.tfrecord"]
  assert not list((tmp_path / "out").glob("*.tmp"))
  reader = tfrecord.TFRecordReader(str(tmp_path / "out" / "train-*.tfrecord"))
  ds = reader.as_dataset()
  assert ds.element_spec["image"].dtype == tf.uint8
  assert ds.element_spec["depth"].shape.as_list() == [None, None]
  got = list(reader.iter_samples())
  assert [name for name, _, _ in got] == [name for name, _, _ in samples]
  for (_, image, depth), (_, image0, depth0) in zip(got, samples):
    np.testing.assert_array_equal(image, image0)
    np.testing.assert_array_equal(depth, depth0)  # exact


def test_png16_round_trip_real_nyu(shared_subdir, tmp_path):
  for name in ("00000_colors.png", "00000_depth.png", "00001_colors.png", "00001_depth.png"):
    (tmp_path / name).write_bytes((shared_subdir("nyuv2_samples") / name).read_bytes())
  source = nyu.NyuPngReader(tmp_path)  # two real frames are enough
  paths = tfrecord.write_tfrecords(source, tmp_path / "nyu", depth_format="png16",
                                   depth_scale=0.001)
  assert len(paths) == 1
  got = list(tfrecord.TFRecordReader(paths).iter_samples())
  assert [name for name, _, _ in got] == ["00000", "00001"]
  image0, depth0 = source.load(1)
  np.testing.assert_array_equal(got[1][1], image0)
  np.testing.assert_allclose(got[1][2], depth0, atol=0.0005 + 1e-6)


def test_writer_rejects_bad_samples(tmp_path):
  name, image, depth = _samples(1)[0]
  with pytest.raises(DataError, match=r"s0: depth values up to .* millimetres"):
    tfrecord.write_tfrecords([(name, image, depth * 1000)], tmp_path / "mm")
  assert not list(tmp_path.glob("mm*"))  # nothing half-written
  with pytest.raises(DataError, match=r"far: depth up to 70 m does not fit a 16-bit PNG"):
    tfrecord.encode_example("far", image, np.full(depth.shape, 70.0, np.float32),
                            depth_format="png16")
  with pytest.raises(DataError, match=r"odd: depth map size 6x8 .* differs from image size 6x7"):
    tfrecord.encode_example("odd", image, np.ones((6, 8), np.float32))
  with pytest.raises(ValueError, match="depth_format"):
    tfrecord.encode_example("x", image, depth, depth_format="jpeg")


def test_bad_record_names_shard_and_sample(tmp_path):
  good = _samples(2)
  path = tmp_path / "mixed.tfrecord"
  bad = tf.train.Example()
  bad.ParseFromString(tfrecord.encode_example(*good[1]))
  bad.features.feature["name"].bytes_list.value[0] = b"broken"
  bad.features.feature["depth/data"].bytes_list.value[0] = b"\x00" * 12
  with tf.io.TFRecordWriter(str(path)) as writer:
    writer.write(tfrecord.encode_example(*good[0]))
    writer.write(bad.SerializeToString())
  # The graph raises it (tf.debugging.Assert escapes the quotes); stream_errors unescapes it.
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r"mixed\.tfrecord \(record \\'broken\\'\): float32 depth has 12 bytes"):
    list(tfrecord.TFRecordReader([str(path)]).as_dataset())
  with pytest.raises(DataError,
                     match=r"mixed\.tfrecord \(record 'broken'\): float32 depth has 12 bytes"):
    stream_errors.call(list, tfrecord.TFRecordReader([str(path)]).as_dataset())
  reader = tfrecord.TFRecordReader(str(path), on_error="skip")
  assert [name for name, _, _ in reader.iter_samples()] == ["s0"]
  assert reader.skipped == 1


def test_truncated_shard(tmp_path):
  paths = tfrecord.write_tfrecords(_samples(4), tmp_path / "t", samples_per_shard=2)
  data = open(paths[1], "rb").read()
  with open(paths[1], "wb") as f:
    f.write(data[:-30])
  with pytest.raises(tf.errors.DataLossError):
    list(tfrecord.TFRecordReader(paths).as_dataset())
  with pytest.raises(DataError, match=r"t-00001-of-00002\.tfrecord: truncated or corrupt "
                     r"TFRecord shard after 1 records"):
    tfrecord.TFRecordReader(paths).verify_shards()
  reader = tfrecord.TFRecordReader(paths, on_error="skip")
  assert reader.verify_shards() == 2 and reader.files == [paths[0]] and reader.skipped == 1
  assert [name for name, _, _ in reader.iter_samples()] == ["s0", "s1"]


def test_no_shards():
  with pytest.raises(ValueError, match="no TFRecord shard matches"):
    tfrecord.TFRecordReader("/nonexistent/x-*.tfrecord")
