"""Tests of the thin-lens card ray tracer and of the layered renderer against it."""

import math

import numpy as np
import pytest
from scipy import ndimage

from d3tf.optics import Camera
from d3tf.optics import color
from d3tf.optics import psf as psf_lib
from d3tf.optics.reference import raytrace as rt
from d3tf.optics import render_defocus

H, W = 48, 64
NYU = Camera.nyu(focus_distance_m=2.0)
RED, BLUE = (0.85, 0.25, 0.1), (0.15, 0.3, 0.85)


def _texture(rgb, seed, height=H, width=W):
  return rt.random_texture(height, width, rgb, contrast=0.3, sigma_px=1.5, seed=seed)


def _linear_blur(image, psf, eps):
  """The pinhole image blurred by the PSF of diameter eps, in linear light (periodic)."""
  linear = color.srgb_to_linear(image)
  if psf == "gaussian":
    sigma = psf_lib.gaussian_sigma_px(eps)
    blurred = ndimage.gaussian_filter(linear, sigma=(sigma, sigma, 0), mode="wrap")
  else:
    kernel = psf_lib.disk_kernel_2d(eps)[:, :, None]
    blurred = ndimage.convolve(linear, kernel, mode="wrap")
  return color.linear_to_srgb(blurred)


# -------------------------------------------------------------- geometry
def test_pinhole_of_a_full_card_is_its_texture_and_depth():
  texture = _texture(RED, seed=1)
  scene = rt.CardScene([rt.Card(3.0, texture)])
  image, depth = rt.render_pinhole(scene, NYU, H, W)
  np.testing.assert_allclose(image, texture.texels, atol=1e-12)
  assert depth.shape == (H, W)
  np.testing.assert_array_equal(depth, 3.0)


def test_pinhole_texture_is_attached_to_the_card_at_image_scale():
  """A card's texture looks the same in the pinhole view whatever its depth."""
  texture = _texture(RED, seed=2)
  near, _ = rt.render_pinhole(rt.CardScene([rt.Card(0.7, texture)]), NYU, H, W)
  far, _ = rt.render_pinhole(rt.CardScene([rt.Card(9.0, texture)]), NYU, H, W)
  np.testing.assert_allclose(near, far, atol=1e-12)


def test_nearer_card_hides_the_farther_one_in_the_pinhole_view():
  front, back = _texture(RED, seed=3), _texture(BLUE, seed=4)
  box = rt.Rect(-10.0, 10.0, -6.0, 6.0)  # Card pixels; centres lie at half-integers.
  # The list order must not matter: the nearest opaque card wins.
  scene = rt.CardScene([rt.Card(5.0, back), rt.Card(1.2, front, box)])
  image, depth = rt.render_pinhole(scene, NYU, H, W)
  u = np.arange(W) - (W - 1) / 2.0
  v = np.arange(H) - (H - 1) / 2.0
  inside = box(u[None, :], v[:, None])
  assert inside.sum() == 20 * 12
  np.testing.assert_array_equal(depth[inside], 1.2)
  np.testing.assert_array_equal(depth[~inside], 5.0)
  np.testing.assert_allclose(image[inside], front.texels[inside], atol=1e-12)
  np.testing.assert_allclose(image[~inside], back.texels[~inside], atol=1e-12)


def test_masks():
  u, v = np.meshgrid(np.arange(-3.0, 4.0), np.arange(-3.0, 4.0))
  assert rt.Disk(0.0, 0.0, 2.0)(u, v).sum() == 13  # Lattice points within radius 2.
  assert rt.HalfPlane(0.0, 0.0)(u, v).sum() == 4 * 7  # u <= 0.
  np.testing.assert_array_equal(rt.HalfPlane(math.pi / 2, -1.5)(u, v), v <= -1.5)
  np.testing.assert_array_equal(rt.Rect(v_min=0.0)(u, v), v >= 0.0)
  with pytest.raises(ValueError, match="u_min < u_max"):
    rt.Rect(u_min=1.0, u_max=0.0)
  with pytest.raises(ValueError, match="-1.0"):
    rt.Disk(0.0, 0.0, -1.0)


def test_ray_spread_at_a_card_is_the_camera_blur_diameter():
  """Rays from opposite rim points of the aperture land eps pixels apart on a card."""
  camera = Camera.nyu(focus_distance_m=2.0)
  radius = camera.aperture_diameter_m / 2.0
  focal_x, focal_y = rt._focal_points(camera, 1, 2)  # pylint: disable=protected-access
  for depth in (0.5, 1.0, 3.0, 10.0):
    card = rt.Card(depth, rt.constant_texture(RED))
    u, _ = rt._card_coordinates(  # pylint: disable=protected-access
        card, camera, focal_x, focal_y, np.array([[[-radius]], [[radius]]]), np.zeros((2, 1, 1)))
    spread = abs(u[1, 0, 0] - u[0, 0, 0])
    assert spread == pytest.approx(camera.blur_diameter_px(depth), rel=1e-9)
  # The chief ray lands on the pixel centre at every depth.
  u, v = rt._card_coordinates(card, camera, focal_x, focal_y, 0.0, 0.0)  # pylint: disable=protected-access
  np.testing.assert_allclose(u, [[-0.5, 0.5]])
  np.testing.assert_allclose(v, [[0.0, 0.0]])


@pytest.mark.parametrize("aperture", rt.APERTURES)
def test_measured_edge_spread_matches_blur_diameter(aperture):
  """A white half-plane card over black: its line-spread width is eps (disk) or 0.3 eps."""
  camera = Camera.nyu(focus_distance_m=4.0)
  eps = camera.blur_diameter_px(1.0)  # About 10.8 px.
  scene = rt.CardScene([rt.Card(1.0, rt.constant_texture((1.0, 1.0, 1.0)), rt.HalfPlane()),
                        rt.Card(4.0, rt.constant_texture((0.0, 0.0, 0.0)))])
  image = rt.render_thin_lens(scene, camera, 3, 48, aperture=aperture, num_samples=1024)
  edge_spread = color.srgb_to_linear(image[1, :, 0])  # Light adds linearly.
  assert edge_spread[0] == pytest.approx(1.0) and edge_spread[-1] == pytest.approx(0.0)
  line_spread = -np.diff(edge_spread)
  assert np.all(line_spread > -1e-12)
  x = np.arange(line_spread.size, dtype=np.float64)
  mean = np.sum(x * line_spread) / line_spread.sum()
  # Sheppard's correction: differences of pixel samples add a 1-px box.
  variance = np.sum((x - mean) ** 2 * line_spread) / line_spread.sum() - 1.0 / 12.0
  assert mean == pytest.approx(23.0, abs=0.05)  # The edge lies between pixels 23 and 24.
  if aperture == "disk":  # A disk of radius R projects to a semicircle of variance R^2/4.
    assert 4.0 * math.sqrt(variance) == pytest.approx(eps, rel=0.02)
    assert np.count_nonzero(line_spread > 1e-9) == pytest.approx(eps, abs=1.5)
  else:
    assert math.sqrt(variance) == pytest.approx(0.3 * eps, rel=0.03)


# ---------------------------------------------------------- thin lens
@pytest.mark.parametrize("psf,depth", [("gaussian", 1.0), ("gaussian", 6.0), ("disk", 1.0)])
def test_thin_lens_of_a_full_card_is_the_pinhole_image_blurred_by_the_psf(psf, depth):
  texture = _texture(BLUE, seed=5)
  scene = rt.CardScene([rt.Card(depth, texture)])
  sharp, _ = rt.render_pinhole(scene, NYU, H, W)
  lens = rt.render_thin_lens(scene, NYU, H, W, aperture=psf)
  eps = NYU.blur_diameter_px(depth)
  assert eps > 3.0
  expected = _linear_blur(sharp, psf, eps)  # The texture is periodic at the image size.
  assert np.max(np.abs(lens - expected)) < 3.0 / 255.0
  assert np.mean(np.abs(lens - expected)) < 0.5 / 255.0
  assert np.max(np.abs(lens - sharp)) > 20.0 / 255.0  # It did blur.


def test_cards_at_the_focus_distance_are_unchanged():
  front, back = _texture(RED, seed=6), _texture(BLUE, seed=7)
  scene = rt.CardScene([rt.Card(2.0, front, rt.Disk(3.0, -2.0, 12.0)), rt.Card(2.0, back)])
  sharp, depth = rt.render_pinhole(scene, NYU, H, W)
  np.testing.assert_array_equal(depth, 2.0)
  for aperture in rt.APERTURES:
    lens = rt.render_thin_lens(scene, NYU, H, W, aperture=aperture, num_samples=64)
    np.testing.assert_allclose(lens, sharp, atol=1e-9)


def test_reference_is_converged_on_smooth_textures():
  scene = rt.CardScene([rt.Card(0.9, _texture(RED, seed=8))])
  for aperture in rt.APERTURES:
    base = rt.render_thin_lens(scene, NYU, H, W, aperture=aperture, num_samples=512)
    fine = rt.render_thin_lens(scene, NYU, H, W, aperture=aperture, num_samples=2048)
    assert np.max(np.abs(base - fine)) < 0.35 / 255.0, aperture
    assert np.mean(np.abs(base - fine)) < 0.05 / 255.0, aperture


def test_lens_average_is_taken_in_linear_light():
  """Half black, half white (a texture edge): the blurred edge's midpoint is 0.5 linear."""
  def stripes(u, v):
    del v
    return np.repeat((u > 0).astype(np.float64)[..., None], 3, axis=-1)
  camera = Camera.nyu(focus_distance_m=4.0)
  scene = rt.CardScene([rt.Card(1.0, stripes)])
  image = rt.render_thin_lens(scene, camera, 1, 2, aperture="disk")
  # The two pixels straddle the edge symmetrically: each sees about half white.
  middle = color.srgb_to_linear(image[0, :, 0])
  assert middle.sum() == pytest.approx(1.0, abs=3e-3)  # 1/512: one sample's share.
  assert image[0, 0, 0] > 0.6  # sRGB of ~0.45 linear, far above a gamma-space 0.45.


def test_aperture_samples_moments():
  a = 0.01
  disk, weights = rt.aperture_samples("disk", 1024, a)
  assert disk.shape == (1024, 2)
  np.testing.assert_allclose(weights, 1.0 / 1024)
  assert np.max(np.hypot(disk[:, 0], disk[:, 1])) <= a / 2
  assert np.mean(np.sum(disk**2, axis=1)) == pytest.approx((a / 2) ** 2 / 2, rel=1e-3)
  np.testing.assert_allclose(disk.mean(axis=0), 0.0, atol=1e-3 * a)
  gauss, weights = rt.aperture_samples("gaussian", 1024, a, rho=0.3)
  assert weights.sum() == pytest.approx(1.0)
  mean = weights @ gauss
  np.testing.assert_allclose(mean, 0.0, atol=1e-3 * a)
  std = np.sqrt(weights @ (gauss - mean) ** 2)
  np.testing.assert_allclose(std, 0.3 * a, rtol=0.01)


def test_errors_name_the_bad_values():
  with pytest.raises(ValueError, match="'square'"):
    rt.aperture_samples("square", 16, 0.01)
  with pytest.raises(ValueError, match="-2"):
    rt.Card(-2.0, rt.constant_texture(RED))
  with pytest.raises(ValueError, match=r"\(4, 4\)"):
    rt.Card(1.0, np.zeros((4, 4)))
  with pytest.raises(ValueError, match="none"):
    rt.CardScene([])
  with pytest.raises(ValueError, match="0x5"):
    rt.render_pinhole(rt.CardScene([rt.Card(1.0, rt.constant_texture(RED))]), NYU, 0, 5)


def test_rays_that_meet_no_card_are_black_at_infinite_depth():
  scene = rt.CardScene([rt.Card(1.0, rt.constant_texture(RED), rt.Rect(u_max=0.0))])
  image, depth = rt.render_pinhole(scene, NYU, 2, 4)
  np.testing.assert_array_equal(depth[:, 2:], np.inf)
  np.testing.assert_array_equal(image[:, 2:], 0.0)
  np.testing.assert_allclose(image[:, :2], np.broadcast_to(RED, (2, 2, 3)))


# ---------------------------------------------------------- evaluation
def test_occlusion_band_is_the_larger_blur_radius_around_depth_steps():
  camera = Camera.nyu(focus_distance_m=4.0)
  depth = np.full((8, 40), 4.0)
  depth[:, :20] = 1.0
  band = rt.occlusion_band(depth, camera, margin_px=1.0)
  radius = camera.blur_diameter_px(1.0) / 2.0 + 1.0  # About 6.4 px.
  columns = np.nonzero(band.all(axis=0))[0]
  assert band.any(axis=0).sum() == columns.size  # Full-height stripes only.
  assert columns[0] == 19 - math.floor(radius) and columns[-1] == 20 + math.floor(radius)
  assert not rt.occlusion_band(np.full((4, 4), 2.0), camera).any()


def test_psnr():
  a = np.zeros((4, 4, 3))
  b = np.full((4, 4, 3), 0.1)
  assert rt.psnr(a, b) == pytest.approx(20.0)
  assert rt.psnr(a, a) == math.inf
  mask = np.zeros((4, 4), bool)
  mask[0, 0] = True
  c = b.copy()
  c[0, 0] = 0.0
  assert rt.psnr(a, c, mask) == math.inf
  assert math.isnan(rt.psnr(a, b, np.zeros((4, 4), bool)))


# --------------------------------------------- layered renderer vs reference
def _step_scene():
  return rt.CardScene([rt.Card(1.0, _texture(RED, seed=11), rt.Rect(u_max=0.0)),
                       rt.Card(4.0, _texture(BLUE, seed=12))])


def _compare(scene, camera, psf):
  """PSNR (all, band) of the improved and paper modes against the ray tracer."""
  sharp, depth = rt.render_pinhole(scene, camera, H, W)
  reference = rt.render_thin_lens(scene, camera, H, W, aperture=psf)
  band = rt.occlusion_band(depth, camera)
  assert 0.02 < band.mean() < 0.9  # Both the band and the rest are measured.
  scores = {}
  for mode in ("improved", "paper"):
    out = render_defocus(sharp.astype(np.float32), depth.astype(np.float32), camera, psf=psf,
                         mode=mode).numpy()
    scores[mode] = (rt.psnr(out, reference), rt.psnr(out, reference, band))
  return scores


@pytest.mark.parametrize("psf", psf_lib.names())
def test_improved_mode_beats_paper_mode_on_a_blurred_background_step_edge(psf):
  """Focused on the near card: the background behind it is blurred."""
  scores = _compare(_step_scene(), Camera.nyu(focus_distance_m=1.0), psf)
  improved, paper = scores["improved"], scores["paper"]
  assert improved[0] > paper[0] + 3.0, scores  # Overall.
  assert improved[1] > paper[1] + 3.0, scores  # Band around the occlusion edge.
  assert improved[0] > 35.0, scores


@pytest.mark.parametrize("psf", psf_lib.names())
def test_improved_mode_beats_paper_mode_overall_on_a_blurred_foreground_step_edge(psf):
  """Focused on the background: the near card is blurred over it."""
  scores = _compare(_step_scene(), Camera.nyu(focus_distance_m=4.0), psf)
  assert scores["improved"][0] > scores["paper"][0], scores


@pytest.mark.parametrize("psf", psf_lib.names())
def test_improved_mode_beats_paper_mode_on_overlapping_cards(psf):
  scene = rt.CardScene([
      rt.Card(0.8, _texture(RED, seed=13), rt.Rect(-28.0, -4.0, -4.0, 20.0)),
      rt.Card(1.5, _texture((0.2, 0.75, 0.25), seed=14), rt.Disk(-4.0, -4.0, 12.0)),
      rt.Card(4.0, _texture((0.9, 0.85, 0.2), seed=15), rt.Rect(-2.0, 24.0, -20.0, 8.0)),
      rt.Card(8.0, _texture(BLUE, seed=16)),
  ])
  scores = _compare(scene, NYU, psf)
  improved, paper = scores["improved"], scores["paper"]
  assert improved[0] > paper[0] + 3.0, scores
  assert improved[1] > paper[1] + 3.0, scores


@pytest.mark.parametrize("psf", psf_lib.names())
def test_improved_mode_beats_paper_mode_in_the_band_of_a_blurred_foreground(psf):
  """The lens sees background through the blurred rim of an out-of-focus card."""
  scores = _compare(_step_scene(), Camera.nyu(focus_distance_m=4.0), psf)
  assert scores["improved"][0] > scores["paper"][0] + 3.0, scores
  assert scores["improved"][1] > scores["paper"][1] + 3.0, scores
