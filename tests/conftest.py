"""Shared pytest fixtures.

``shared_data`` locates the real RGB-D data used by the readers' tests:
``<repo root>/../shared/data`` by default, or the folder named by the
environment variable ``D3TF_SHARED_DATA``. Tests that use it are skipped, with
a message naming the path, where that folder is absent.
"""

import os
import pathlib

import pytest

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path:
  """The real-data folder: $D3TF_SHARED_DATA, else <repo>/../shared/data."""
  override = os.environ.get("D3TF_SHARED_DATA")
  if override:
    return pathlib.Path(override)
  return _REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """Path of the real-data folder; skips the test if it is absent."""
  path = shared_data_dir()
  if not path.is_dir():
    pytest.skip(f"real data folder {path} not found (set D3TF_SHARED_DATA to its location)")
  return path


@pytest.fixture(scope="session")
def shared_subdir(shared_data):
  """Returns a function giving ``shared_data / name``, skipping if that sub-folder is absent."""

  def get(name: str) -> pathlib.Path:
    path = shared_data / name
    if not path.is_dir():
      pytest.skip(f"real data folder {path} not found (set D3TF_SHARED_DATA to its location)")
    return path

  return get


def build_tiny_camera_aware_model_dir(path: pathlib.Path) -> pathlib.Path:
  """Writes a model_dir of an untrained tiny camera-aware D3-Net (docs/any_camera.md).

  Its FiLM layers get small random weights (they start at zero), so that the camera reaches
  the decoder as well as the thin-lens head. Default camera: NYU focused at 2 m.
  """
  import dataclasses  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import models  # pylint: disable=g-import-not-at-top
  from d3tf.optics import Camera  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(3)
  config = dataclasses.replace(models.D3NetConfig.tiny(), camera_aware=True)
  model = models.build_d3net(config)
  rng = np.random.default_rng(3)
  for layer in model.layers:
    if layer.name.endswith("_film_dense"):
      layer.set_weights([rng.normal(0, 0.05, w.shape).astype(np.float32)
                         for w in layer.get_weights()])
  path.mkdir(parents=True, exist_ok=True)
  model.save(path / "model.keras")
  artifacts.write_metadata(path, artifacts.Metadata.for_training(
      camera=Camera.nyu(2.0), model_config=config, train_data="procedural (test)",
      extra={"crop_size": 32, "loss": "l1"}))
  return path


@pytest.fixture(scope="session")
def camera_aware_model_dir(tmp_path_factory) -> pathlib.Path:
  """A model_dir of a tiny camera-aware D3-Net (:func:`build_tiny_camera_aware_model_dir`)."""
  return build_tiny_camera_aware_model_dir(tmp_path_factory.mktemp("camera_aware_run"))


@pytest.fixture(scope="session")
def camera_aware_export(camera_aware_model_dir, tmp_path_factory) -> pathlib.Path:
  """SavedModel version 1 of the tiny camera-aware model: ``<tmp>/anycam/1``."""
  from d3tf import artifacts  # pylint: disable=g-import-not-at-top
  from d3tf import inference  # pylint: disable=g-import-not-at-top
  from d3tf.serving import exporter  # pylint: disable=g-import-not-at-top
  model, path = inference.load_model(camera_aware_model_dir)
  base = tmp_path_factory.mktemp("camera_aware_exports") / "anycam"
  return pathlib.Path(exporter.export_saved_model(
      model, artifacts.read_metadata(path), base, samples=1, source=str(path)))
