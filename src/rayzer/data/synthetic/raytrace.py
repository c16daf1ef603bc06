"""Vectorised CPU ray tracer for the synthetic scenes (numpy, float32).

All pixels of all frames are traced at once: primary rays -> nearest hit over all primitives ->
per-primitive normals and UVs -> trilinear (mip-mapped) texture look-up -> Lambertian shading with
ambient light -> one shadow ray per lit pixel (hard shadows).

Cameras follow the package conventions (:mod:`rayzer`): OpenCV axes, camera-to-world ``c2w``, pixel
intrinsics ``(fx, fy, cx, cy)`` with pixel centres at ``+0.5``. Ray directions are built in camera
space as ``((u - cx) / fx, (v - cy) / fy, 1)`` and rotated to world space WITHOUT normalising, so
the ray parameter of a hit is exactly its z-depth (distance along the camera z axis).

Shading is view-independent (Lambertian, no specular term), so a surface point has the same colour
in every frame up to texture filtering: that is what makes depth-based warping exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .primitives import INF, Primitive
from .textures import TEXTURE_SIZE, TextureBank, sample_textures

SHADOW_BIAS = 1e-3  # offset along the normal, in scene units, against self-shadowing ("acne")


@dataclass
class Light:
    """A directional light (``direction`` points FROM the scene TOWARD the light) or a point light.

    Attributes:
        kind: ``"directional"`` or ``"point"``.
        direction: ``(3,)`` unit vector for directional lights.
        position: ``(3,)`` for point lights.
        ambient: ambient fraction in [0, 1]; lit colour = albedo * (ambient + diffuse * n·l * vis).
        diffuse: diffuse strength.
        falloff: point lights only: intensity ``1 / (1 + (dist / falloff)^2)`` (None = constant).
    """

    kind: str
    ambient: float
    diffuse: float
    direction: np.ndarray | None = None
    position: np.ndarray | None = None
    falloff: float | None = None


@dataclass
class Scene:
    """A static scene: primitives + light + background colour for rays that hit nothing."""

    primitives: list[Primitive]
    light: Light
    background: np.ndarray  # (3,) colour for misses (depth = +inf there)


def camera_rays_np(c2w: np.ndarray, K: np.ndarray, height: int, width: int):
    """Per-pixel rays of ``V`` cameras, component-first (see ``primitives``).

    Args:
        c2w: ``(V, 4, 4)`` camera-to-world (OpenCV axes).
        K: ``(V, 4)`` pixel intrinsics (fx, fy, cx, cy).
    Returns:
        origins ``(3, V, 1)`` (one per camera) and directions ``(3, V, H*W)`` float32, pixels
        row-major, directions with camera-space z = 1 (so the hit parameter ``t`` = z-depth).
    """
    v_, u_ = np.mgrid[0:height, 0:width].reshape(2, 1, -1).astype(np.float64) + 0.5
    fx, fy, cx, cy = (K[:, i, None].astype(np.float64) for i in range(4))
    x, y = (u_ - cx) / fx, (v_ - cy) / fy  # (V, H*W)
    R = c2w[:, :3, :3].astype(np.float64)
    d = np.stack([R[:, i, 0, None] * x + R[:, i, 1, None] * y + R[:, i, 2, None] for i in range(3)])
    o = np.ascontiguousarray(c2w[:, :3, 3].T[:, :, None], dtype=np.float32)
    return o, d.astype(np.float32)


def nearest_hit(prims: list[Primitive], o: np.ndarray, d: np.ndarray):
    """Nearest intersection: ``t`` and primitive id (``-1`` = miss), shape = broadcast of o, d."""
    t_best = pid = None
    for k, prim in enumerate(prims):
        t = prim.intersect(o, d)
        if t_best is None:
            t_best, pid = t, np.where(np.isfinite(t), 0, -1)
            continue
        closer = t < t_best
        t_best = np.where(closer, t, t_best)
        pid = np.where(closer, k, pid)
    return t_best, pid


def occluded(prims: list[Primitive], o: np.ndarray, d: np.ndarray, t_max) -> np.ndarray:
    """Any-hit test for shadow rays: True where a shadow-casting primitive lies in ``(0, t_max)``."""
    hit = np.zeros(np.broadcast_shapes(o.shape[1:], d.shape[1:]), bool)
    for prim in prims:
        if prim.material.casts_shadow:
            hit |= prim.intersect(o, d) < t_max
    return hit


def render(
    scene: Scene,
    c2w: np.ndarray,
    K: np.ndarray,
    height: int,
    width: int,
    bank: TextureBank,
    shadows: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Ray trace ``V`` views of ``scene``.

    Args:
        c2w: ``(V, 4, 4)``; K: ``(V, 4)`` pixels.
    Returns:
        images ``(V, H, W, 3)`` float32 in [0, 1] and z-depth ``(V, H, W)`` float32
        (``+inf`` where the ray hits nothing).
    """
    V = len(c2w)
    o, d = camera_rays_np(c2w, K, height, width)
    t, pid = nearest_hit(scene.primitives, o, d)
    t, pid = t.reshape(-1), pid.reshape(-1)
    d = d.reshape(3, -1)
    colour = np.empty((3, t.size), np.float32)
    colour[:] = scene.background.astype(np.float32)[:, None]

    hit_idx = np.flatnonzero(pid >= 0)
    if len(hit_idx):
        # Group hit pixels by primitive so surface() runs once per primitive on its own pixels.
        order = hit_idx[np.argsort(pid[hit_idx], kind="stable")]
        counts = np.bincount(pid[order], minlength=len(scene.primitives))
        frame = order // (height * width)
        d_h, t_h = d[:, order], t[order]
        p = o[:, frame, 0] + t_h * d_h
        d_len = np.sqrt((d_h * d_h).sum(0))
        dn = d_h / d_len
        # Pixel footprint on the surface (scene units) for mip-level selection: z-depth * |d| / f,
        # stretched by 1/sqrt(cos) (geometric mean of the footprint axes at oblique incidence).
        focal = K[:, :2].mean(1).astype(np.float32)[frame]
        footprint = t_h * d_len / focal
        normal = np.empty_like(p)
        albedo = np.empty_like(p)
        emissive = np.zeros(len(order), bool)
        start = 0
        for k, prim in enumerate(scene.primitives):
            sl = slice(start, start + counts[k])
            start += counts[k]
            if sl.start == sl.stop:
                continue
            n_k, uv_k = prim.surface(p[:, sl])
            cos = (n_k * dn[:, sl]).sum(0)
            n_k = np.where(cos > 0, -n_k, n_k)  # face the viewer (quads are two-sided)
            normal[:, sl] = n_k
            m = prim.material
            texels_per_px = footprint[sl] / np.maximum(np.abs(cos), 0.02) * (TEXTURE_SIZE / m.tile)
            level = np.log2(np.maximum(texels_per_px, 1e-6))
            tex = sample_textures(bank, m.texture, uv_k + m.offset[:, None], level)
            albedo[:, sl] = np.clip(m.base[:, None] + m.gain[:, None] * tex, 0.0, 1.0)
            emissive[sl] = m.emissive
        colour[:, order] = _shade(scene, p, normal, albedo, emissive, shadows)

    images = np.clip(colour, 0.0, 1.0).reshape(3, V, height, width).transpose(1, 2, 3, 0)
    return images, t.reshape(V, height, width)


def _shade(scene: Scene, p, normal, albedo, emissive, shadows: bool) -> np.ndarray:
    """Lambert + ambient + hard shadows. All arrays component-first ``(3, M)``."""
    light = scene.light
    if light.kind == "directional":
        to_light = light.direction.astype(np.float32)[:, None]  # (3, 1) broadcasts
        dist = INF
        atten = np.float32(1.0)
    elif light.kind == "point":
        delta = light.position.astype(np.float32)[:, None] - p
        dist = np.sqrt((delta * delta).sum(0))
        to_light = delta / dist
        atten = (
            np.float32(1.0)
            if light.falloff is None
            else 1.0 / (1.0 + (dist / np.float32(light.falloff)) ** 2)
        )
    else:
        raise ValueError(f"unknown light kind {light.kind!r}")
    ndl = np.maximum((normal * to_light).sum(0), 0.0) * atten
    if shadows:
        lit = np.flatnonzero((ndl > 0) & ~emissive)
        origin = p[:, lit] + SHADOW_BIAS * normal[:, lit]
        d_sh = to_light if to_light.shape[1] == 1 else to_light[:, lit]
        t_max = dist if np.ndim(dist) == 0 else dist[lit]
        blocked = occluded(scene.primitives, origin, d_sh, t_max)
        ndl[lit[blocked]] = 0.0
    shade = np.float32(light.ambient) + np.float32(light.diffuse) * ndl
    shade = np.where(emissive, np.float32(1.0), shade)
    return albedo * shade
