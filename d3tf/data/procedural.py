"""Procedural indoor RGB-D scenes: the embedded default data source.

A scene is made from code alone, deterministically from ``(split, index,
seed)``: a box-shaped room (floor, walls and ceiling seen in perspective) with
furniture (boxes, tables with legs, clutter on top), rugs, pictures on the
walls and free-standing panels ("cards", fronto-parallel or tilted) at varied
depths. Every surface carries a band-limited procedural texture defined in its
own coordinates in metres, with a random world scale per surface (so texture
scale in the image does not give the depth away), lit by a point light with
Lambertian shading plus ambient light.

Rendering is per-pixel ray casting, vectorised in NumPy, with a pinhole camera
using NYU-like intrinsics scaled to the image width (``fx = fy = 518.86 * W /
640``). Depth is the z-distance along the optical axis in metres (not the
Euclidean range), about 0.5-10 m like NYU Depth v2; rooms are sized so that
depth stays in that range and it is clipped to ``[MIN_DEPTH_M, MAX_DEPTH_M]``
as a last guard.

Typical use::

  scene = generate_scene(0, split="train", seed=0, height=256, width=256)
  scene["image"]  # uint8 [256, 256, 3]
  scene["depth"]  # float32 [256, 256], metres
  ds = procedural_dataset("train", num_scenes=None, height=256, width=256)
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Sequence

import numpy as np

from d3tf.data import textures
from d3tf.optics import color

if TYPE_CHECKING:  # TensorFlow is imported lazily: the generator needs NumPy only.
  import tensorflow as tf

#: The three disjoint seed streams.
SPLITS = ("train", "validation", "test")
#: Depth limits in metres (NYU Depth v2's range).
MIN_DEPTH_M = 0.5
MAX_DEPTH_M = 10.0
#: NYU Depth v2 Kinect RGB focal length (pixels) at its 640-pixel width.
#: Default parallel calls of the scene generator in :func:`procedural_dataset`:
#: one, because the Python generator holds the GIL (more calls are slower).
GENERATOR_PARALLEL_CALLS = 1

NYU_FOCAL_PX = 518.86
NYU_WIDTH_PX = 640

_MIN_SIZE = 16
_MAX_SIZE = 4096
_EPS_T = 1e-4


def _split_key(split: str) -> int:
  """A fixed 32-bit integer per split, used as the seed stream's spawn key."""
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  return int.from_bytes(hashlib.sha256(f"d3tf-procedural-{split}".encode()).digest()[:4],
                        "little")


def scene_rng(split: str, index: int, seed: int = 0) -> np.random.Generator:
  """The random generator of one scene.

  Scenes of different splits come from disjoint streams: the split, then the
  index, are spawn keys of a ``numpy.random.SeedSequence`` whose entropy is
  ``seed``.

  Args:
    split: "train", "validation" or "test".
    index: Index of the scene in its split, >= 0.
    seed: Global seed, >= 0.

  Returns:
    A ``numpy.random.Generator`` (PCG64).
  """
  index, seed = int(index), int(seed)
  if index < 0:
    raise ValueError(f"index must be >= 0, got {index!r}")
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed!r}")
  sequence = np.random.SeedSequence(entropy=seed, spawn_key=(_split_key(split), index))
  return np.random.Generator(np.random.PCG64(sequence))


def focal_length_px(width: int) -> float:
  """NYU-like focal length (pixels) for an image ``width`` pixels wide."""
  return NYU_FOCAL_PX * width / NYU_WIDTH_PX


# ------------------------------------------------------------------- geometry
def _rot_y(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], np.float64)


def _rot_x(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], np.float64)


def _rot_z(angle: float) -> np.ndarray:
  c, s = np.cos(angle), np.sin(angle)
  return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float64)


@dataclasses.dataclass
class _Surface:
  """A planar surface patch: frame for texture coordinates, normal, material."""

  origin: np.ndarray  # [3] world point where (u, v) = (0, 0).
  u_axis: np.ndarray  # [3] unit.
  v_axis: np.ndarray  # [3] unit.
  normal: np.ndarray  # [3] unit, facing outwards (or towards the camera if two-sided).
  material: int
  two_sided: bool = False


@dataclasses.dataclass
class _Box:
  """A box rotated by ``yaw`` about the vertical axis."""

  center: np.ndarray  # [3]
  half: np.ndarray  # [3] half-extents along the box's local axes.
  yaw: float
  material: int
  top_material: int | None = None

  def rotation(self) -> np.ndarray:
    return _rot_y(self.yaw)

  def corners(self) -> np.ndarray:
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)],
                     np.float64)
    return self.center[None, :] + (signs * self.half[None, :]) @ self.rotation().T

  def surfaces(self) -> list[_Surface]:
    """The six faces, ordered as face ids ``2 * axis + (positive side)``."""
    rot = self.rotation()
    faces = []
    for axis in range(3):
      others = [a for a in range(3) if a != axis]
      if axis == 1:  # Top/bottom: u along local x, v along local z.
        u_local, v_local = 0, 2
      else:  # Sides: u horizontal, v vertical (up).
        u_local, v_local = others[0] if others[0] != 1 else others[1], 1
      for positive in (0, 1):
        sign = 1.0 if positive else -1.0
        normal = rot[:, axis] * sign
        origin = self.center + normal * self.half[axis]
        material = self.material
        if axis == 1 and positive and self.top_material is not None:
          material = self.top_material
        faces.append(_Surface(origin, rot[:, u_local], rot[:, v_local], normal, material))
    return faces


@dataclasses.dataclass
class _Card:
  """A two-sided rectangle: centre, in-plane unit axes and half-extents."""

  center: np.ndarray
  u_axis: np.ndarray
  v_axis: np.ndarray
  half_u: float
  half_v: float
  material: int

  def corners(self) -> np.ndarray:
    return np.stack([self.center + su * self.half_u * self.u_axis + sv * self.half_v * self.v_axis
                     for su in (-1, 1) for sv in (-1, 1)])

  def surface(self) -> _Surface:
    normal = np.cross(self.u_axis, self.v_axis)
    return _Surface(self.center, self.u_axis, self.v_axis, normal, self.material, two_sided=True)


@dataclasses.dataclass
class _Scene:
  """Everything drawn for one scene, before rendering."""

  room_lo: np.ndarray
  room_hi: np.ndarray
  room_materials: list[int]  # Per room face (x-, x+, floor, ceiling, z-, z+).
  camera_pos: np.ndarray
  camera_rot: np.ndarray  # Columns: camera right, up, forward in world.
  boxes: list[_Box]
  cards: list[_Card]
  materials: list[textures.Material]
  light_pos: np.ndarray
  light_strength: float
  light_radius: float
  ambient: float
  light_tint: np.ndarray


def _box_on(rng: np.random.Generator, room_lo, room_hi, cam_z: float, size,
            base_y: float = 0.0, against_wall: bool = False, near_z: float = 0.9) -> np.ndarray:
  """Centre for a box of ``size`` (full extents) resting at height ``base_y``."""
  radius = 0.5 * np.hypot(size[0], size[2])
  x_lo, x_hi = room_lo[0] + radius, room_hi[0] - radius
  z_lo, z_hi = cam_z + near_z + radius, room_hi[2] - radius
  if x_lo >= x_hi:
    x_lo = x_hi = 0.5 * (room_lo[0] + room_hi[0])
  if z_lo >= z_hi:
    z_lo = z_hi = max(z_hi, cam_z + near_z + radius)
  x, z = rng.uniform(x_lo, x_hi), rng.uniform(z_lo, z_hi)
  if against_wall:
    side = rng.integers(3)
    if side == 0:
      x = x_lo
    elif side == 1:
      x = x_hi
    else:
      z = z_hi
  return np.array([x, base_y + 0.5 * size[1], z])


def _draw_scene(rng: np.random.Generator) -> _Scene:
  """Draws a room, its contents, materials, light and camera."""
  materials: list[textures.Material] = []

  def material(role: str) -> int:
    materials.append(textures.random_material(rng, role))
    return len(materials) - 1

  # Room: x across, y up (floor at 0), z forward. Depth of the far wall
  # stays below 10 m for the camera's limited yaw and pitch.
  width = rng.uniform(2.8, 7.0)
  length = float(np.exp(rng.uniform(np.log(3.0), np.log(9.3))))
  height = rng.uniform(2.4, 3.2)
  room_lo = np.array([-0.5 * width, 0.0, 0.0])
  room_hi = np.array([0.5 * width, height, length])
  wall = material("wall")
  walls = [wall] * 4
  if rng.random() < 0.35:  # An accent wall.
    walls[int(rng.integers(4))] = material("wall")
  room_materials = [walls[0], walls[1], material("floor"), material("ceiling"), walls[2], walls[3]]

  cam_z = rng.uniform(0.15, 0.5)
  cam_pos = np.array([rng.uniform(-0.3, 0.3) * 0.5 * width, rng.uniform(1.0, 1.7), cam_z])
  yaw = rng.uniform(-0.26, 0.26)
  pitch = rng.uniform(-0.28, 0.08)
  roll = rng.uniform(-0.04, 0.04)
  # Camera frame: x right, y up, z forward (world is right-handed with x
  # right, y up, z forward too, so this is a plain rotation).
  camera_rot = _rot_y(yaw) @ _rot_x(-pitch) @ _rot_z(roll)

  boxes: list[_Box] = []
  cards: list[_Card] = []
  # Furniture on the floor.
  for _ in range(int(rng.integers(2, 7))):
    kind = rng.choice(["cabinet", "table", "sofa", "shelf", "crate"], p=[0.3, 0.25, 0.15, 0.15, 0.15])
    box_yaw = 0.0 if rng.random() < 0.6 else rng.uniform(-0.8, 0.8)
    against = rng.random() < 0.5
    if kind == "table":
      size = np.array([rng.uniform(0.6, 1.8), rng.uniform(0.45, 0.8), rng.uniform(0.5, 1.0)])
      center = _box_on(rng, room_lo, room_hi, cam_z, size, against_wall=against)
      top_t = rng.uniform(0.025, 0.06)
      mat = material("furniture")
      rot = _rot_y(box_yaw)
      top_c = center + np.array([0.0, 0.5 * size[1] - 0.5 * top_t, 0.0])
      boxes.append(_Box(top_c, np.array([0.5 * size[0], 0.5 * top_t, 0.5 * size[2]]), box_yaw, mat))
      leg = rng.uniform(0.025, 0.045)
      leg_h = size[1] - top_t
      for sx in (-1, 1):
        for sz in (-1, 1):
          offset = rot @ np.array([sx * (0.5 * size[0] - 1.5 * leg), 0.0, sz * (0.5 * size[2] - 1.5 * leg)])
          leg_c = np.array([center[0], 0.5 * leg_h, center[2]]) + offset
          boxes.append(_Box(leg_c, np.array([leg, 0.5 * leg_h, leg]), box_yaw, mat))
      top_y = size[1]
      support = (center, size, box_yaw)
    else:
      if kind == "cabinet":
        size = np.array([rng.uniform(0.4, 1.5), rng.uniform(0.5, 2.0), rng.uniform(0.35, 0.65)])
        mat, top = material("furniture"), None
      elif kind == "sofa":
        size = np.array([rng.uniform(1.0, 2.2), rng.uniform(0.35, 0.55), rng.uniform(0.7, 1.6)])
        mat, top = material("fabric"), None
      elif kind == "shelf":
        size = np.array([rng.uniform(0.6, 1.6), rng.uniform(1.2, 2.2), rng.uniform(0.25, 0.45)])
        mat, top = material("furniture"), None
      else:
        size = np.array([rng.uniform(0.25, 0.7), rng.uniform(0.2, 0.7), rng.uniform(0.25, 0.7)])
        mat, top = material("furniture"), None
      center = _box_on(rng, room_lo, room_hi, cam_z, size, against_wall=against)
      boxes.append(_Box(center, 0.5 * size, box_yaw, mat, top))
      if kind == "sofa" and rng.random() < 0.7:  # Backrest.
        back = np.array([size[0], rng.uniform(0.3, 0.5), rng.uniform(0.12, 0.25)])
        rot = _rot_y(box_yaw)
        back_c = center + rot @ np.array([0.0, 0.5 * size[1] + 0.5 * back[1],
                                          0.5 * size[2] - 0.5 * back[2]])
        boxes.append(_Box(back_c, 0.5 * back, box_yaw, mat))
      top_y = size[1]
      support = (center, size, box_yaw)
    # Clutter on top.
    if top_y < 1.3 and rng.random() < 0.6:
      s_center, s_size, s_yaw = support
      for _ in range(int(rng.integers(1, 4))):
        item = np.array([rng.uniform(0.08, 0.4), rng.uniform(0.05, 0.4), rng.uniform(0.08, 0.35)])
        item = np.minimum(item, [0.9 * s_size[0], 1.0, 0.9 * s_size[2]])
        local = np.array([rng.uniform(-0.5, 0.5) * (s_size[0] - item[0]), 0.0,
                          rng.uniform(-0.5, 0.5) * (s_size[2] - item[2])])
        c = np.array([s_center[0], top_y + 0.5 * item[1], s_center[2]]) + _rot_y(s_yaw) @ local
        boxes.append(_Box(c, 0.5 * item, s_yaw + rng.uniform(-0.5, 0.5),
                          material(rng.choice(["furniture", "picture", "fabric"]))))

  def wall_card(w: float, h: float, center_y: float, mat: int, on_floor: bool = False) -> None:
    side = int(rng.integers(3))
    gap = 0.012
    if on_floor:
      center_y = 0.5 * h
    if side == 2:  # Far wall, facing the camera.
      x = rng.uniform(room_lo[0] + 0.5 * w, room_hi[0] - 0.5 * w) if room_hi[0] - room_lo[0] > w else 0.0
      c = np.array([x, center_y, room_hi[2] - gap])
      cards.append(_Card(c, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 0.5 * w, 0.5 * h, mat))
    else:
      x = room_lo[0] + gap if side == 0 else room_hi[0] - gap
      z = rng.uniform(cam_z + 0.8 + 0.5 * w, max(room_hi[2] - 0.5 * w, cam_z + 0.9 + 0.5 * w))
      c = np.array([x, center_y, z])
      cards.append(_Card(c, np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), 0.5 * w, 0.5 * h, mat))

  # Pictures and posters on the walls; maybe a door.
  for _ in range(int(rng.integers(0, 4))):
    w, h = rng.uniform(0.25, 1.2), rng.uniform(0.25, 1.0)
    wall_card(w, h, rng.uniform(1.2, min(1.9, height - 0.5 * h - 0.05)), material("picture"))
  if rng.random() < 0.4:
    wall_card(rng.uniform(0.75, 0.95), rng.uniform(1.95, min(2.15, height - 0.05)), 0.0,
              material("furniture"), on_floor=True)
  # A rug.
  if rng.random() < 0.5:
    rug_yaw = rng.uniform(-0.5, 0.5) if rng.random() < 0.4 else 0.0
    rot = _rot_y(rug_yaw)
    c = np.array([rng.uniform(-0.3, 0.3) * width, 0.006, rng.uniform(cam_z + 1.0, max(length - 1.0, cam_z + 1.1))])
    cards.append(_Card(c, rot[:, 0], rot[:, 2], rng.uniform(0.5, 1.5), rng.uniform(0.4, 1.2),
                       material("fabric")))
  # Free-standing panels (screens, boards, doors ajar) at varied depths,
  # facing the camera more or less, some tilted.
  for _ in range(int(rng.integers(0, 4))):
    w, h = rng.uniform(0.3, 1.4), rng.uniform(0.3, 1.8)
    depth_z = cam_z + float(np.exp(rng.uniform(np.log(0.7), np.log(max(length - cam_z - 0.3, 0.8)))))
    depth_z = min(depth_z, length - 0.1)
    lateral = (depth_z - cam_z) * np.tan(rng.uniform(-0.45, 0.45)) + cam_pos[0]
    lateral = float(np.clip(lateral, room_lo[0] + 0.2, room_hi[0] - 0.2))
    bottom = 0.0 if rng.random() < 0.6 else rng.uniform(0.3, 1.2)
    panel_yaw = rng.uniform(-0.5, 0.5) if rng.random() < 0.5 else rng.uniform(-1.2, 1.2)
    tilt = rng.uniform(-0.35, 0.35) if rng.random() < 0.3 else 0.0
    rot = _rot_y(panel_yaw) @ _rot_x(tilt)
    c = np.array([lateral, bottom + 0.5 * h, depth_z])
    cards.append(_Card(c, rot[:, 0], rot[:, 1], 0.5 * w, 0.5 * h, material("panel")))

  light_pos = np.array([rng.uniform(room_lo[0] + 0.3, room_hi[0] - 0.3), height - rng.uniform(0.1, 0.6),
                        rng.uniform(0.3, length - 0.3)])
  tint = textures.hsv_to_rgb(rng.uniform(0.05, 0.6), rng.uniform(0.0, 0.15), 1.0)
  return _Scene(room_lo=room_lo, room_hi=room_hi, room_materials=room_materials,
                camera_pos=cam_pos, camera_rot=camera_rot, boxes=boxes, cards=cards,
                materials=materials, light_pos=light_pos,
                light_strength=rng.uniform(0.8, 2.0), light_radius=rng.uniform(1.5, 4.0),
                ambient=rng.uniform(0.15, 0.45), light_tint=tint / tint.max())


class _Raycaster:
  """Nearest-hit ray casting of one scene on a grid of camera rays."""

  def __init__(self, scene: _Scene, height: int, width: int, supersample: int, focal_px: float):
    self.scene = scene
    self.s = supersample
    self.height, self.width = height, width
    self.hs, self.ws = height * supersample, width * supersample
    self.focal = focal_px
    # Sub-pixel centres in pixel units, relative to the principal point.
    xs = (np.arange(self.ws, dtype=np.float32) + 0.5) / supersample - 0.5 * width
    ys = (np.arange(self.hs, dtype=np.float32) + 0.5) / supersample - 0.5 * height
    xc = (xs / focal_px)[None, :]
    yc = (-ys / focal_px)[:, None]
    rot = scene.camera_rot.astype(np.float32)
    # Directions with unit component along the optical axis: t is then depth.
    self.d = [rot[i, 0] * xc + rot[i, 1] * yc + rot[i, 2] for i in range(3)]
    self.o = scene.camera_pos.astype(np.float32)
    self.t = np.full((self.hs, self.ws), np.inf, np.float32)
    self.sid = np.full((self.hs, self.ws), -1, np.int32)
    self.surfaces: list[_Surface] = []

  # ---------------------------------------------------------------- helpers
  def _window(self, corners: np.ndarray) -> tuple[slice, slice] | None:
    """Screen-space bounding box of world points (sub-pixel units), or None if off screen."""
    cam = (corners - self.scene.camera_pos[None, :]) @ self.scene.camera_rot  # [n, 3]
    if np.min(cam[:, 2]) <= 0.05:
      return slice(0, self.hs), slice(0, self.ws)
    px = (self.focal * cam[:, 0] / cam[:, 2] + 0.5 * self.width) * self.s
    py = (-self.focal * cam[:, 1] / cam[:, 2] + 0.5 * self.height) * self.s
    x0, x1 = max(int(np.floor(px.min())) - 1, 0), min(int(np.ceil(px.max())) + 1, self.ws)
    y0, y1 = max(int(np.floor(py.min())) - 1, 0), min(int(np.ceil(py.max())) + 1, self.hs)
    if x0 >= x1 or y0 >= y1:
      return None
    return slice(y0, y1), slice(x0, x1)

  def _update(self, window, t: np.ndarray, hit: np.ndarray, sid) -> None:
    t_win = self.t[window]
    closer = hit & (t < t_win)
    t_win[closer] = t[closer]
    self.sid[window][closer] = sid[closer] if isinstance(sid, np.ndarray) else sid

  # ------------------------------------------------------------- primitives
  def add_room(self) -> None:
    """The room from inside: every ray hits one of its six faces."""
    scene = self.scene
    base = len(self.surfaces)
    lo, hi = scene.room_lo, scene.room_hi
    centre = 0.5 * (lo + hi)
    axes = np.eye(3)
    for axis in range(3):
      for positive in (0, 1):
        normal = axes[axis] * (-1.0 if positive else 1.0)  # Facing inwards.
        origin = centre.copy()
        origin[axis] = hi[axis] if positive else lo[axis]
        if axis == 1:
          u_axis, v_axis = axes[0], axes[2]
        else:
          u_axis, v_axis = axes[2 if axis == 0 else 0], axes[1]
        self.surfaces.append(_Surface(origin, u_axis, v_axis, normal,
                                      scene.room_materials[2 * axis + positive]))
    with np.errstate(divide="ignore", invalid="ignore"):
      for axis in range(3):
        d = self.d[axis]
        positive = d > 0
        bound = np.where(positive, np.float32(hi[axis]), np.float32(lo[axis]))
        t = (bound - self.o[axis]) / d
        t = np.where(np.isfinite(t) & (t > 0), t, np.inf)
        self._update((slice(None), slice(None)), t, np.ones_like(positive),
                     (base + 2 * axis + positive).astype(np.int32))

  def add_box(self, box: _Box) -> None:
    """A rotated box seen from outside (slab method in the box's frame)."""
    base = len(self.surfaces)
    self.surfaces.extend(box.surfaces())
    window = self._window(box.corners())
    if window is None:
      return
    c, s = np.float32(np.cos(box.yaw)), np.float32(np.sin(box.yaw))
    rel = self.o - box.center.astype(np.float32)
    o_local = [c * rel[0] - s * rel[2], rel[1], s * rel[0] + c * rel[2]]
    dx, dy, dz = (d[window] for d in self.d)
    d_local = [c * dx - s * dz, dy, s * dx + c * dz]
    half = box.half.astype(np.float32)
    t_near = t_far = face = None
    with np.errstate(divide="ignore", invalid="ignore"):
      for axis in range(3):
        inv = 1.0 / d_local[axis]
        t1 = (-half[axis] - o_local[axis]) * inv
        t2 = (half[axis] - o_local[axis]) * inv
        near = np.minimum(t1, t2)
        far = np.maximum(t1, t2)
        axis_face = np.int32(2 * axis) + (d_local[axis] < 0)
        if t_near is None:
          t_near, t_far, face = near, far, axis_face.astype(np.int32)
        else:
          better = near > t_near
          t_near = np.where(better, near, t_near)
          face = np.where(better, axis_face, face)
          t_far = np.minimum(t_far, far)
    hit = (t_near <= t_far) & (t_near > _EPS_T)
    self._update(window, t_near, hit, face + base)

  def add_card(self, card: _Card) -> None:
    """A two-sided rectangle."""
    sid = len(self.surfaces)
    surface = card.surface()
    self.surfaces.append(surface)
    window = self._window(card.corners())
    if window is None:
      return
    n = surface.normal.astype(np.float32)
    cu, cv = card.u_axis.astype(np.float32), card.v_axis.astype(np.float32)
    rel = card.center.astype(np.float32) - self.o
    dx, dy, dz = (d[window] for d in self.d)
    with np.errstate(divide="ignore", invalid="ignore"):
      t = np.float32(rel @ n) / (dx * n[0] + dy * n[1] + dz * n[2])
      px, py, pz = t * dx - rel[0], t * dy - rel[1], t * dz - rel[2]
      lu = px * cu[0] + py * cu[1] + pz * cu[2]
      lv = px * cv[0] + py * cv[1] + pz * cv[2]
      hit = (t > _EPS_T) & (np.abs(lu) <= card.half_u) & (np.abs(lv) <= card.half_v)
    self._update(window, t, hit, sid)

  # ---------------------------------------------------------------- shading
  def shade(self) -> np.ndarray:
    """Linear-light radiance [hs, ws, 3] of the nearest hit of every ray."""
    scene = self.scene
    n_rays = self.hs * self.ws
    sid = self.sid.ravel()
    t_all = self.t.ravel()
    d_all = [d.ravel() for d in self.d]
    order = np.argsort(sid, kind="stable")
    counts = np.bincount(sid, minlength=len(self.surfaces))
    starts = np.concatenate([[0], np.cumsum(counts)])
    radiance = np.empty((n_rays, 3), np.float32)
    light = scene.light_pos.astype(np.float32)
    # Textures are band-limited to the output pixel, even when supersampling
    # (the box filter of the supersampled average would alias the rest).
    fp_scale = np.float32(1.0 / self.focal)
    occluders = [box for box in scene.boxes if box.center[1] - box.half[1] < 1.0]
    for k, surface in enumerate(self.surfaces):
      if counts[k] == 0:
        continue
      idx = order[starts[k]:starts[k + 1]]
      t = t_all[idx]
      dx, dy, dz = (d[idx] for d in d_all)
      px, py, pz = self.o[0] + t * dx, self.o[1] + t * dy, self.o[2] + t * dz
      origin = surface.origin.astype(np.float32)
      ua, va = surface.u_axis.astype(np.float32), surface.v_axis.astype(np.float32)
      n = surface.normal.astype(np.float32)
      rx, ry, rz = px - origin[0], py - origin[1], pz - origin[2]
      u = rx * ua[0] + ry * ua[1] + rz * ua[2]
      v = rx * va[0] + ry * va[1] + rz * va[2]
      d_dot_n = dx * n[0] + dy * n[1] + dz * n[2]
      d_norm = np.sqrt(dx * dx + dy * dy + dz * dz)
      cos_view = np.maximum(np.abs(d_dot_n) / d_norm, 0.2)
      footprint = t * fp_scale * d_norm / cos_view  # Metres per (sub-)pixel on the surface.
      albedo = scene.materials[surface.material](u, v, footprint)
      sign = np.where(d_dot_n > 0, -1.0, 1.0).astype(np.float32) if surface.two_sided else 1.0
      lx, ly, lz = light[0] - px, light[1] - py, light[2] - pz
      dist2 = lx * lx + ly * ly + lz * lz
      cos_light = np.maximum(sign * (lx * n[0] + ly * n[1] + lz * n[2]), 0.0) / np.sqrt(dist2)
      falloff = scene.light_radius ** 2 / (scene.light_radius ** 2 + dist2)
      irradiance = scene.ambient + scene.light_strength * cos_light * falloff
      if surface.normal[1] > 0.99 and surface.origin[1] < 0.05:  # The floor.
        irradiance *= self._contact_shadow(occluders, px, pz)
      radiance[idx] = np.clip(albedo, 0.0, 1.0) * irradiance[:, None]
    radiance *= scene.light_tint.astype(np.float32)[None, :]
    return radiance.reshape(self.hs, self.ws, 3)

  @staticmethod
  def _contact_shadow(boxes: list[_Box], px: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """Soft ambient-occlusion-like darkening of floor points around and under boxes."""
    factor = np.ones_like(px)
    for box in boxes:
      bottom = float(box.center[1] - box.half[1])
      c, s = np.float32(np.cos(box.yaw)), np.float32(np.sin(box.yaw))
      rx, rz = px - np.float32(box.center[0]), pz - np.float32(box.center[2])
      lx = np.abs(c * rx - s * rz) - np.float32(box.half[0])
      lz = np.abs(s * rx + c * rz) - np.float32(box.half[2])
      dist = np.sqrt(np.maximum(lx, 0.0) ** 2 + np.maximum(lz, 0.0) ** 2)
      reach = 0.08 + 0.5 * bottom + 0.15 * float(box.half[1])
      strength = 0.6 * np.exp(-bottom / 0.8)
      factor *= 1.0 - strength * np.exp(-dist / reach)
    return factor


_SRGB_LUT_SIZE = 4096


def _srgb_lut() -> np.ndarray:
  x = np.linspace(0.0, 1.0, _SRGB_LUT_SIZE)
  srgb = color.linear_to_srgb(x)
  return np.round(srgb * 255.0).astype(np.uint8)


_LUT = _srgb_lut()


def _check_size(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{name} must be an integer, got {value!r}")
  if not _MIN_SIZE <= value <= _MAX_SIZE:
    raise ValueError(f"{name} must be in [{_MIN_SIZE}, {_MAX_SIZE}], got {value!r}")
  return int(value)


def generate_scene(index: int, *, split: str = "train", seed: int = 0, height: int = 256,
                   width: int = 256, supersample: int = 1,
                   focal_px: float | None = None) -> dict[str, np.ndarray]:
  """Renders one procedural RGB-D scene, deterministically.

  The same ``(split, index, seed, height, width, supersample)`` always gives
  identical arrays; different splits draw from disjoint seed streams. The
  scene's content does not depend on the resolution (only its sampling does).

  Args:
    index: Index of the scene within its split, >= 0.
    split: "train", "validation" or "test".
    seed: Global seed, >= 0.
    height: Image height in pixels (16-4096).
    width: Image width in pixels (16-4096); the focal length is
      ``518.86 * width / 640`` pixels, NYU's, and pixels are square.
    supersample: Rays per pixel side (1 relies on the textures' analytic
      band-limiting alone; 2 also anti-aliases geometric edges, 4x slower).
    focal_px: Focal length in pixels; None: NYU's at this width. A scene
      larger than NYU's focal length at its width sees a wider field of view
      around the same centre (e.g. the scene pool's windows: the focal length
      of the crop, so that the centre crop is the crop-sized scene).

  Returns:
    ``{"image": uint8 [height, width, 3] sRGB, "depth": float32 [height,
    width] metres along the optical axis, in [MIN_DEPTH_M, MAX_DEPTH_M]}``.
  """
  height = _check_size("height", height)
  width = _check_size("width", width)
  if supersample not in (1, 2, 3, 4):
    raise ValueError(f"supersample must be 1, 2, 3 or 4, got {supersample!r}")
  rng = scene_rng(split, index, seed)
  scene = _draw_scene(rng)
  if focal_px is not None and not (isinstance(focal_px, (int, float, np.floating))
                                   and np.isfinite(focal_px) and focal_px > 0):
    raise ValueError(f"focal_px must be a positive number or None, got {focal_px!r}")
  caster = _Raycaster(scene, height, width, supersample,
                      focal_length_px(width) if focal_px is None else float(focal_px))
  caster.add_room()
  for box in scene.boxes:
    caster.add_box(box)
  for card in scene.cards:
    caster.add_card(card)
  radiance = caster.shade()
  s = supersample
  depth = caster.t[s // 2::s, s // 2::s]
  if s > 1:
    radiance = radiance.reshape(height, s, width, s, 3).mean(axis=(1, 3))
  # Auto-exposure: a bright (98th-percentile) luminance maps to about 0.9.
  luminance = radiance[::4, ::4] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
  exposure = 0.9 / max(float(np.percentile(luminance, 98)), 1e-3)
  codes = np.clip(radiance * np.float32(exposure * (_SRGB_LUT_SIZE - 1)) + 0.5, 0,
                  _SRGB_LUT_SIZE - 1).astype(np.int32)
  image = _LUT[codes]
  depth = np.clip(depth, MIN_DEPTH_M, MAX_DEPTH_M).astype(np.float32)
  return {"image": np.ascontiguousarray(image), "depth": np.ascontiguousarray(depth)}


def procedural_dataset(split: str = "train", num_scenes: int | None = None, *, height: int = 256,
                       width: int = 256, seed: int = 0, start_index: int = 0,
                       supersample: int = 1, deterministic: bool = True,
                       num_parallel_calls: int | None = None,
                       with_index: bool = False,
                       focal_px: float | None = None) -> "tf.data.Dataset":
  """Procedural scenes as a ``tf.data`` source following the element contract.

  Elements are ``{"image": tf.uint8 [H, W, 3], "depth": tf.float32 [H, W]}``
  (metres; the generator never produces invalid pixels, but 0 would mark
  them). Scene ``i`` of the dataset is ``generate_scene(start_index + i,
  split=split, seed=seed, ...)``, generated in parallel with
  ``tf.numpy_function``.

  Args:
    split: "train", "validation" or "test" (disjoint seed streams).
    num_scenes: Number of scenes, or None for an endless stream.
    height: Image height in pixels.
    width: Image width in pixels.
    seed: Global seed, >= 0.
    start_index: Index of the first scene.
    supersample: See :func:`generate_scene`.
    deterministic: Whether the parallel map keeps the order of the scenes.
    num_parallel_calls: Parallel generator calls; default
      :data:`GENERATOR_PARALLEL_CALLS` (1). The generator is Python and holds
      the GIL for much of its work: more threads contend for it and for the
      cores that augment, render and train, and deliver fewer scenes per
      second, not more (``benchmarks/results/train_input.md``).
    with_index: Add ``"index"`` (int64, the scene index) to each element, so
      that a consumer can key per-example randomness by it (the one source of
      the dataset stays the index range, which tf.data service can split).
    focal_px: See :func:`generate_scene`.

  Returns:
    A ``tf.data.Dataset`` of dicts.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  scene_rng(split, start_index, seed)  # Validates split, index and seed now.
  height = _check_size("height", height)
  width = _check_size("width", width)
  if supersample not in (1, 2, 3, 4):
    raise ValueError(f"supersample must be 1, 2, 3 or 4, got {supersample!r}")
  if num_scenes is None:
    indices = tf.data.Dataset.counter(start=start_index, dtype=tf.int64)
  else:
    if isinstance(num_scenes, bool) or int(num_scenes) != num_scenes or num_scenes < 0:
      raise ValueError(f"num_scenes must be None or an integer >= 0, got {num_scenes!r}")
    indices = tf.data.Dataset.range(start_index, start_index + int(num_scenes))

  def generate(index) -> tuple[np.ndarray, np.ndarray]:
    scene = generate_scene(int(index), split=split, seed=seed, height=height, width=width,
                           supersample=supersample, focal_px=focal_px)
    return scene["image"], scene["depth"]

  def to_element(index):
    image, depth = tf.numpy_function(generate, [index], [tf.uint8, tf.float32], stateful=False,
                                     name="procedural_scene")
    image.set_shape([height, width, 3])
    depth.set_shape([height, width])
    element = {"image": image, "depth": depth}
    if with_index:
      element["index"] = index
    return element

  if num_parallel_calls is None:
    num_parallel_calls = GENERATOR_PARALLEL_CALLS
  return indices.map(to_element, num_parallel_calls=num_parallel_calls,
                     deterministic=deterministic)


def scene_batch(indices: Sequence[int], **kwargs) -> dict[str, np.ndarray]:
  """Several scenes stacked: ``{"image": [N, H, W, 3], "depth": [N, H, W]}``.

  Args:
    indices: Scene indices.
    **kwargs: Passed to :func:`generate_scene`.

  Returns:
    The stacked arrays.
  """
  scenes = [generate_scene(i, **kwargs) for i in indices]
  return {key: np.stack([s[key] for s in scenes]) for key in ("image", "depth")}
