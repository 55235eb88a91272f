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
