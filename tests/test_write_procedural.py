"""Tests of the CLI that writes procedural scenes into TFRecord shards."""

import json
import os
import subprocess
import sys

import numpy as np

from d3tf.data import procedural
from d3tf.data.readers.tfrecord import TFRecordReader


def test_cli_writes_the_generator_scenes(tmp_path):
  prefix = tmp_path / "shards" / "val"
  cmd = [sys.executable, "-m", "d3tf.data.write_procedural", f"--output_prefix={prefix}",
         "--split=validation", "--num_scenes=3", "--start_index=5", "--height=32", "--width=64",
         "--samples_per_shard=2", "--workers=2"]
  subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  shards = sorted(os.listdir(prefix.parent))
  assert shards == ["val-00000-of-00002.tfrecord", "val-00001-of-00002.tfrecord", "val.json"]
  description = json.loads((prefix.parent / "val.json").read_text())
  assert description["num_scenes"] == 3 and description["split"] == "validation"

  samples = list(TFRecordReader(str(prefix) + "-*.tfrecord").iter_samples())
  assert [name for name, _, _ in samples] == ["validation_000005", "validation_000006",
                                               "validation_000007"]
  for k, (_, image, depth) in enumerate(samples):
    expected = procedural.generate_scene(5 + k, split="validation", height=32, width=64)
    np.testing.assert_array_equal(image, expected["image"])
    # 16-bit PNG in millimetres: within half a millimetre.
    np.testing.assert_allclose(depth, expected["depth"], atol=0.0005 + 1e-6)
