"""Analytic ray–primitive intersections for the synthetic renderer (vectorised numpy, float32).

Vectors are passed component-first ("structure of arrays"): a point or direction set is an array
of shape ``(3, ...)`` whose trailing dims broadcast, e.g. primary rays use origins ``(3, V, 1)``
(one per frame) with directions ``(3, V, H*W)``, and directional-light shadow rays use origins
``(3, M)`` with one direction ``(3, 1)``. Per-component arithmetic on contiguous arrays is several
times faster in numpy than reductions over a trailing axis of length 3.

Every primitive implements

* ``intersect(o, d) -> t``: ray parameter of the FIRST hit with ``t > T_MIN`` (``+inf`` on a miss),
  shape = broadcast of the trailing dims; the hit point is ``o + t * d``. Directions need not be unit
  length: the renderer uses camera-space directions with z = 1, so ``t`` IS the z-depth;
* ``surface(p) -> (normal, uv)``: for hit points ``(3, M)`` on the primitive, the outward unit
  normal ``(3, M)`` and texture coordinates ``(2, M)`` in TILES of the material (1 = one repeat of
  the texture), seamless around spheres and cylinders;
* ``center`` and ``radius`` (bounding sphere, used for placement).

Hand-written rather than a ray-tracing library: we need ~10^5–10^6 rays per clip on one CPU core
with exact depth and UVs, and numpy broadcasting over all pixels of all frames does that with no
extra dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

T_MIN = np.float32(1e-4)
INF = np.float32(np.inf)
TAU = 2.0 * np.pi


@dataclass
class Material:
    """Surface appearance: albedo ``= clip(base + gain * texel, 0, 1)``.

    Attributes:
        texture: texture id in the bank.
        tile: world size of one texture repeat (scene units).
        offset: ``(2,)`` uv offset in tiles (decorrelates surfaces sharing a texture).
        base, gain: ``(3,)`` affine colour map of the texel values.
        emissive: unlit (the orbit environment dome): colour = albedo, no shading.
        casts_shadow: whether the primitive blocks shadow rays.
    """

    texture: int
    tile: float
    offset: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    base: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    gain: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))
    emissive: bool = False
    casts_shadow: bool = True


def _f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


def _seamless_tiles(circumference: float, tile: float) -> np.float32:
    """Whole number of texture repeats around a closed curve, so the seam is invisible."""
    return np.float32(max(1, round(circumference / tile)))


def _to_local(v, rot: np.ndarray, center: np.ndarray | None = None):
    """Components of ``R^T (v - center)`` for a (3, ...) vector set; ``rot`` columns = local axes."""
    if center is not None:
        v = [v[0] - center[0], v[1] - center[1], v[2] - center[2]]
    return [v[0] * rot[0, i] + v[1] * rot[1, i] + v[2] * rot[2, i] for i in range(3)]


def _to_world(v, rot: np.ndarray) -> np.ndarray:
    return np.stack([v[0] * rot[i, 0] + v[1] * rot[i, 1] + v[2] * rot[i, 2] for i in range(3)])


def _is_identity(rot: np.ndarray) -> bool:
    return bool(np.array_equal(rot, np.eye(3, dtype=np.float32)))


@dataclass
class Sphere:
    center: np.ndarray
    r: float
    material: Material
    rot: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))  # texture frame

    def __post_init__(self) -> None:
        self.center, self.rot, self.r = _f32(self.center), _f32(self.rot), np.float32(self.r)

    @property
    def radius(self) -> float:
        return float(self.r)

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        c = self.center
        ox, oy, oz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
        dx, dy, dz = d[0], d[1], d[2]
        a = dx * dx + dy * dy + dz * dz
        b = ox * dx + oy * dy + oz * dz
        cc = ox * ox + oy * oy + oz * oz - self.r * self.r
        disc = b * b - a * cc
        sq = np.sqrt(np.maximum(disc, 0.0))
        t1 = (-b - sq) / a
        t2 = (-b + sq) / a
        t = np.where(t1 > T_MIN, t1, np.where(t2 > T_MIN, t2, INF))
        return np.where(disc >= 0.0, t, INF)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = (p - self.center[:, None]) / self.r
        nl = _to_local(n, self.rot)
        tiles_u = _seamless_tiles(TAU * self.r, self.material.tile)
        u = (np.arctan2(nl[1], nl[0]) / TAU + 0.5) * tiles_u
        v = np.arccos(np.clip(nl[2], -1.0, 1.0)) * (self.r / self.material.tile)
        return n, np.stack([u, v])


@dataclass
class Box:
    """Oriented box: ``rot`` (3, 3) has the box axes as columns (local -> world)."""

    center: np.ndarray
    half: np.ndarray
    material: Material
    rot: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))

    def __post_init__(self) -> None:
        self.center, self.half, self.rot = _f32(self.center), _f32(self.half), _f32(self.rot)
        self._axis_aligned = _is_identity(self.rot)

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(self.half))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        if self._axis_aligned:
            ol = [o[i] - self.center[i] for i in range(3)]
            dl = [d[0], d[1], d[2]]
        else:
            ol, dl = _to_local(o, self.rot, self.center), _to_local(d, self.rot)
        t_near = t_far = None
        with np.errstate(divide="ignore", invalid="ignore"):
            for k in range(3):  # slab method
                inv = 1.0 / dl[k]
                t1 = (-self.half[k] - ol[k]) * inv
                t2 = (self.half[k] - ol[k]) * inv
                lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
                t_near = lo if t_near is None else np.maximum(t_near, lo)
                t_far = hi if t_far is None else np.minimum(t_far, hi)
        hit = (t_near <= t_far) & (t_far > T_MIN)
        return np.where(hit, np.where(t_near > T_MIN, t_near, t_far), INF)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pl = np.stack(_to_local(p, self.rot, self.center))
        axis = np.abs(pl / self.half[:, None]).argmax(axis=0)
        cols = np.arange(p.shape[1])
        sign = np.sign(pl[axis, cols]).astype(np.float32)
        nl = np.zeros_like(pl)
        nl[axis, cols] = sign
        u = pl[np.array([1, 0, 0])[axis], cols]
        v = pl[np.array([2, 2, 1])[axis], cols]
        return _to_world(nl, self.rot), np.stack([u, v]) / self.material.tile


@dataclass
class Cylinder:
    """Capped cylinder along local z (``rot[:, 2]`` in world), radius ``r``, half-height ``h``."""

    center: np.ndarray
    r: float
    h: float
    material: Material
    rot: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))

    def __post_init__(self) -> None:
        self.center, self.rot = _f32(self.center), _f32(self.rot)
        self.r, self.h = np.float32(self.r), np.float32(self.h)

    @property
    def radius(self) -> float:
        return float(np.hypot(self.r, self.h))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ox, oy, oz = _to_local(o, self.rot, self.center)
        dx, dy, dz = _to_local(d, self.rot)
        r2 = self.r * self.r
        with np.errstate(divide="ignore", invalid="ignore"):
            # Side: the entering root is the first side hit for rays starting outside the solid.
            a = dx * dx + dy * dy
            b = ox * dx + oy * dy
            disc = b * b - a * (ox * ox + oy * oy - r2)
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
            ok = (disc >= 0.0) & (t_side > T_MIN) & (np.abs(oz + t_side * dz) <= self.h)
            t = np.where(ok, t_side, INF)
            for zc in (self.h, -self.h):  # caps
                tc = (zc - oz) / dz
                xc, yc = ox + tc * dx, oy + tc * dy
                ok = (tc > T_MIN) & (xc * xc + yc * yc <= r2) & (tc < t)
                t = np.where(ok, tc, t)
        return t

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y, z = _to_local(p, self.rot, self.center)
        radial = np.sqrt(x * x + y * y)
        on_cap = (np.abs(z) - self.h) > (radial - self.r)
        zero = np.zeros_like(x)
        safe = np.maximum(radial, 1e-8)
        nl = np.where(
            on_cap, np.stack([zero, zero, np.sign(z)]), np.stack([x / safe, y / safe, zero])
        )
        tile = self.material.tile
        tiles_u = _seamless_tiles(TAU * self.r, tile)
        u_side = (np.arctan2(y, x) / TAU + 0.5) * tiles_u
        uv = np.where(on_cap, np.stack([x, y]) / tile, np.stack([u_side, z / tile]))
        return _to_world(nl, self.rot), uv


@dataclass
class Quad:
    """Planar rectangle ``center + u*eu + v*ev``, ``|u| <= hu``, ``|v| <= hv`` (inf: unbounded plane).

    Normal = ``eu × ev``; the renderer shades quads two-sided.
    """

    center: np.ndarray
    eu: np.ndarray
    ev: np.ndarray
    hu: float
    hv: float
    material: Material

    def __post_init__(self) -> None:
        self.center, self.eu, self.ev = _f32(self.center), _f32(self.eu), _f32(self.ev)
        self.n = np.cross(self.eu, self.ev).astype(np.float32)
        self.hu, self.hv = np.float32(self.hu), np.float32(self.hv)
        self._offset = np.float32(self.center @ self.n)

    @property
    def radius(self) -> float:
        return float(np.hypot(self.hu, self.hv))

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        n = self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self._offset - (o[0] * n[0] + o[1] * n[1] + o[2] * n[2])) / (
                d[0] * n[0] + d[1] * n[1] + d[2] * n[2]
            )
        ok = t > T_MIN
        if np.isfinite(self.hu) or np.isfinite(self.hv):
            q = [o[i] + t * d[i] - self.center[i] for i in range(3)]
            eu, ev = self.eu, self.ev
            ok &= np.abs(q[0] * eu[0] + q[1] * eu[1] + q[2] * eu[2]) <= self.hu
            ok &= np.abs(q[0] * ev[0] + q[1] * ev[1] + q[2] * ev[2]) <= self.hv
        return np.where(ok, t, INF)

    def surface(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = p - self.center[:, None]
        uv = np.stack([self.eu @ q, self.ev @ q]) / self.material.tile
        return np.broadcast_to(self.n[:, None], p.shape).copy(), uv


Primitive = Sphere | Box | Cylinder | Quad
