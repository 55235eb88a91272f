"""Tests of d3tf.artifacts: the metadata dataclass, old metadata files, model_dir and export layouts."""

import json

import pytest

from d3tf import artifacts
from d3tf.artifacts import exports
from d3tf.models import D3NetConfig
from d3tf.optics import Camera
from d3tf.optics import RenderOptions

# A d3tf_metadata.json as d3tf 0.1.0 wrote it (schema 1: no schema_version, no tf_version),
# trimmed from runs/ of that version; exports add an "export" entry.
_SCHEMA_1 = {
    "camera": {"focal_length_m": 0.015, "f_number": 2.8, "pixel_pitch_m": 5.6e-06,
               "focus_distance_m": 2.0},
    "psf": "gaussian",
    "render_options": {"mode": "improved", "rho": 0.3, "depth_range_m": [0.5, 10.0],
                       "layer_spacing": "blur", "output_bits": 8},
    "model_config": {"growth_rate": 8, "block_layers": [2, 2, 2, 2], "dropout_rate": 0.5,
                     "aleatoric": "laplace", "variational_blocks": []},
    "input": "defocus",
    "train_data": "nyu_mat:/data/nyu_depth_v2_labeled.mat",
    "d3tf_version": "0.1.0",
    "crop_size": 256, "loss": "laplace_nll", "real_defocus": False,
}


def test_schema_1_metadata_still_reads(tmp_path):
  (tmp_path / "d3tf_metadata.json").write_text(json.dumps(_SCHEMA_1))
  meta = artifacts.read_metadata(tmp_path / "model.keras")
  assert meta.schema_version == 1 and meta.tf_version is None
  assert meta.camera == Camera.nyu(2.0) and meta.input_kind == "defocus"
  assert meta.aleatoric == "laplace" and not meta.variational
  assert meta.extra == {"crop_size": 256, "loss": "laplace_nll", "real_defocus": False}
  kwargs = meta.render_kwargs()
  assert kwargs["psf"] == "gaussian" and kwargs["depth_range_m"] == (0.5, 10.0)
  # Written again, it is schema 2 and keeps every key of the old file.
  again = meta.to_dict()
  assert again["schema_version"] == artifacts.SCHEMA_VERSION == 2
  assert {k: v for k, v in again.items() if k not in ("schema_version", "tf_version")} == _SCHEMA_1
  assert artifacts.Metadata.from_dict(again).camera == meta.camera


def test_metadata_round_trips(tmp_path):
  meta = artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), psf="disk", render_options=RenderOptions.for_mode("paper"),
      model_config=D3NetConfig.tiny(), train_data="procedural", extra={"crop_size": 64})
  written = artifacts.write_metadata(tmp_path / "model.keras", meta)
  assert written == str(tmp_path / artifacts.METADATA_FILENAME)
  read = artifacts.read_metadata(tmp_path)
  assert read == meta == artifacts.read_metadata(written)
  assert read.to_dict() == json.loads((tmp_path / artifacts.METADATA_FILENAME).read_text())
  assert read.d3tf_version and read.tf_version and read.extra == {"crop_size": 64}
  assert D3NetConfig.from_dict(read.model_config) == D3NetConfig.tiny()
  kwargs = read.render_kwargs()
  assert kwargs.pop("psf") == "disk"
  assert RenderOptions.for_mode(**kwargs) == RenderOptions.for_mode("paper")
  assert "focus distance 2 m" in read.describe() and "disk PSF" in read.describe()


def test_metadata_for_an_all_in_focus_model():
  meta = artifacts.Metadata.for_training(model_config={"growth_rate": 4})
  assert meta.input_kind == "sharp" and meta.camera is None and meta.render_options is None
  assert "all-in-focus" in meta.describe()
  assert "no metadata" in artifacts.describe(None)


@pytest.mark.parametrize("change, message", [
    ({"camera": None}, "input 'defocus' needs a 'camera'"),
    ({"input": "blurry"}, "'input' must be one of"),
    ({"psf": "square"}, "'psf' must be one of"),
    ({"camera": {"focal_length_m": 0.015}}, "bad 'camera'.*missing"),
    ({"render_options": {"mode": "fancy"}}, "bad 'render_options'"),
    ({"schema_version": 99}, "metadata schema 99 is newer"),
])
def test_bad_metadata_names_the_file(tmp_path, change, message):
  path = tmp_path / "d3tf_metadata.json"
  path.write_text(json.dumps(dict(_SCHEMA_1, **change)))
  with pytest.raises(ValueError, match=f"{path}: {message}"):
    artifacts.read_metadata(tmp_path)


def test_unreadable_metadata_names_the_file(tmp_path):
  path = tmp_path / "d3tf_metadata.json"
  with pytest.raises(FileNotFoundError, match=f"{path}: model metadata not found"):
    artifacts.read_metadata(tmp_path)
  path.write_text("{not json")
  with pytest.raises(ValueError, match=f"{path}: corrupt"):
    artifacts.read_metadata(path)
  path.write_bytes(b"\xff\xfe\x00")
  with pytest.raises(ValueError, match=f"{path}: cannot read"):
    artifacts.read_metadata(path)
  path.write_text("[1, 2]")
  with pytest.raises(ValueError, match=f"{path}: metadata must be a JSON object"):
    artifacts.read_metadata(path)


def test_model_dir_checkpoint_choice(tmp_path):
  (tmp_path / "best.keras").write_bytes(b"")
  assert artifacts.resolve_model_path(tmp_path) == str(tmp_path / "best.keras")
  assert artifacts.resolve_model_path(tmp_path, "best") == str(tmp_path / "best.keras")
  with pytest.raises(FileNotFoundError, match="model.keras"):
    artifacts.resolve_model_path(tmp_path, "final")
  (tmp_path / "model.keras").write_bytes(b"")
  assert artifacts.resolve_model_path(tmp_path) == str(tmp_path / "model.keras")
  with pytest.raises(ValueError, match="checkpoint must be one of"):
    artifacts.resolve_model_path(tmp_path, "last")


def test_export_layout_versions_and_find(tmp_path):
  base = exports.base_dir(tmp_path, "tiny")
  assert exports.list_versions(base) == [] and exports.next_version(base) == 1
  with pytest.raises(ValueError, match="name must be"):
    exports.base_dir(tmp_path, "../up")
  meta = artifacts.Metadata.from_dict(_SCHEMA_1)
  for version in (1, 3):
    target, number = exports.version_dir(base, version, "tiny")
    staging = exports.staging_dir(base, number)
    (tmp_path / staging / "saved_model.pb").write_bytes(b"")
    path = exports.metadata_file(staging, "saved_model")
    artifacts.write_metadata(path, exports.export_metadata(meta, {"samples": 1, "format":
                                                                 "saved_model"}))
    exports.publish(staging, target)
  assert exports.list_versions(base) == [1, 3] and exports.next_version(base) == 4
  with pytest.raises(FileExistsError, match="version 3 of tiny exists already"):
    exports.version_dir(base, 3, "tiny")
  ref, read = artifacts.read_export(base)
  assert ref.kind == "saved_model" and ref.version == 3
  assert read.export["samples"] == 1 and read.export["d3tf_version"]
  text = artifacts.describe_export(ref, read)
  assert "Camera: focal length 15 mm, f-number 2.8, pixel pitch 5.6 um, focus distance 2 m" in text
  assert "crop_size 256" in text
  assert artifacts.find_export(tmp_path) is None
  with pytest.raises(FileNotFoundError, match="no d3tf export"):
    artifacts.read_export(tmp_path)
