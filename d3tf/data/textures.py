"""Procedural, band-limited surface textures for the procedural scenes.

Every texture is a function of a surface's own coordinates ``(u, v)`` in
metres, so that its scale in the image shrinks with distance like a real
texture's. Each material draws its own world scale at random (see
:func:`random_material`), so that the texture's image scale alone does not
give the depth away.

Aliasing is avoided analytically rather than by heavy supersampling: every
call receives the footprint of a pixel on the surface (metres per pixel), and
each pattern component whose frequency approaches the Nyquist limit is faded
towards its mean (the classic "frequency clamping" of procedural shading), and
sharp edges are softened to about one pixel.

Everything here is NumPy, float32, and deterministic given the generator used
to draw the material's parameters.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from d3tf.optics import color

#: Side of the (periodic) lattice of the value noise.
_NOISE_SIZE = 256
_NOISE_MASK = _NOISE_SIZE - 1
#: Seed of the fixed noise lattice (shared by all scenes; each material draws
#: its own offsets and rotations into it).
_NOISE_SEED = 0x0D3F

ArrayF = np.ndarray


@functools.lru_cache(maxsize=1)
def _noise_table() -> np.ndarray:
  """The flattened lattice of values in [-1, 1] used by :func:`value_noise`."""
  rng = np.random.default_rng(_NOISE_SEED)
  return (rng.random(_NOISE_SIZE * _NOISE_SIZE, dtype=np.float32) * 2.0 - 1.0)


def fade(cycles_per_pixel: ArrayF) -> ArrayF:
  """Weight of a pattern component given its frequency in cycles per pixel.

  1 up to a quarter cycle per pixel, 0 from half a cycle (Nyquist) on, linear
  in between: components above Nyquist fade to their mean instead of
  aliasing into moire.
  """
  return np.clip(2.0 - 4.0 * cycles_per_pixel, 0.0, 1.0)


def value_noise(x: ArrayF, y: ArrayF) -> ArrayF:
  """Smooth value noise in about [-1, 1], one lattice cell per unit of x and y.

  Args:
    x: Coordinates (any shape), float32.
    y: Coordinates of the same shape.

  Returns:
    The noise, float32, of the same shape.
  """
  table = _noise_table()
  xf = np.floor(x)
  yf = np.floor(y)
  fx = x - xf
  fy = y - yf
  sx = fx * fx * (3.0 - 2.0 * fx)
  sy = fy * fy * (3.0 - 2.0 * fy)
  xi = xf.astype(np.int32) & _NOISE_MASK
  yi = yf.astype(np.int32) & _NOISE_MASK
  xj = (xi + 1) & _NOISE_MASK
  row0 = yi * _NOISE_SIZE
  row1 = ((yi + 1) & _NOISE_MASK) * _NOISE_SIZE
  a = table[row0 + xi]
  b = table[row0 + xj]
  c = table[row1 + xi]
  d = table[row1 + xj]
  top = a + sx * (b - a)
  bottom = c + sx * (d - c)
  return top + sy * (bottom - top)


def cell_hash(i: ArrayF, j: ArrayF, salt: int = 0) -> ArrayF:
  """A pseudo-random value in [0, 1) for each integer cell ``(i, j)``.

  Args:
    i: Integer-valued cell indices (floats or ints).
    j: Integer-valued cell indices of the same shape.
    salt: Varies the values between uses.

  Returns:
    float32 values in [0, 1).
  """
  i = np.asarray(i).astype(np.int64)
  j = np.asarray(j).astype(np.int64)
  h = (i * 374761393 + j * 668265263 + salt * 1442695041) & 0xFFFFFFFF
  h = ((h ^ (h >> 13)) * 1274126177) & 0xFFFFFFFF
  h = h ^ (h >> 16)
  return (h & 0xFFFFFF).astype(np.float32) * np.float32(1.0 / 0x1000000)


@dataclasses.dataclass(frozen=True)
class _Octaves:
  """Random offsets and rotations of the octaves of one fBm field."""

  offsets: np.ndarray  # [octaves, 2]
  cos: np.ndarray  # [octaves]
  sin: np.ndarray  # [octaves]

  @classmethod
  def draw(cls, rng: np.random.Generator, octaves: int) -> "_Octaves":
    angles = rng.uniform(0.0, 2.0 * np.pi, octaves)
    return cls(offsets=rng.uniform(0.0, _NOISE_SIZE, (octaves, 2)).astype(np.float32),
               cos=np.cos(angles).astype(np.float32),
               sin=np.sin(angles).astype(np.float32))


def fbm(u: ArrayF, v: ArrayF, footprint: ArrayF, frequency: float, octaves: _Octaves,
        gain: float = 0.5, stretch: float = 1.0) -> ArrayF:
  """Fractal (multi-octave) value noise, band-limited to the pixel footprint.

  Args:
    u: Surface coordinates in metres.
    v: Surface coordinates in metres.
    footprint: Size of a pixel on the surface, metres (same shape as ``u``).
    frequency: Lattice cells per metre of the first octave; each octave
      doubles it.
    octaves: The octaves' random offsets and rotations.
    gain: Amplitude ratio between successive octaves.
    stretch: Frequency multiplier along ``v`` (> 1 gives streaks along ``u``).

  Returns:
    float32 noise with zero mean and a standard deviation around 0.3.
  """
  total = np.zeros_like(u)
  amplitude = 1.0
  norm = 0.0
  freq = float(frequency)
  for k in range(len(octaves.cos)):
    weight = fade(footprint * (1.5 * freq * max(stretch, 1.0)))
    if not np.any(weight > 0):
      norm += amplitude
      break
    c, s = octaves.cos[k], octaves.sin[k]
    x = (c * u - s * v) * freq + octaves.offsets[k, 0]
    y = (s * u + c * v) * (freq * stretch) + octaves.offsets[k, 1]
    total += (amplitude * weight) * value_noise(x, y)
    norm += amplitude
    amplitude *= gain
    freq *= 2.0
  return total * np.float32(1.0 / norm)


def smooth_square(phase: ArrayF, edge_width: ArrayF) -> ArrayF:
  """A square wave of period 1 (0 then 1), with edges softened to ``edge_width``.

  Args:
    phase: Position in periods.
    edge_width: Width of each edge in periods (e.g. the pixel footprint over
      the period); the wave fades to its mean 0.5 as it nears half a period.

  Returns:
    Values in [0, 1].
  """
  tri = np.abs(phase - np.floor(phase) - 0.5) * 4.0 - 1.0  # -1..1, edges at 0.
  width = np.maximum(edge_width, 1e-4) * 4.0
  sq = np.clip(tri / width, -1.0, 1.0)
  return 0.5 + 0.5 * sq * fade(edge_width * 0.5)


def grid_lines(coord: ArrayF, period: float, line_width: float, footprint: ArrayF) -> ArrayF:
  """Coverage in [0, 1] of lines of ``line_width`` repeating every ``period``.

  The coverage is box-filtered over the pixel footprint, and fades to the
  lines' mean coverage when the period nears the Nyquist limit.
  """
  frac = coord / period
  dist = np.abs(frac - np.round(frac)) * period  # Metres to the nearest line.
  fp = np.maximum(footprint, 1e-5)
  half_w = 0.5 * line_width
  overlap = np.minimum(dist + 0.5 * fp, half_w) - np.maximum(dist - 0.5 * fp, -half_w)
  cover = np.clip(overlap / fp, 0.0, 1.0)
  mean = min(line_width / period, 1.0)
  weight = fade(footprint / period)
  return mean + weight * (cover - mean)


# --------------------------------------------------------------------- colours
def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
  """One HSV colour (all in [0, 1]) to an sRGB triple in [0, 1]."""
  i = int(h * 6.0) % 6
  f = h * 6.0 - np.floor(h * 6.0)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
  return np.asarray(rgb, np.float32)


def random_colour(rng: np.random.Generator, kind: str) -> np.ndarray:
  """Draws a plausible indoor colour (linear RGB) of a kind of surface.

  Args:
    rng: The scene's generator.
    kind: One of "wall", "ceiling", "floor", "wood", "furniture", "fabric",
      "vivid".

  Returns:
    A float32 [3] linear-light albedo.
  """
  if kind == "wall":
    if rng.random() < 0.7:  # Off-whites, beiges, pale tints.
      h, s, v = rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.25), rng.uniform(0.7, 0.95)
    else:
      h, s, v = rng.random(), rng.uniform(0.2, 0.55), rng.uniform(0.45, 0.85)
  elif kind == "ceiling":
    h, s, v = rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.08), rng.uniform(0.8, 0.97)
  elif kind == "wood":
    h, s, v = rng.uniform(0.04, 0.11), rng.uniform(0.35, 0.75), rng.uniform(0.25, 0.8)
  elif kind == "floor":
    if rng.random() < 0.5:
      return random_colour(rng, "wood")
    h, s, v = rng.random(), rng.uniform(0.0, 0.35), rng.uniform(0.2, 0.75)
  elif kind == "furniture":
    choice = rng.random()
    if choice < 0.4:
      return random_colour(rng, "wood")
    if choice < 0.7:  # White, grey, black.
      h, s, v = rng.random(), rng.uniform(0.0, 0.1), rng.uniform(0.08, 0.92)
    else:
      h, s, v = rng.random(), rng.uniform(0.25, 0.8), rng.uniform(0.25, 0.85)
  elif kind == "fabric":
    h, s, v = rng.random(), rng.uniform(0.1, 0.7), rng.uniform(0.2, 0.85)
  elif kind == "vivid":
    h, s, v = rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)
  else:
    raise ValueError(f"Unknown colour kind {kind!r}")
  return color.srgb_to_linear(hsv_to_rgb(h, s, v))


def _vary(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
  """A colour near ``colour``: per-channel gains within +-``amount``."""
  return np.clip(colour * rng.uniform(1.0 - amount, 1.0 + amount, 3), 0.0, 1.0).astype(np.float32)


def _mix(c1: np.ndarray, c2: np.ndarray, t: ArrayF) -> ArrayF:
  """Per-pixel mix of two colours: ``[n]`` weights to ``[n, 3]`` colours."""
  return c1[None, :] + t[:, None] * (c2 - c1)[None, :]


# ------------------------------------------------------------------ materials
#: A material maps (u, v, footprint) arrays of shape [n] to albedos [n, 3].
Material = Callable[[ArrayF, ArrayF, ArrayF], ArrayF]

MATERIAL_KINDS = ("paint", "stripes", "tiles", "checker", "wood", "brick", "fabric",
                  "marble", "poster")


def _scale(rng: np.random.Generator) -> float:
  """Per-material world-scale multiplier: log-uniform over a factor of 8."""
  return float(np.exp(rng.uniform(np.log(0.35), np.log(2.8))))


def _paint(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Matte paint / plaster: a colour with low-contrast multi-scale mottling."""
  scale = _scale(rng)
  c2 = _vary(rng, base, 0.4)
  blotch = _Octaves.draw(rng, 3)
  grain = _Octaves.draw(rng, 5)
  blotch_f, grain_f = 1.2 / scale, 12.0 / scale
  grain_amp = rng.uniform(0.1, 0.45)

  def albedo(u, v, fp):
    t = np.clip(0.5 + 1.5 * fbm(u, v, fp, blotch_f, blotch), 0.0, 1.0)
    shade = 1.0 + grain_amp * fbm(u, v, fp, grain_f, grain, gain=0.6)
    return _mix(base, c2, t) * shade[:, None]
  return albedo


def _stripes(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Wallpaper-like stripes, possibly warped, on a mottled ground."""
  scale = _scale(rng)
  c2 = _vary(rng, base, 0.5) if rng.random() < 0.6 else random_colour(rng, "vivid")
  period = rng.uniform(0.04, 0.3) * scale
  angle = rng.choice([0.0, np.pi / 2, rng.uniform(0.0, np.pi)])
  ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))
  duty_noise = _Octaves.draw(rng, 3)
  warp = rng.uniform(0.0, 0.3)
  ground = _paint(rng, base)

  def albedo(u, v, fp):
    s = ca * u + sa * v
    phase = s / period + warp * fbm(u, v, fp, 2.0 / scale, duty_noise)
    t = smooth_square(phase, fp / period)
    return ground(u, v, fp) * (1.0 - t[:, None]) + c2[None, :] * t[:, None]
  return albedo


def _tiles(rng: np.random.Generator, base: np.ndarray, checker: bool = False) -> Material:
  """Square or rectangular tiles with grout lines and per-tile variation."""
  scale = _scale(rng)
  size_u = rng.uniform(0.08, 0.6) * scale
  size_v = size_u * (1.0 if rng.random() < 0.6 else rng.uniform(0.3, 1.0))
  c2 = random_colour(rng, "vivid") if checker else _vary(rng, base, 0.3)
  grout = random_colour(rng, "ceiling") * rng.uniform(0.3, 1.0)
  grout_w = rng.uniform(0.04, 0.12) * min(size_u, size_v)
  tile_var = rng.uniform(0.05, 0.35)
  surface = _Octaves.draw(rng, 4)
  salt = int(rng.integers(1 << 30))

  def albedo(u, v, fp):
    iu, iv = np.floor(u / size_u), np.floor(v / size_v)
    if checker:
      t = (smooth_square(u / size_u * 0.5, fp / size_u * 0.5) - 0.5) * \
          (smooth_square(v / size_v * 0.5, fp / size_v * 0.5) - 0.5) * 4.0
      t = 0.5 + 0.5 * t
    else:
      t = cell_hash(iu, iv, salt)
    # Per-tile variation fades out once a tile is smaller than two pixels.
    t = 0.5 + (t - 0.5) * fade(fp / min(size_u, size_v))
    colour = _mix(base, c2, t)
    colour *= (1.0 + tile_var * (cell_hash(iu, iv, salt + 1) - 0.5)
               * fade(fp / min(size_u, size_v)) + 0.15 * fbm(u, v, fp, 6.0 / scale, surface))[:, None]
    lines = np.maximum(grid_lines(u, size_u, grout_w, fp), grid_lines(v, size_v, grout_w, fp))
    return colour * (1.0 - lines[:, None]) + grout[None, :] * lines[:, None]
  return albedo


def _wood(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Planks: streaky grain along each board, per-board tint, dark seams."""
  scale = _scale(rng)
  board_w = rng.uniform(0.06, 0.3) * scale
  board_l = board_w * rng.uniform(4.0, 12.0)
  dark = base * rng.uniform(0.35, 0.7)
  along_u = rng.random() < 0.5
  grain = _Octaves.draw(rng, 4)
  rings = _Octaves.draw(rng, 2)
  ring_f = rng.uniform(20.0, 60.0) / scale
  salt = int(rng.integers(1 << 30))
  seam_w = rng.uniform(0.002, 0.006) * scale

  def albedo(u, v, fp):
    a, b = (u, v) if along_u else (v, u)  # a: along the boards.
    board = np.floor(b / board_w)
    shift = cell_hash(board, board, salt) * board_l
    plank = np.floor((a + shift) / board_l)
    tint = 1.0 + 0.35 * (cell_hash(board, plank, salt + 1) - 0.5) * fade(fp / board_w)
    g = fbm(a, b, fp, 1.5 / scale, grain, gain=0.6, stretch=12.0)
    ring_phase = b * ring_f + 3.0 * fbm(a, b, fp, 0.8 / scale, rings) + 0.3 * a * ring_f / 8.0
    ring = (0.5 + 0.5 * np.sin(2.0 * np.pi * ring_phase)) * fade(fp * ring_f)
    t = np.clip(0.5 + 1.2 * g + 0.35 * (ring - 0.5), 0.0, 1.0)
    colour = _mix(dark, base, t) * tint[:, None]
    seams = np.maximum(grid_lines(b, board_w, seam_w, fp),
                       grid_lines(a + shift, board_l, seam_w, fp))
    return colour * (1.0 - 0.6 * seams[:, None])
  return albedo


def _brick(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Running-bond bricks with mortar."""
  scale = _scale(rng)
  height = rng.uniform(0.05, 0.1) * scale
  length = height * rng.uniform(2.0, 3.5)
  mortar = color.srgb_to_linear(hsv_to_rgb(0.1, rng.uniform(0.0, 0.15), rng.uniform(0.5, 0.85)))
  mortar_w = rng.uniform(0.08, 0.2) * height
  rough = _Octaves.draw(rng, 4)
  salt = int(rng.integers(1 << 30))

  def albedo(u, v, fp):
    row = np.floor(v / height)
    offset = 0.5 * length * (row - 2.0 * np.floor(row / 2.0))
    col = np.floor((u + offset) / length)
    var = (cell_hash(col, row, salt) - 0.5) * fade(fp / height)
    colour = base[None, :] * (1.0 + 0.5 * var + 0.25 * fbm(u, v, fp, 20.0 / scale, rough))[:, None]
    lines = np.maximum(grid_lines(v, height, mortar_w, fp),
                       grid_lines(u + offset, length, mortar_w, fp))
    return colour * (1.0 - lines[:, None]) + mortar[None, :] * lines[:, None]
  return albedo


def _fabric(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Carpet / upholstery: fine multi-octave noise, optionally a woven pattern."""
  scale = _scale(rng)
  c2 = _vary(rng, base, 0.4)
  fine = _Octaves.draw(rng, 6)
  weave_f = rng.uniform(30.0, 120.0) / scale
  weave_amp = rng.uniform(0.0, 0.3)
  pattern = _Octaves.draw(rng, 3)

  def albedo(u, v, fp):
    t = np.clip(0.5 + 1.5 * fbm(u, v, fp, 0.8 / scale, pattern), 0.0, 1.0)
    n = fbm(u, v, fp, 10.0 / scale, fine, gain=0.7)
    weave = np.sin(2 * np.pi * weave_f * u) * np.sin(2 * np.pi * weave_f * v) * fade(fp * weave_f)
    return _mix(base, c2, t) * (1.0 + 0.6 * n + weave_amp * weave)[:, None]
  return albedo


def _marble(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Stone with turbulent veins."""
  scale = _scale(rng)
  vein = _vary(rng, base, 0.6) * rng.uniform(0.2, 0.8)
  turb = _Octaves.draw(rng, 5)
  freq = rng.uniform(1.0, 4.0) / scale
  angle = rng.uniform(0, np.pi)
  ca, sa = np.float32(np.cos(angle)), np.float32(np.sin(angle))

  def albedo(u, v, fp):
    s = (ca * u + sa * v) * freq + 4.0 * fbm(u, v, fp, 1.5 / scale, turb, gain=0.55)
    veins = (1.0 - np.abs(np.sin(np.pi * s))) ** 6 * fade(fp * freq * 4.0)
    return _mix(base, vein, veins.astype(np.float32))
  return albedo


def _poster(rng: np.random.Generator, base: np.ndarray) -> Material:
  """Picture / poster: colourful blobs and shapes from several noise fields."""
  scale = _scale(rng) * 0.5
  colours = [random_colour(rng, "vivid") for _ in range(4)]
  fields = [_Octaves.draw(rng, 5) for _ in range(3)]
  freq = rng.uniform(2.0, 8.0) / scale

  def albedo(u, v, fp):
    colour = _mix(colours[0], colours[1],
                  np.clip(0.5 + 2.0 * fbm(u, v, fp, freq, fields[0]), 0.0, 1.0))
    for k in (1, 2):
      t = np.clip(0.5 + 3.0 * fbm(u, v, fp, freq * (1 + k), fields[k]), 0.0, 1.0)
      colour = colour * (1.0 - t[:, None]) + colours[k + 1][None, :] * t[:, None]
    return colour
  return albedo


_FACTORIES = {
    "paint": _paint,
    "stripes": _stripes,
    "tiles": _tiles,
    "checker": functools.partial(_tiles, checker=True),
    "wood": _wood,
    "brick": _brick,
    "fabric": _fabric,
    "marble": _marble,
    "poster": _poster,
}


def make_material(rng: np.random.Generator, kind: str, base: np.ndarray) -> Material:
  """Builds a material of a given kind around a base colour.

  Args:
    rng: The scene's generator (parameters are drawn from it).
    kind: One of :data:`MATERIAL_KINDS`.
    base: Base albedo, linear RGB float32 [3].

  Returns:
    A function ``(u, v, footprint) -> albedo [n, 3]`` (float32, linear, not
    clipped).
  """
  if kind not in _FACTORIES:
    raise ValueError(f"Unknown material kind {kind!r}; expected one of {MATERIAL_KINDS}")
  return _FACTORIES[kind](rng, np.asarray(base, np.float32))


#: Material kinds and their probabilities for each role in a room.
_ROLE_KINDS = {
    "wall": (("paint", "stripes", "brick", "tiles", "marble", "fabric"),
             (0.45, 0.2, 0.1, 0.1, 0.05, 0.1)),
    "ceiling": (("paint", "tiles"), (0.8, 0.2)),
    "floor": (("wood", "tiles", "fabric", "checker", "marble", "paint"),
              (0.35, 0.25, 0.2, 0.05, 0.1, 0.05)),
    "furniture": (("wood", "paint", "fabric", "marble", "stripes", "checker"),
                  (0.4, 0.25, 0.2, 0.05, 0.05, 0.05)),
    "fabric": (("fabric", "stripes", "checker", "paint"), (0.55, 0.2, 0.1, 0.15)),
    "picture": (("poster", "stripes", "checker", "marble", "tiles"), (0.6, 0.1, 0.1, 0.1, 0.1)),
    "panel": (("poster", "wood", "paint", "stripes", "tiles", "checker", "brick", "fabric",
               "marble"), (0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.1, 0.05)),
}
_ROLE_COLOURS = {"wall": "wall", "ceiling": "ceiling", "floor": "floor",
                 "furniture": "furniture", "fabric": "fabric", "picture": "vivid",
                 "panel": "vivid"}


def random_material(rng: np.random.Generator, role: str) -> Material:
  """Draws a material suited to a role in the room.

  Args:
    rng: The scene's generator.
    role: One of "wall", "ceiling", "floor", "furniture", "fabric",
      "picture", "panel".

  Returns:
    A material function, see :func:`make_material`.
  """
  if role not in _ROLE_KINDS:
    raise ValueError(f"Unknown material role {role!r}; expected one of {sorted(_ROLE_KINDS)}")
  kinds, probs = _ROLE_KINDS[role]
  kind = kinds[int(rng.choice(len(kinds), p=np.asarray(probs) / np.sum(probs)))]
  base = random_colour(rng, "wood" if kind == "wood" else _ROLE_COLOURS[role])
  return make_material(rng, kind, base)
