"""A thin-lens ray tracer for scenes of textured opaque cards: the renderer's reference.

A layered defocus renderer (:mod:`d3tf.optics.render`) only sees one RGB-D view
of a scene, so at occlusion edges it has to guess what the lens sees around
the nearer surface. This module renders the same scenes exactly, so that the
guess can be measured: scenes made of opaque fronto-parallel planes ("cards")
with alpha masks, seen by a thin lens whose aperture is sampled, each ray
taking the colour of the nearest opaque card it meets.

Geometry (all lengths in metres, images ``H`` x ``W`` pixels):

* The sensor lies at ``s = camera.sensor_distance_m`` behind the lens; pixel
  ``(i, j)`` is centred at sensor position
  ``(x, y) = ((j - (W-1)/2) * p, (i - (H-1)/2) * p)``. The image inversion
  is ignored: sensor ``+x`` maps to world ``+X``.
* The pixel's in-focus point is ``(X_f, Y_f) = (x, y) * d_f / s`` on the focal
  plane ``z = d_f``. A ray from aperture point ``a = (a_x, a_y, 0)`` towards it
  reaches depth ``z`` at ``a * (1 - z/d_f) + X_f * z/d_f``. Over an aperture of
  diameter ``A = f/N`` the rays of one pixel spread over a disk of diameter
  ``A * s * |1/z - 1/d_f| / p`` pixels at depth ``z``: the blur diameter
  ``camera.blur_diameter_px(z)``.
* A card at depth ``z`` has its own coordinates ``(u, v) = (X, Y) * s / (z p)``:
  pixels of the pinhole image at that depth, so a card's texture and mask are
  drawn at image scale whatever its depth.

Colours: textures are sRGB in [0, 1]. Rays are averaged in linear light (light
adds linearly) and the result is encoded back to sRGB.

Apertures: ``"disk"`` samples the aperture disk uniformly (the disk PSF, a
pillbox of diameter ``eps``); ``"gaussian"`` weights the lens by a 2-D normal
with per-axis standard deviation ``rho * A`` (truncated at 4 standard
deviations), which blurs a plane by a Gaussian of ``sigma = rho * eps`` (the
paper's Gaussian PSF). Samples are deterministic (a Vogel spiral), so renders
are reproducible, and 512 of them integrate smooth textures to about 0.2/255.

Typical use::

  scene = CardScene([Card(1.0, red_texture, Rect(u_max=0.0)),
                     Card(4.0, blue_texture)])
  sharp, depth = render_pinhole(scene, camera, 96, 128)
  reference = render_thin_lens(scene, camera, 96, 128, aperture="gaussian")
  layered = render_defocus(sharp, depth, camera, psf="gaussian")
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence, Union

import numpy as np
from scipy import ndimage

from d3tf.optics import color
from d3tf.optics import psf as psf_lib
from d3tf.optics.camera import Camera

#: Aperture sample distributions and the PSF each one produces.
#: Lens weightings: one per PSF of the registry (:func:`d3tf.optics.psf.names`).
APERTURES = psf_lib.names()
#: Default number of aperture samples.
DEFAULT_NUM_SAMPLES = 512
#: The golden angle, in radians: the angular step of a Vogel spiral.
_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))

#: A texture: ``f(u, v) -> [..., 3]`` sRGB values in [0, 1] at card coordinates.
TextureFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------- textures
@dataclasses.dataclass(frozen=True, eq=False)
class ArrayTexture:
  """A periodic texture from an ``[h, w, 3]`` sRGB array, bilinearly interpolated.

  Texel ``[r, c]`` is centred at card coordinates
  ``(u, v) = (c - (w-1)/2, r - (h-1)/2)`` and the array repeats with period
  ``(w, h)``. A texture whose size has the parity of the image's lines its
  texels up with the pinhole image's pixels when the card is not shifted.

  Attributes:
    texels: Float array ``[h, w, 3]`` of sRGB values in [0, 1].
  """

  texels: np.ndarray

  def __post_init__(self):
    texels = np.asarray(self.texels, dtype=np.float64)
    if texels.ndim != 3 or texels.shape[-1] != 3 or min(texels.shape[:2]) < 1:
      raise ValueError(f"A texture array must be [h, w, 3], got shape {texels.shape}")
    if not np.all(np.isfinite(texels)):
      raise ValueError("A texture array must be finite, got NaN or infinite texels")
    object.__setattr__(self, "texels", texels)

  def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """sRGB colours ``[..., 3]`` at card coordinates ``u`` (columns), ``v`` (rows)."""
    h, w, _ = self.texels.shape
    col = np.asarray(u, dtype=np.float64) + (w - 1) / 2.0
    row = np.asarray(v, dtype=np.float64) + (h - 1) / 2.0
    c0 = np.floor(col)
    r0 = np.floor(row)
    fc = (col - c0)[..., None]
    fr = (row - r0)[..., None]
    c0 = c0.astype(np.int64) % w
    r0 = r0.astype(np.int64) % h
    c1 = np.where(c0 == w - 1, 0, c0 + 1)
    r0 *= w
    r1 = np.where(r0 == (h - 1) * w, 0, r0 + w)
    flat = self.texels.reshape(h * w, 3)
    top = np.take(flat, r0 + c0, axis=0)
    top += (np.take(flat, r0 + c1, axis=0) - top) * fc
    bottom = np.take(flat, r1 + c0, axis=0)
    bottom += (np.take(flat, r1 + c1, axis=0) - bottom) * fc
    top += (bottom - top) * fr
    return top


def random_texture(height: int, width: int, base_rgb: Sequence[float], contrast: float = 0.25,
                   sigma_px: float = 1.5, seed: int = 0) -> ArrayTexture:
  """A smooth, periodic random texture around a base colour.

  White noise is smoothed with a Gaussian of ``sigma_px`` (wrapping around,
  so the texture tiles without seams), scaled to a standard deviation of
  ``contrast / 3`` per channel and added to ``base_rgb``. Pre-smoothing keeps
  single-sample (pinhole) rendering free of aliasing.

  Args:
    height: Texture rows.
    width: Texture columns.
    base_rgb: Mean sRGB colour, three values in [0, 1].
    contrast: Three standard deviations of the variation around the base.
    sigma_px: Smoothing of the noise, in pixels at image scale.
    seed: Seed of the noise.

  Returns:
    An :class:`ArrayTexture` clipped to [0, 1].
  """
  base = np.asarray(base_rgb, dtype=np.float64).reshape(-1)
  if base.shape != (3,) or np.any(base < 0) or np.any(base > 1):
    raise ValueError(f"base_rgb must be three values in [0, 1], got {base_rgb!r}")
  if height < 1 or width < 1:
    raise ValueError(f"Texture size must be positive, got {height}x{width}")
  if not sigma_px > 0:
    raise ValueError(f"sigma_px must be positive, got {sigma_px!r}")
  noise = np.random.default_rng(seed).standard_normal((height, width, 3))
  noise = ndimage.gaussian_filter(noise, sigma=(sigma_px, sigma_px, 0), mode="wrap")
  noise /= max(float(noise.std()), 1e-12)
  return ArrayTexture(np.clip(base + noise * (contrast / 3.0), 0.0, 1.0))


def constant_texture(rgb: Sequence[float]) -> TextureFn:
  """A texture of a single sRGB colour."""
  colour = np.asarray(rgb, dtype=np.float64).reshape(-1)
  if colour.shape != (3,) or np.any(colour < 0) or np.any(colour > 1):
    raise ValueError(f"rgb must be three values in [0, 1], got {rgb!r}")

  def texture(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    del v
    return np.broadcast_to(colour, np.shape(u) + (3,))

  return texture


# -------------------------------------------------------------------- masks
@dataclasses.dataclass(frozen=True)
class Rect:
  """Opaque where ``u_min <= u < u_max`` and ``v_min <= v < v_max`` (card pixels).

  Bounds may be infinite: ``Rect(u_max=0.0)`` is the left half-plane.
  """

  u_min: float = -math.inf
  u_max: float = math.inf
  v_min: float = -math.inf
  v_max: float = math.inf

  def __post_init__(self):
    if not (self.u_min < self.u_max and self.v_min < self.v_max):
      raise ValueError(f"Rect needs u_min < u_max and v_min < v_max, got {self!r}")

  def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u >= self.u_min) & (u < self.u_max) & (v >= self.v_min) & (v < self.v_max)


@dataclasses.dataclass(frozen=True)
class Disk:
  """Opaque inside the disk of ``radius`` pixels centred at ``(u, v)``."""

  center_u: float
  center_v: float
  radius: float

  def __post_init__(self):
    if not self.radius > 0:
      raise ValueError(f"Disk radius must be positive, got {self.radius!r}")

  def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (u - self.center_u) ** 2 + (v - self.center_v) ** 2 <= self.radius ** 2


@dataclasses.dataclass(frozen=True)
class HalfPlane:
  """Opaque where ``u * cos(angle) + v * sin(angle) <= offset`` (card pixels).

  ``angle`` (radians) is the direction of the outward normal; ``angle=0``,
  ``offset=0`` is the left half (``u <= 0``).
  """

  angle: float = 0.0
  offset: float = 0.0

  def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u * math.cos(self.angle) + v * math.sin(self.angle) <= self.offset


#: An alpha mask: ``m(u, v) -> bool array``, True where the card is opaque.
MaskFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# -------------------------------------------------------------------- scene
@dataclasses.dataclass(frozen=True, eq=False)
class Card:
  """An opaque, textured, fronto-parallel plane with a binary alpha mask.

  Attributes:
    depth_m: Distance of the plane from the lens, metres.
    texture: ``f(u, v) -> [..., 3]`` sRGB in [0, 1] at card coordinates, or an
      ``[h, w, 3]`` array (wrapped into an :class:`ArrayTexture`).
    mask: ``m(u, v) -> bool`` (:class:`Rect`, :class:`Disk`,
      :class:`HalfPlane` or any callable), True where opaque; ``None`` for a
      card that fills the whole plane.
  """

  depth_m: float
  texture: Union[TextureFn, np.ndarray]
  mask: MaskFn | None = None

  def __post_init__(self):
    try:
      depth = float(self.depth_m)
    except (TypeError, ValueError):
      raise ValueError(f"Card depth_m must be a number, got {self.depth_m!r}") from None
    if not (math.isfinite(depth) and depth > 0):
      raise ValueError(f"Card depth_m must be positive and finite, got {self.depth_m!r}")
    object.__setattr__(self, "depth_m", depth)
    if isinstance(self.texture, np.ndarray):
      object.__setattr__(self, "texture", ArrayTexture(self.texture))
    elif not callable(self.texture):
      raise ValueError(f"Card texture must be a callable or an [h, w, 3] array, got {self.texture!r}")
    if self.mask is not None and not callable(self.mask):
      raise ValueError(f"Card mask must be callable or None, got {self.mask!r}")

  def opaque(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean alpha at card coordinates (True where the card stops the ray)."""
    if self.mask is None:
      return np.ones(np.shape(u), dtype=bool)
    return np.asarray(self.mask(u, v), dtype=bool)


@dataclasses.dataclass(frozen=True, eq=False)
class CardScene:
  """A scene of cards; a ray takes the colour of the nearest opaque card it meets.

  The order of ``cards`` does not matter (they are sorted by depth, ties kept
  in list order). A ray that meets no card sees black, at infinite depth:
  end the list with a full background card to avoid that.

  Attributes:
    cards: The cards, at least one.
  """

  cards: tuple[Card, ...]

  def __post_init__(self):
    cards = tuple(self.cards)
    if not cards:
      raise ValueError("A CardScene needs at least one card, got none")
    for card in cards:
      if not isinstance(card, Card):
        raise ValueError(f"CardScene cards must be Card instances, got {card!r}")
    object.__setattr__(self, "cards", tuple(sorted(cards, key=lambda c: c.depth_m)))


# ----------------------------------------------------------------- aperture
def aperture_samples(aperture: str, num_samples: int, aperture_diameter_m: float,
                     rho: float = psf_lib.DEFAULT_RHO) -> tuple[np.ndarray, np.ndarray]:
  """Deterministic points on the lens and their weights.

  Both distributions use a Vogel (Fibonacci) spiral, which covers a disk
  uniformly with no clumps or gaps. ``"disk"``: the spiral fills the aperture
  disk of diameter ``aperture_diameter_m``, equally weighted. ``"gaussian"``:
  the spiral fills a disk of radius ``4 * rho * aperture_diameter_m`` and each
  point is weighted by a 2-D normal of per-axis standard deviation
  ``rho * aperture_diameter_m``, truncated at 4 standard deviations like
  ``scipy.ndimage.gaussian_filter`` and the renderer's Gaussian kernels.
  (Weighting converges faster here than mapping the spiral's radii through
  the normal's quantile, whose tail is cut unevenly.)

  Args:
    aperture: "disk" or "gaussian".
    num_samples: Number of points, >= 1.
    aperture_diameter_m: The lens's aperture diameter ``A``.
    rho: Gaussian standard deviation as a fraction of ``A``.

  Returns:
    ``(points, weights)``: float64 ``[n, 2]`` points (x, y) on the lens plane,
    metres, and ``[n]`` weights summing to one.
  """
  if aperture not in psf_lib.names():
    raise ValueError(f"aperture must be one of {psf_lib.names()}, got {aperture!r}")
  if int(num_samples) != num_samples or num_samples < 1:
    raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
  if not aperture_diameter_m > 0:
    raise ValueError(f"aperture_diameter_m must be positive, got {aperture_diameter_m!r}")
  if not rho > 0:
    raise ValueError(f"rho must be positive, got {rho!r}")
  k = np.arange(int(num_samples), dtype=np.float64)
  spiral = np.sqrt((k + 0.5) / num_samples)  # Radii of a unit Vogel spiral.
  radius, weights = psf_lib.get(aperture).aperture(spiral, aperture_diameter_m, rho)
  theta = k * _GOLDEN_ANGLE
  points = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=-1)
  return points, weights / weights.sum()


# ---------------------------------------------------------------- rendering
def _check_size(height: int, width: int) -> tuple[int, int]:
  if int(height) != height or int(width) != width or height < 1 or width < 1:
    raise ValueError(f"Image size must be positive integers, got {height!r}x{width!r}")
  return int(height), int(width)


def _focal_points(camera: Camera, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """World (X_f, Y_f) on the focal plane of every pixel centre, each ``[H, W]``."""
  p = camera.pixel_pitch_m
  scale = camera.focus_distance_m / camera.sensor_distance_m
  x = (np.arange(width, dtype=np.float64) - (width - 1) / 2.0) * p * scale
  y = (np.arange(height, dtype=np.float64) - (height - 1) / 2.0) * p * scale
  return np.broadcast_to(x[None, :], (height, width)), np.broadcast_to(y[:, None], (height, width))


def _card_coordinates(card: Card, camera: Camera, focal_x: np.ndarray, focal_y: np.ndarray,
                      lens_x: np.ndarray, lens_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Card coordinates where rays from lens points towards focal points meet the card.

  ``lens_x``/``lens_y`` broadcast against ``focal_x``/``focal_y`` (e.g. shape
  ``[n, 1, 1]`` against ``[H, W]``).
  """
  t = card.depth_m / camera.focus_distance_m
  to_card_px = camera.sensor_distance_m / (card.depth_m * camera.pixel_pitch_m)
  world_x = lens_x * (1.0 - t) + focal_x * t
  world_y = lens_y * (1.0 - t) + focal_y * t
  return world_x * to_card_px, world_y * to_card_px


def _trace(scene: CardScene, camera: Camera, focal_x: np.ndarray, focal_y: np.ndarray,
           lens_x: np.ndarray, lens_y: np.ndarray, srgb: bool):
  """Colours and depths of the nearest opaque card along a bundle of rays.

  Returns:
    ``(colour [..., 3], depth [...])``: sRGB texture values when ``srgb``,
    else linear radiance; black and ``inf`` where no card is met.
  """
  shape = np.broadcast_shapes(np.shape(lens_x), np.shape(focal_x))
  colour = np.zeros(shape + (3,), dtype=np.float64)
  depth = np.full(shape, np.inf, dtype=np.float64)
  unresolved = np.ones(shape, dtype=bool)
  for card in scene.cards:
    u, v = _card_coordinates(card, camera, focal_x, focal_y, lens_x, lens_y)
    u = np.broadcast_to(u, shape)
    v = np.broadcast_to(v, shape)
    if card.mask is None:
      hit = unresolved.copy()
    else:
      candidates = np.nonzero(unresolved)
      hit = np.zeros(shape, dtype=bool)
      hit[candidates] = card.opaque(u[candidates], v[candidates])
    if not hit.any():
      continue
    values = np.asarray(card.texture(u[hit], v[hit]), dtype=np.float64)
    colour[hit] = values if srgb else color.srgb_to_linear(np.asarray(values, np.float64))
    depth[hit] = card.depth_m
    unresolved &= ~hit
    if not unresolved.any():
      break
  return colour, depth


def render_pinhole(scene: CardScene, camera: Camera, height: int,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
  """The all-in-focus view through the centre of the aperture, with its depth map.

  This is what a layered renderer is given as input: the sRGB image and the
  depth of the nearest opaque card along each pixel's chief ray.

  Args:
    scene: The cards.
    camera: The camera (only its geometry matters for a pinhole).
    height: Image rows.
    width: Image columns.

  Returns:
    ``(image, depth)``: float64 ``[H, W, 3]`` sRGB in [0, 1] and ``[H, W]``
    metres (``inf`` where no card is met).
  """
  height, width = _check_size(height, width)
  focal_x, focal_y = _focal_points(camera, height, width)
  colour, depth = _trace(scene, camera, focal_x, focal_y, np.zeros(()), np.zeros(()), srgb=True)
  return np.clip(colour, 0.0, 1.0), depth


def render_thin_lens(scene: CardScene, camera: Camera, height: int, width: int,
                     aperture: str = "disk", num_samples: int = DEFAULT_NUM_SAMPLES,
                     rho: float = psf_lib.DEFAULT_RHO, chunk_size: int = 16) -> np.ndarray:
  """The defocused view: rays over the aperture, averaged in linear light.

  Args:
    scene: The cards.
    camera: The thin-lens camera.
    height: Image rows.
    width: Image columns.
    aperture: "disk" (uniform over the aperture: the disk PSF) or "gaussian"
      (2-D normal of per-axis std ``rho * A``: Gaussian PSF of
      ``sigma = rho * eps``).
    num_samples: Aperture samples per pixel (the same for every pixel).
    rho: Gaussian spread as a fraction of the aperture diameter.
    chunk_size: Aperture samples traced together (memory vs. speed).

  Returns:
    Float64 ``[H, W, 3]`` sRGB image in [0, 1].
  """
  height, width = _check_size(height, width)
  if int(chunk_size) != chunk_size or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
  lens, weights = aperture_samples(aperture, num_samples, camera.aperture_diameter_m, rho)
  focal_x, focal_y = _focal_points(camera, height, width)
  total = np.zeros((height, width, 3), dtype=np.float64)
  for start in range(0, lens.shape[0], int(chunk_size)):
    points = lens[start:start + int(chunk_size)]
    radiance, _ = _trace(scene, camera, focal_x, focal_y, points[:, 0, None, None],
                         points[:, 1, None, None], srgb=False)
    total += np.tensordot(weights[start:start + int(chunk_size)], radiance, axes=1)
  return color.linear_to_srgb(np.asarray(total, np.float64))


# --------------------------------------------------------------- evaluation
def occlusion_band(depth_m: np.ndarray, camera: Camera, margin_px: float = 1.0,
                   relative_step: float = 0.01) -> np.ndarray:
  """Pixels near a depth discontinuity, within the larger blur radius of its two sides.

  A discontinuity lies between 4-neighbours whose depths differ by more than
  ``relative_step`` (relative). Both pixels of such a pair get the radius
  ``max(eps(z1), eps(z2)) / 2 + margin_px``, and the band is the union of the
  disks of those radii around them.

  Args:
    depth_m: ``[H, W]`` depth map, metres (finite, positive).
    camera: The camera whose blur sets the band's width.
    margin_px: Added to every radius (a discontinuity between two in-focus
      depths still gets a band this wide).
    relative_step: Relative depth change that counts as a discontinuity.

  Returns:
    Boolean ``[H, W]`` mask.
  """
  depth = np.asarray(depth_m, dtype=np.float64)
  if depth.ndim != 2:
    raise ValueError(f"depth_m must be [H, W], got shape {depth.shape}")
  if not np.all(np.isfinite(depth) & (depth > 0)):
    raise ValueError("depth_m must be positive and finite everywhere")
  radius = np.zeros_like(depth)
  blur = np.asarray(camera.blur_diameter_px(depth), dtype=np.float64) / 2.0
  for axis in (0, 1):
    a = np.moveaxis(depth, axis, 0)
    jump = np.abs(a[1:] - a[:-1]) > relative_step * np.minimum(a[1:], a[:-1])
    b = np.moveaxis(blur, axis, 0)
    pair = np.where(jump, np.maximum(b[1:], b[:-1]) + margin_px, 0.0)
    r = np.moveaxis(radius, axis, 0)  # A view: writes go to ``radius``.
    r[1:] = np.maximum(r[1:], pair)
    r[:-1] = np.maximum(r[:-1], pair)
  band = np.zeros(depth.shape, dtype=bool)
  # Group discontinuity pixels by radius (to 0.25 px) and grow each group.
  quantised = np.ceil(radius * 4.0) / 4.0
  for value in np.unique(quantised[quantised > 0]):
    distance = ndimage.distance_transform_edt(quantised != value)
    band |= distance <= value
  return band


def psnr(image: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> float:
  """Peak signal-to-noise ratio in dB of images in [0, 1] (over ``mask`` if given).

  Returns ``inf`` for identical images and ``nan`` for an empty mask.
  """
  a = np.asarray(image, dtype=np.float64)
  b = np.asarray(reference, dtype=np.float64)
  if a.shape != b.shape:
    raise ValueError(f"Images differ in shape: {a.shape} vs {b.shape}")
  squared = (a - b) ** 2
  if mask is not None:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != a.shape[:mask.ndim]:
      raise ValueError(f"mask of shape {mask.shape} does not match images of shape {a.shape}")
    if not mask.any():
      return float("nan")
    squared = squared[mask]
  mse = float(np.mean(squared))
  return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)
