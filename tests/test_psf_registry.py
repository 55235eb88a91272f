"""Tests of the PSF registry: one entry serves the renderer, its references and the metadata."""

import numpy as np
import pytest

from d3tf import artifacts
from d3tf.optics import Camera
from d3tf.optics import psf as psf_lib
from d3tf.optics import render_defocus
from d3tf.optics.reference import raytrace
from d3tf.optics.reference import scipy_render


def test_registered_psfs():
  assert psf_lib.names()[:2] == ("gaussian", "disk") and psf_lib.DEFAULT_PSF == "gaussian"
  assert psf_lib.get("gaussian").kernel(5.0, 0.3).ndim == 1  # Separable.
  np.testing.assert_array_equal(psf_lib.psf_kernel_2d("disk", 5.0), psf_lib.disk_kernel_2d(5.0))
  with pytest.raises(ValueError, match=r"psf must be one of \('gaussian', 'disk'.*'square'"):
    psf_lib.get("square")
  with pytest.raises(ValueError, match="registered already"):
    psf_lib.register(psf_lib.get("disk"))


@pytest.fixture
def box_psf():
  """A box PSF (a uniform square of the blur diameter), registered for one test."""

  def kernel(diameter, rho):
    del rho
    side = 2 * int(round(abs(diameter) / 2)) + 1
    return np.full([side], 1.0 / side)

  entry = psf_lib.register(psf_lib.PSF(
      name="box", description="uniform square", kernel=kernel, min_support=1e-6,
      aperture=lambda spiral, diameter, rho: (0.5 * diameter * spiral, np.ones_like(spiral))))
  yield entry
  del psf_lib._REGISTRY["box"]  # pylint: disable=protected-access


def test_a_new_psf_is_one_registration(box_psf):
  rng = np.random.default_rng(0)
  image = rng.uniform(0.2, 0.8, (1, 32, 32, 3)).astype(np.float32)
  depth = np.full((1, 32, 32), 0.7, np.float32)  # About 14 px of blur for the NYU camera.
  camera = Camera.nyu(2.0)
  out = render_defocus(image, depth, camera, psf=box_psf.name).numpy()
  reference = scipy_render.render_defocus_scipy(image, depth, camera, psf=box_psf.name)
  np.testing.assert_allclose(out, reference, atol=2e-3)
  assert out.std() < 0.5 * image.std()  # Blurred.
  points, weights = raytrace.aperture_samples("box", 16, camera.aperture_diameter_m)
  assert points.shape == (16, 2) and weights.sum() == pytest.approx(1.0)
  meta = artifacts.Metadata.for_training(camera=camera, psf="box")
  assert meta.render_kwargs()["psf"] == "box"
