"""Tests for DiwReader: Depth-in-the-Wild images with one relative-depth pair each."""

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from d3tf.data.readers import diw
from d3tf.data.validation import DataError


def _write_jpeg(path, h, w):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path, "JPEG")


@pytest.fixture
def diw_dir(tmp_path):
  # As in DIW_test.csv: an image line, then y_A,x_A,y_B,x_B,ordinal,width,height (1-based).
  _write_jpeg(tmp_path / "DIW_test" / "a.thumb", 10, 20)
  _write_jpeg(tmp_path / "DIW_test" / "b.thumb", 20, 40)  # twice the CSV's size
  (tmp_path / "DIW_test.csv").write_text(
      "./DIW_test/a.thumb\n"
      "1,1,10,20,>,20,10\n"
      "./DIW_test/b.thumb\n"
      "5,3,7,12,<,20,10\n")
  return tmp_path


def test_parse_one_based_row_first(diw_dir):
  reader = diw.DiwReader(diw_dir / "DIW_test.csv")
  a, b = reader.samples()
  assert a.name == "a" and a.point_a == (0, 0) and a.point_b == (9, 19) and a.ordinal == 1
  assert (a.width, a.height) == (20, 10) and a.line == 2
  assert b.point_a == (4, 2) and b.point_b == (6, 11) and b.ordinal == -1
  image, pairs, ordinal = reader.load(a)
  assert image.shape == (10, 20, 3)
  assert pairs.tolist() == [[0, 0, 9, 19]] and ordinal.tolist() == [1]
  # b.thumb is 20x40 while the CSV says 10x20: points follow the image.
  image, pairs, ordinal = reader.load(1)
  assert image.shape == (20, 40, 3)
  assert pairs.tolist() == [[8, 4, 12, 22]] and ordinal.tolist() == [-1]


def test_dataset(diw_dir):
  ds = diw.DiwReader(diw_dir / "DIW_test.csv").as_dataset()
  assert set(ds.element_spec) == {"image", "pairs", "ordinal", "name"}
  elements = list(ds)
  assert [e["name"].numpy() for e in elements] == [b"a", b"b"]
  assert elements[0]["pairs"].dtype == tf.int32 and elements[0]["pairs"].shape == (1, 4)
  assert elements[1]["ordinal"].numpy().tolist() == [-1]


def test_write_diw_csv_round_trip(diw_dir):
  diw.write_diw_csv(diw_dir / "out.csv", [("./DIW_test/a.thumb", 2, 3, 4, 5, ">", 20, 10)])
  assert (diw_dir / "out.csv").read_text().splitlines() == ["./DIW_test/a.thumb",
                                                            "2,3,4,5,>,20,10"]
  (sample,) = diw.DiwReader(diw_dir / "out.csv").samples()
  assert sample.point_a == (1, 2) and sample.point_b == (3, 4)


@pytest.mark.parametrize("line, problem", [
    ("1,1,10,20,=,20,10", "ordinal relation must be '>' or '<', got '='"),
    ("0,1,10,20,>,20,10", r"point A \(y=0, x=1\) outside the 1-based 20x10 image"),
    ("1,1,11,20,>,20,10", r"point B \(y=11, x=20\) outside"),
    ("3,3,3,3,<,20,10", "points A and B coincide"),
    ("1,1,10,>,20,10", "expected 7 fields"),
    ("a,1,10,20,>,20,10", "non-numeric"),
])
def test_malformed_records(diw_dir, line, problem):
  (diw_dir / "bad.csv").write_text(f"./DIW_test/a.thumb\n{line}\n")
  with pytest.raises(DataError, match=rf"bad\.csv: line 2: {problem}"):
    diw.DiwReader(diw_dir / "bad.csv").samples()


def test_skip_counts_bad_records_and_images(diw_dir):
  (diw_dir / "mixed.csv").write_text(
      "./DIW_test/a.thumb\n1,1,10,20,>,20,10\n"
      "./DIW_test/a.thumb\n1,1,10,20,?,20,10\n"
      "./DIW_test/missing.thumb\n1,1,2,2,<,20,10\n"
      "./DIW_test/b.thumb\n")
  with pytest.raises(DataError, match="odd number of non-empty lines"):
    diw.DiwReader(diw_dir / "mixed.csv").samples()
  reader = diw.DiwReader(diw_dir / "mixed.csv", on_error="skip")
  assert len(reader.samples()) == 2 and reader.skipped == 2
  with pytest.raises(DataError, match=r"missing\.thumb: file not found"):
    reader.load(1)
  assert [e["name"].numpy() for e in reader.as_dataset()] == [b"a"]
  assert reader.skipped == 3


def test_image_root_and_absolute_paths(diw_dir, tmp_path_factory):
  other = tmp_path_factory.mktemp("csvs")
  (other / "rel.csv").write_text("DIW_test/a.thumb\n1,1,2,2,>,20,10\n")
  assert diw.DiwReader(other / "rel.csv", image_root=diw_dir).load(0)[0].shape == (10, 20, 3)
  (other / "abs.csv").write_text(f"{diw_dir / 'DIW_test' / 'a.thumb'}\n1,1,2,2,>,20,10\n")
  assert diw.DiwReader(other / "abs.csv").load(0)[0].shape == (10, 20, 3)
