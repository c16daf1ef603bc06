"""Random scene + camera-trajectory sampling for the two synthetic families.

* ``orbit`` (object-centric, Objaverse-like): a few textured objects resting on a ground plane
  around the origin, a textured environment dome (or a plain background), a directional sun;
  the camera orbits the object cluster on an arc (constant angular step per frame, small smooth
  elevation drift) looking at the cluster centre.
* ``walk`` (scene-level, RealEstate10K-like): a closed box room (floor, ceiling, four walls),
  furniture primitives (tables, cabinets, pillars, stools, balls, crates, pictures, a rug) and a
  ceiling point light; the camera walks a smooth forward or sideways path at eye height with
  gentle yaw, looking roughly forward. Furniture is placed clear of the camera path.

World frame: z up, metres-like units, floor / ground at z = 0. Every random choice draws from the
``numpy.random.Generator`` passed in (no global RNG).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from .primitives import Box, Cylinder, Material, Primitive, Quad, Sphere
from .raytrace import Light, Scene
from .textures import TextureBank

UP = np.array([0.0, 0.0, 1.0])


@dataclass
class FamilyParams:
    """The knobs of :class:`rayzer.data.synthetic.SynthConfig` the samplers need (decoupled)."""

    frames: int
    height: int
    width: int
    fov_deg: tuple[float, float]
    texture_scale: float
    num_objects: tuple[int, int]
    orbit_step_deg: tuple[float, float]
    orbit_elevation_deg: tuple[float, float]
    orbit_elevation_drift_deg: float
    walk_step: tuple[float, float]
    walk_yaw_deg: float
    walk_sideways_prob: float
    background: str
    dome_tile: tuple[float, float] = (0.3, 0.8)
    backdrop_textures: str = "mixed"


# --------------------------------------------------------------------------------------------
# cameras


def rotation_from_forward(forward: np.ndarray, roll_rad: float = 0.0) -> np.ndarray:
    """OpenCV camera rotation (columns x right, y down, z forward) looking along ``forward``.

    The camera's -y axis is aligned with world up (z) as well as possible; ``roll`` rotates about z.
    Same convention as ``rayzer.geometry.look_at`` (checked in the tests).
    """
    z = forward / np.linalg.norm(forward)
    x = np.cross(z, UP)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    if roll_rad:
        c, s = np.cos(roll_rad), np.sin(roll_rad)
        x, y = c * x + s * y, -s * x + c * y
    return np.stack([x, y, z], axis=1)


def make_c2w(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R, t
    return out


def intrinsics_for_fov(rng: np.random.Generator, p: FamilyParams) -> tuple[np.ndarray, float]:
    """Square-pixel pinhole, principal point at the image centre. Returns ((4,), fov_x radians)."""
    fov_x = np.deg2rad(rng.uniform(*p.fov_deg))
    fx = 0.5 * p.width / np.tan(0.5 * fov_x)
    return np.array([fx, fx, 0.5 * p.width, 0.5 * p.height]), fov_x


# --------------------------------------------------------------------------------------------
# appearance


def _random_colour(rng: np.random.Generator, value: tuple[float, float]) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(0.1, 0.85), rng.uniform(*value)
    return np.array(colorsys.hsv_to_rgb(h, s, v))


def random_material(
    rng: np.random.Generator,
    bank: TextureBank,
    tile: tuple[float, float],
    texture_scale: float,
    kinds: dict[str, float],
    contrast: tuple[float, float] = (0.35, 0.9),
    **flags,
) -> Material:
    """Pick a texture kind (weights ``kinds``), a texture, a tile size and a colour map."""
    names = list(kinds)
    weights = np.array([kinds[k] for k in names], float)
    kind = names[rng.choice(len(names), p=weights / weights.sum())]
    texture = int(rng.choice(bank.indices(kind)))
    tile_size = float(rng.uniform(*tile)) * texture_scale
    offset = rng.uniform(0, 1, 2)
    if bank.is_colour[texture]:
        base, gain = np.zeros(3), rng.uniform(0.8, 1.1, 3)  # mild tint of a colour photo
    else:
        c0 = _random_colour(rng, (0.1, 0.9))
        c1 = _random_colour(rng, (0.1, 0.9))
        # Enforce a minimum luminance contrast between the two ends of the colour map.
        want = rng.uniform(*contrast)
        lum = np.array([0.299, 0.587, 0.114])
        diff = float((c1 - c0) @ lum)
        if abs(diff) < want:
            c1 = np.clip(c1 + (np.sign(diff) or 1.0) * (want - abs(diff)), 0, 1)
        base, gain = c0, c1 - c0
    return Material(
        texture=texture,
        tile=tile_size,
        offset=offset.astype(np.float32),
        base=base.astype(np.float32),
        gain=gain.astype(np.float32),
        **flags,
    )


ANY_TEXTURE = {"colour_photo": 0.3, "grey_photo": 0.3, "procedural": 0.4}


def _backdrop_kinds(p: FamilyParams, default: dict[str, float]) -> dict[str, float]:
    """Texture kinds of the orbit ground and dome: the family default, or colour photos only."""
    return {"colour_photo": 1.0} if p.backdrop_textures == "colour_photo" else default


def _yaw(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _object(
    rng: np.random.Generator, kind: str, size: float, xy: np.ndarray, z0: float, mat: Material
) -> tuple[Primitive, float]:
    """A primitive of ``kind`` with its lowest point at height ``z0``. Returns (prim, footprint r)."""
    if kind == "sphere":
        r = size
        lift = r * rng.uniform(0.1, 0.6) if rng.uniform() < 0.25 else 0.0  # sometimes floating
        prim = Sphere([xy[0], xy[1], z0 + r + lift], r, mat, rot=_random_rotation(rng))
        return prim, r
    if kind == "box":  # axis-aligned
        half = size * rng.uniform(0.45, 1.0, 3)
        return Box([xy[0], xy[1], z0 + half[2]], half, mat), float(np.hypot(half[0], half[1]))
    if kind == "box_yaw":
        half = size * rng.uniform(0.45, 1.0, 3)
        R = _yaw(rng.uniform(0, np.pi))
        return Box([xy[0], xy[1], z0 + half[2]], half, mat, rot=R), float(
            np.hypot(half[0], half[1])
        )
    if kind == "box_tilt":  # arbitrary orientation, resting on its lowest corner
        half = size * rng.uniform(0.4, 0.8, 3)
        R = _random_rotation(rng)
        down = float(np.abs(R[2]) @ half)
        return Box([xy[0], xy[1], z0 + down], half, mat, rot=R), float(np.linalg.norm(half))
    if kind == "cylinder":  # upright
        r, h = size * rng.uniform(0.4, 0.8), size * rng.uniform(0.5, 1.2)
        return Cylinder([xy[0], xy[1], z0 + h], r, h, mat, rot=_yaw(rng.uniform(0, np.pi))), r
    if kind == "cylinder_lying":
        r, h = size * rng.uniform(0.3, 0.6), size * rng.uniform(0.6, 1.1)
        yaw = rng.uniform(0, np.pi)
        axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])
        R = rotation_from_forward(axis)  # columns: x, y, z = axis (horizontal)
        return Cylinder([xy[0], xy[1], z0 + r], r, h, mat, rot=R), float(np.hypot(r, h))
    raise ValueError(f"unknown object kind {kind!r}")


ORBIT_KINDS = ("sphere", "box", "box_yaw", "box_tilt", "cylinder", "cylinder_lying")


# --------------------------------------------------------------------------------------------
# orbit


def sample_orbit(rng: np.random.Generator, p: FamilyParams, bank: TextureBank):
    """Scene + cameras for the ``orbit`` family. Returns (Scene, c2w (V,4,4), K (V,4), meta)."""
    prims = _orbit_objects(rng, p, bank)
    num_objects = len(prims)
    target, dist, c2w, K, fov_x, step = _orbit_cameras(rng, p, prims)
    prims += _orbit_backdrop(rng, p, bank, dist)
    background = _random_colour(rng, (0.6, 1.0))
    light = _sun(rng)
    meta = {
        "fov_x_deg": float(np.rad2deg(fov_x)),
        "num_objects": num_objects,
        "orbit_step_deg": float(np.rad2deg(step)),
        "camera_distance": float(dist),
        "target": target.tolist(),
    }
    return Scene(prims, light, background), c2w, np.repeat(K[None], p.frames, 0), meta


def _orbit_objects(rng: np.random.Generator, p: FamilyParams, bank: TextureBank) -> list[Primitive]:
    """A large object near the origin and smaller ones around it, footprints not overlapping
    (rejection sampling; an object that finds no place after 30 tries is dropped)."""
    prims: list[Primitive] = []
    n_obj = int(rng.integers(p.num_objects[0], p.num_objects[1] + 1))
    placed: list[tuple[np.ndarray, float]] = []
    for i in range(n_obj):
        mat = random_material(rng, bank, (0.15, 0.5), p.texture_scale, ANY_TEXTURE)
        kind = ORBIT_KINDS[int(rng.integers(len(ORBIT_KINDS)))]
        size = rng.uniform(0.45, 0.75) if i == 0 else rng.uniform(0.18, 0.42)
        for _ in range(30):  # rejection sampling of non-overlapping footprints
            if i == 0:
                xy = rng.normal(0.0, 0.1, 2)
            else:
                ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.7)
                xy = dist * np.array([np.cos(ang), np.sin(ang)])
            prim, foot = _object(rng, kind, size, xy, 0.0, mat)
            if all(np.linalg.norm(xy - q) > foot + r + 0.03 for q, r in placed):
                prims.append(prim)
                placed.append((xy, foot))
                break
    return prims


def _orbit_cameras(
    rng: np.random.Generator, p: FamilyParams, prims: list[Primitive]
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, float, float]:
    """A camera arc around the objects that keeps them in view: constant azimuth step, small
    smooth elevation drift, slight distance breathing. Returns the look-at target, the camera
    distance, c2w (V, 4, 4), K (4,), the horizontal FoV and the azimuth step (radians)."""
    centres = np.array([pr.center for pr in prims], float)
    radii = np.array([pr.radius for pr in prims], float)
    target = centres.mean(0)
    target[2] = max(0.3, float(centres[:, 2].mean()))
    target[:2] += rng.normal(0.0, 0.05, 2)
    extent = float(np.max(np.linalg.norm(centres - target, axis=1) + radii))

    K, fov_x = intrinsics_for_fov(rng, p)
    fov_min = 2 * np.arctan(min(p.width, p.height) / (2 * K[0]))
    dist = extent / np.sin(0.5 * fov_min) * rng.uniform(0.9, 1.25)
    dist = max(dist, extent + 0.5)

    V = p.frames
    s = np.arange(V) / max(V - 1, 1)
    step = np.deg2rad(rng.uniform(*p.orbit_step_deg)) * rng.choice([-1.0, 1.0])
    az = rng.uniform(0, 2 * np.pi) + step * np.arange(V)
    el_deg = rng.uniform(*p.orbit_elevation_deg) + p.orbit_elevation_drift_deg * rng.uniform(
        -1, 1
    ) * np.sin(np.pi * s + rng.uniform(0, np.pi))
    el = np.deg2rad(np.clip(el_deg, 1.0, 85.0))  # stay above the ground, away from the pole
    radius = dist * (1.0 + rng.uniform(0.0, 0.05) * np.sin(2 * np.pi * s + rng.uniform(0, 6.3)))
    eye = target + radius[:, None] * np.stack(
        [np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1
    )
    c2w = np.stack([make_c2w(rotation_from_forward(target - e), e) for e in eye])
    return target, dist, c2w, K, fov_x, step


def _orbit_backdrop(
    rng: np.random.Generator, p: FamilyParams, bank: TextureBank, dist: float
) -> list[Primitive]:
    """The ground plane and, with ``background="dome"``, a textured emissive dome."""
    ground = Quad(
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        np.inf,
        np.inf,
        random_material(
            rng,
            bank,
            (0.5, 1.5),
            p.texture_scale,
            _backdrop_kinds(p, {"grey_photo": 0.5, "procedural": 0.5}),
            casts_shadow=False,
        ),
    )
    prims: list[Primitive] = [ground]
    dome_r = max(10.0, 6.0 * dist)
    if p.background == "dome":
        dome_mat = random_material(
            rng,
            bank,
            (p.dome_tile[0] * dome_r, p.dome_tile[1] * dome_r),
            1.0,
            _backdrop_kinds(p, ANY_TEXTURE),
            emissive=True,
            casts_shadow=False,
        )
        prims.append(Sphere([0, 0, 0], dome_r, dome_mat, rot=_yaw(rng.uniform(0, 2 * np.pi))))
    return prims


def _sun(rng: np.random.Generator) -> Light:
    """A directional light 30-70° above the horizon, from any azimuth, with some ambient."""
    sun_el, sun_az = np.deg2rad(rng.uniform(30, 70)), rng.uniform(0, 2 * np.pi)
    ambient = rng.uniform(0.25, 0.45)
    return Light(
        kind="directional",
        ambient=ambient,
        diffuse=1.0 - ambient,
        direction=np.array(
            [np.cos(sun_el) * np.cos(sun_az), np.cos(sun_el) * np.sin(sun_az), np.sin(sun_el)]
        ),
    )


# --------------------------------------------------------------------------------------------
# walk


def _walk_path(rng: np.random.Generator, p: FamilyParams, room: np.ndarray):
    """Camera centres (V, 3) and rotations (V, 3, 3) of a smooth walk inside the room.

    The path is sampled around the origin, shrunk if it (plus a 2 m look-ahead in front of every
    camera, so no view is filled by a nearby wall) does not fit the room minus a margin, then
    shifted to a random admissible place.
    """
    V = p.frames
    t = np.arange(V, dtype=float)
    heading = rng.uniform(0, 2 * np.pi)
    yaw_rate = np.deg2rad(rng.uniform(-p.walk_yaw_deg, p.walk_yaw_deg))
    wobble = np.deg2rad(rng.uniform(0, 3.0))
    yaw = (
        heading
        + yaw_rate * t
        + wobble * np.sin(2 * np.pi * t / rng.uniform(30, 60) + rng.uniform(0, 2 * np.pi))
    )
    if rng.uniform() < p.walk_sideways_prob:
        beta = np.deg2rad(rng.uniform(50, 90)) * rng.choice([-1.0, 1.0])
    else:
        beta = np.deg2rad(rng.uniform(-20, 20))
    move = heading + beta + 0.5 * yaw_rate * t  # the path bends gently with the view
    step = rng.uniform(*p.walk_step)
    unit = np.stack([np.cos(move), np.sin(move)], -1)
    offsets = np.concatenate([[[0.0, 0.0]], np.cumsum(unit[:-1], 0)])
    look = np.stack([np.cos(yaw), np.sin(yaw)], -1)

    margin, ahead = 0.5, 2.0
    avail = room[:2] - 2 * margin
    for _ in range(12):
        xy = step * offsets
        pts = np.concatenate([xy, xy + ahead * look])  # keep the wall in view >= ~2 m away
        lo, hi = pts.min(0), pts.max(0)
        if np.all(hi - lo <= avail):
            break
        step *= 0.75
    shift = np.array(
        [rng.uniform(-room[i] / 2 + margin - lo[i], room[i] / 2 - margin - hi[i]) for i in (0, 1)]
    )
    xy = xy + shift

    height = rng.uniform(1.3, 1.7) + 0.02 * np.sin(2 * np.pi * t / rng.uniform(15, 30))
    height = np.minimum(height, room[2] - 0.4)
    pitch = np.deg2rad(rng.uniform(-12, 3) + rng.uniform(0, 2) * np.sin(2 * np.pi * t / 40 + 1.0))
    roll = np.deg2rad(rng.uniform(-2, 2))
    centres = np.concatenate([xy, height[:, None]], 1)
    fwd = np.stack([np.cos(pitch) * look[:, 0], np.cos(pitch) * look[:, 1], np.sin(pitch)], -1)
    rots = np.stack([rotation_from_forward(f, roll) for f in fwd])
    return centres, rots, float(step), look


FURNITURE = ("table", "sofa", "cabinet", "shelf", "pillar", "stool", "ball", "crate", "lamp")


def _furniture(
    rng: np.random.Generator,
    kind: str,
    xy: np.ndarray,
    hz: float,
    mat: Material,
    bank: TextureBank,
    ts: float,
) -> tuple[list[Primitive], float]:
    """Free-standing furniture at ``xy`` on the floor. Returns (primitives, footprint radius)."""
    x, y = float(xy[0]), float(xy[1])
    if kind == "table":
        half = np.array([rng.uniform(0.35, 0.9), rng.uniform(0.3, 0.6), rng.uniform(0.2, 0.4)])
        out: list[Primitive] = [Box([x, y, half[2]], half, mat, rot=_yaw(rng.uniform(0, np.pi)))]
        if rng.uniform() < 0.6:  # something on the table
            kind2 = ("sphere", "box_yaw", "cylinder")[int(rng.integers(3))]
            mat2 = random_material(rng, bank, (0.1, 0.3), ts, ANY_TEXTURE)
            out.append(_object(rng, kind2, rng.uniform(0.1, 0.2), xy, 2 * half[2], mat2)[0])
        return out, float(np.hypot(half[0], half[1]))
    if kind == "sofa":  # seat + backrest sharing one yaw
        R = _yaw(rng.uniform(0, 2 * np.pi))
        seat = np.array([rng.uniform(0.7, 1.1), rng.uniform(0.35, 0.5), rng.uniform(0.18, 0.25)])
        back = np.array([seat[0], 0.1, rng.uniform(0.35, 0.5)])
        back_c = np.array([x, y, back[2]]) + R[:, 1] * (seat[1] - back[1])
        mat2 = random_material(rng, bank, (0.2, 0.6), ts, ANY_TEXTURE)
        return [Box([x, y, seat[2]], seat, mat, rot=R), Box(back_c, back, mat2, rot=R)], float(
            np.hypot(seat[0], seat[1])
        )
    if kind == "pillar":
        r = rng.uniform(0.12, 0.3)
        return [Cylinder([x, y, hz / 2], r, hz / 2, mat)], r
    if kind == "lamp":  # pole + spherical shade
        h, r = rng.uniform(0.5, 0.8), rng.uniform(0.15, 0.25)
        mat2 = random_material(rng, bank, (0.1, 0.3), ts, ANY_TEXTURE)
        return [
            Cylinder([x, y, h], 0.03, h, mat2),
            Sphere([x, y, 2 * h + r * 0.8], r, mat, rot=_random_rotation(rng)),
        ], r
    sub = {"stool": "cylinder", "ball": "sphere", "crate": "box_tilt"}[kind]
    prim, foot = _object(rng, sub, rng.uniform(0.2, 0.4), xy, 0.0, mat)
    return [prim], foot


def _wall_quad(
    rng: np.random.Generator, hx: float, hy: float, hu: float, hv: float, zc: float, mat: Material
) -> Quad:
    """A rectangle 1 cm in front of a random wall; u runs left-to-right, v top-to-bottom as seen
    from inside the room (so photos are not mirrored)."""
    ex, ey, ez = np.eye(3)
    wall = int(rng.integers(4))
    if wall < 2:
        s = 1 if wall == 0 else -1
        c = [s * (hx - 0.01), rng.uniform(-hy + hu + 0.1, hy - hu - 0.1), zc]
        return Quad(c, -s * ey, -ez, hu, hv, mat)
    s = 1 if wall == 2 else -1
    c = [rng.uniform(-hx + hu + 0.1, hx - hu - 0.1), s * (hy - 0.01), zc]
    return Quad(c, s * ex, -ez, hu, hv, mat)


def sample_walk(rng: np.random.Generator, p: FamilyParams, bank: TextureBank):
    """Scene + cameras for the ``walk`` family. Returns (Scene, c2w (V,4,4), K (V,4), meta)."""
    room = np.array([rng.uniform(5.5, 9.0), rng.uniform(5.5, 9.0), rng.uniform(2.5, 3.2)])
    centres, rots, step, look = _walk_path(rng, p, room)
    K, fov_x = intrinsics_for_fov(rng, p)
    c2w = np.stack([make_c2w(R, c) for R, c in zip(rots, centres)])
    prims = _room_shell(rng, p, bank, room)
    light_xy = rng.uniform(-0.6, 0.6, 2) * room[:2] / 2
    # Keep-out points: camera centres, points just ahead of them, and the lamp.
    keep_out = np.concatenate([centres[:, :2], centres[:, :2] + 0.6 * look, light_xy[None]])
    furniture, num_objects = _furnish(rng, p, bank, room, centres, look, keep_out)
    prims += furniture
    prims += _room_decor(rng, p, bank, room)
    light = _ceiling_lamp(rng, light_xy, room[2])
    meta = {
        "fov_x_deg": float(np.rad2deg(fov_x)),
        "num_objects": num_objects,
        "room_size": room.tolist(),
        "walk_step": step,
    }
    return Scene(prims, light, np.zeros(3)), c2w, np.repeat(K[None], p.frames, 0), meta


def _room_shell(
    rng: np.random.Generator, p: FamilyParams, bank: TextureBank, room: np.ndarray
) -> list[Primitive]:
    """Floor, ceiling and four walls (each wall the shared wall material or its own).

    Six unbounded planes: from inside a convex box the nearest plane hit IS the wall seen. They
    never cast shadows (a light inside a convex room cannot be blocked by it).
    """
    ts = p.texture_scale
    hx, hy, hz = room[0] / 2, room[1] / 2, room[2]
    shell = {"casts_shadow": False}
    floor_mat = random_material(
        rng, bank, (0.5, 1.4), ts, {"grey_photo": 0.5, "procedural": 0.5}, **shell
    )
    wall_kinds = {"grey_photo": 0.3, "procedural": 0.7}
    wall_mat = random_material(rng, bank, (0.6, 1.6), ts, wall_kinds, (0.15, 0.5), **shell)
    ceil_mat = random_material(rng, bank, (0.8, 2.0), ts, {"procedural": 1.0}, (0.1, 0.3), **shell)
    ex, ey, ez = np.eye(3)
    walls = []
    for sign in (-1, 1):
        m = (
            wall_mat
            if rng.uniform() < 0.5
            else random_material(rng, bank, (0.6, 1.6), ts, wall_kinds, (0.15, 0.5), **shell)
        )
        walls.append(Quad(sign * hx * ex + hz / 2 * ez, ey, -ez, np.inf, np.inf, m))
        m = (
            wall_mat
            if rng.uniform() < 0.5
            else random_material(rng, bank, (0.6, 1.6), ts, wall_kinds, (0.15, 0.5), **shell)
        )
        walls.append(Quad(sign * hy * ey + hz / 2 * ez, ex, -ez, np.inf, np.inf, m))
    return [
        Quad([0, 0, 0], ex, ey, np.inf, np.inf, floor_mat),
        Quad([0, 0, hz], ex, ey, np.inf, np.inf, ceil_mat),
        *walls,
    ]


def _furnish(
    rng: np.random.Generator,
    p: FamilyParams,
    bank: TextureBank,
    room: np.ndarray,
    centres: np.ndarray,
    look: np.ndarray,
    keep_out: np.ndarray,
) -> tuple[list[Primitive], int]:
    """Furniture: cabinets and shelves against the walls, other pieces mostly in front of the
    middle camera (visible, occluding), none on a keep-out point or another piece (30 tries
    each, else dropped). Returns the primitives and the number of pieces placed."""
    ts = p.texture_scale
    hx, hy, hz = room[0] / 2, room[1] / 2, room[2]
    V = p.frames

    def clear(xy: np.ndarray, foot: float, against_wall: bool = False) -> bool:
        inside = against_wall or (abs(xy[0]) + foot < hx - 0.02 and abs(xy[1]) + foot < hy - 0.02)
        free = np.all(np.linalg.norm(keep_out - xy, axis=1) > foot + 0.4)
        ok_objects = all(np.linalg.norm(xy - q) > foot + r + 0.02 for q, r in placed)
        return bool(inside and free and ok_objects)

    prims: list[Primitive] = []
    placed: list[tuple[np.ndarray, float]] = []
    n_obj = int(rng.integers(p.num_objects[0], p.num_objects[1] + 1))
    for _ in range(n_obj):
        kind = FURNITURE[int(rng.integers(len(FURNITURE)))]
        mat = random_material(rng, bank, (0.2, 0.6), ts, ANY_TEXTURE)
        for _try in range(30):
            if kind in ("cabinet", "shelf"):  # against a wall, axis-aligned
                tall = kind == "shelf"
                half = np.array([rng.uniform(0.3, 0.9), rng.uniform(0.18, 0.35), 0.0])
                half[2] = rng.uniform(0.8, 1.1) if tall else rng.uniform(0.35, 0.6)
                half[2] = min(half[2], hz / 2 - 0.1)
                wall = int(rng.integers(4))
                if wall >= 2:  # on a y wall: long side along x
                    half[:2] = half[1::-1]
                    xy = np.array([rng.uniform(-hx + half[0], hx - half[0]), 0.0])
                    xy[1] = (1 if wall == 2 else -1) * (hy - half[1] - 0.005)
                else:
                    xy = np.array([0.0, rng.uniform(-hy + half[1], hy - half[1])])
                    xy[0] = (1 if wall == 0 else -1) * (hx - half[0] - 0.005)
                new, foot = [Box([xy[0], xy[1], half[2]], half, mat)], float(np.hypot(*half[:2]))
                if clear(xy, foot, against_wall=True):
                    break
                continue
            if rng.uniform() < 0.7:  # in front of the middle camera: visible, occluding
                fwd, mid = look[V // 2], centres[V // 2, :2]
                dist = rng.uniform(1.5, 4.0)
                xy = (
                    mid + dist * fwd + rng.uniform(-0.55, 0.55) * dist * np.array([-fwd[1], fwd[0]])
                )
            else:
                xy = rng.uniform(-1, 1, 2) * (room[:2] / 2 - 0.3)
            new, foot = _furniture(rng, kind, xy, hz, mat, bank, ts)
            if clear(xy, foot):
                break
        else:
            continue
        prims.extend(new)
        placed.append((xy, foot))
    return prims, len(placed)


def _room_decor(
    rng: np.random.Generator, p: FamilyParams, bank: TextureBank, room: np.ndarray
) -> list[Primitive]:
    """Doors (floor-standing panels) and pictures (colour photos shown once) on the walls, a
    rug: thin quads just off the wall / floor that never cast shadows."""
    ts = p.texture_scale
    hx, hy, hz = room[0] / 2, room[1] / 2, room[2]
    prims: list[Primitive] = []
    decor = {"casts_shadow": False}
    for _ in range(int(rng.integers(0, 2))):
        hu, hv = rng.uniform(0.4, 0.55), min(rng.uniform(0.95, 1.05), hz / 2 - 0.1)
        kinds = {"grey_photo": 0.5, "procedural": 0.5}
        mat = random_material(rng, bank, (2 * hu, 2 * hu), ts, kinds, **decor)
        prims.append(_wall_quad(rng, hx, hy, hu, hv, hv + 0.001, mat))
    for _ in range(int(rng.integers(2, 6))):
        hu = rng.uniform(0.3, 0.7)
        hv = hu * rng.uniform(0.6, 1.0)
        mat = random_material(rng, bank, (2 * hu, 2 * hu), 1.0, {"colour_photo": 1.0}, **decor)
        mat.offset = np.array([0.5, 0.5 * hv / hu], np.float32)  # photo's top-left at the corner
        zc = rng.uniform(1.2, min(2.0, hz - hv - 0.1))
        prims.append(_wall_quad(rng, hx, hy, hu, hv, zc, mat))
    if rng.uniform() < 0.7:
        R = _yaw(rng.uniform(0, np.pi))
        mat = random_material(rng, bank, (0.3, 0.8), ts, {"procedural": 1.0}, **decor)
        c = [*(rng.uniform(-0.5, 0.5, 2) * room[:2] / 2), 0.005]
        prims.append(Quad(c, R[:, 0], R[:, 1], rng.uniform(0.6, 1.4), rng.uniform(0.5, 1.0), mat))
    return prims


def _ceiling_lamp(rng: np.random.Generator, light_xy: np.ndarray, height: float) -> Light:
    """A point light 0.25 below the ceiling at ``light_xy``, with some ambient."""
    ambient = rng.uniform(0.3, 0.45)
    return Light(
        kind="point",
        ambient=ambient,
        diffuse=1.3 * (1.0 - ambient),
        position=np.array([light_xy[0], light_xy[1], height - 0.25]),
        falloff=float(rng.uniform(3.0, 4.5)),
    )
