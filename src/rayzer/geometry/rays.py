"""Camera rays, Plücker coordinates, depth unprojection and point projection.

Conventions: OpenCV camera-to-world ``c2w (..., 4, 4)``; pixel intrinsics ``K_px (..., 4)`` =
``(fx, fy, cx, cy)`` with the principal point measured from the image corner, and pixel ``(i, j)``
(row, column) sampled at its centre ``(u, v) = (j + 0.5, i + 0.5)``. Functions that take
intrinsics also accept normalised ones (``(fx/W, fy/H, cx/W, cy/H)``, as used inside the models)
with ``normalized_intrinsics=True``. Leading dims of ``c2w`` and ``K`` broadcast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import (
    broadcast_batch,
    check_floating,
    check_positive_int,
    check_trailing,
)
from rayzer.geometry.intrinsics import denormalize_intrinsics

__all__ = [
    "camera_rays",
    "pixel_centers",
    "plucker_rays",
    "project_points",
    "unproject_depth",
]


def pixel_centers(
    height: int,
    width: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(H, W, 2)`` grid of pixel-centre coordinates ``(u, v) = (x + 0.5, y + 0.5)``."""
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    v = torch.arange(height, device=device, dtype=dtype) + 0.5
    u = torch.arange(width, device=device, dtype=dtype) + 0.5
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    return torch.stack((uu, vv), dim=-1)


def _prepare(
    c2w: torch.Tensor, K: torch.Tensor, height: int, width: int, normalized: bool
) -> torch.Tensor:
    check_trailing(c2w, "c2w", (4, 4))
    check_trailing(K, "K_px", (4,))
    check_floating(c2w, "c2w")
    check_floating(K, "K_px")
    return denormalize_intrinsics(K, height, width) if normalized else K


def _camera_directions(K_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Camera-frame directions ``((u - cx)/fx, (v - cy)/fy, 1)``: ``(..., H, W, 3)``, z = 1."""
    uv = pixel_centers(height, width, device=K_px.device, dtype=K_px.dtype)
    f = K_px[..., None, None, :2]
    c = K_px[..., None, None, 2:]
    xy = (uv - c) / f
    return torch.cat((xy, torch.ones_like(xy[..., :1])), dim=-1)


def camera_rays(
    c2w: torch.Tensor,
    K_px: torch.Tensor,
    height: int,
    width: int,
    normalize_dirs: bool = True,
    normalized_intrinsics: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World-frame rays through every pixel centre.

    Args:
        c2w: ``(..., 4, 4)`` camera-to-world.
        K_px: ``(..., 4)`` intrinsics in pixels (or normalised, see ``normalized_intrinsics``).
        height, width: image size in pixels.
        normalize_dirs: unit directions if True; otherwise directions whose camera-frame z
            component is 1, so ``origin + depth * dir`` is the point at z-depth ``depth``.
        normalized_intrinsics: ``K_px`` is normalised by the image size.

    Returns:
        ``origins (..., H, W, 3)`` (the camera centre, expanded) and ``dirs (..., H, W, 3)``.
    """
    K_px = _prepare(c2w, K_px, height, width, normalized_intrinsics)
    batch = broadcast_batch(c2w.shape[:-2], K_px.shape[:-1])
    c2w = c2w.expand(*batch, 4, 4)
    dirs_cam = _camera_directions(K_px.expand(*batch, 4), height, width)
    # One (HW, 3) @ (3, 3) product per camera, not one 3x3 product per pixel.
    dirs = (dirs_cam.flatten(-3, -2) @ c2w[..., :3, :3].transpose(-1, -2)).unflatten(
        -2, (height, width)
    )
    if normalize_dirs:
        dirs = F.normalize(dirs, dim=-1)
    origins = c2w[..., None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def plucker_rays(
    c2w: torch.Tensor,
    K_px: torch.Tensor,
    height: int,
    width: int,
    normalized_intrinsics: bool = False,
) -> torch.Tensor:
    """Per-pixel Plücker ray coordinates, channels first: ``(..., 6, H, W)`` = ``(d, o x d)``.

    ``d`` is the unit world-frame direction and ``m = o x d`` the moment about the world origin
    (``o`` = camera centre); ``d . m = 0`` and ``m`` is the same for every point on the ray.
    """
    origins, dirs = camera_rays(
        c2w, K_px, height, width, normalize_dirs=True, normalized_intrinsics=normalized_intrinsics
    )
    # m = o × d = d @ [o]ₓᵀ: one (HW, 3) @ (3, 3) product per camera.
    o = origins[..., 0, 0, :]  # (..., 3)
    zero = torch.zeros_like(o[..., 0])
    cross_t = torch.stack(  # [o]ₓᵀ, rows = columns of the cross-product matrix
        (
            torch.stack((zero, o[..., 2], -o[..., 1]), dim=-1),
            torch.stack((-o[..., 2], zero, o[..., 0]), dim=-1),
            torch.stack((o[..., 1], -o[..., 0], zero), dim=-1),
        ),
        dim=-2,
    )
    moments = (dirs.flatten(-3, -2) @ cross_t).view_as(dirs)
    return torch.cat((dirs, moments), dim=-1).movedim(-1, -3)


def unproject_depth(
    depth: torch.Tensor,
    c2w: torch.Tensor,
    K_px: torch.Tensor,
    normalized_intrinsics: bool = False,
) -> torch.Tensor:
    """Lift a z-depth map ``(..., H, W)`` to world points ``(..., H, W, 3)`` at the pixel centres.

    ``depth`` is the camera-frame z coordinate (not the distance along the ray).
    """
    if not isinstance(depth, torch.Tensor) or depth.ndim < 2:
        raise ValueError(f"depth: expected a tensor of shape (..., H, W), got {depth!r:.80}")
    height, width = depth.shape[-2:]
    origins, dirs = camera_rays(
        c2w,
        K_px,
        height,
        width,
        normalize_dirs=False,
        normalized_intrinsics=normalized_intrinsics,
    )
    return origins + depth[..., None] * dirs


def project_points(
    points_world: torch.Tensor,
    c2w: torch.Tensor,
    K_px: torch.Tensor,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points ``(..., N, 3)`` into cameras ``c2w (..., 4, 4)``, ``K_px (..., 4)``.

    Returns:
        ``uv (..., N, 2)`` pixel coordinates (corner convention, so pixel ``(i, j)`` covers
        ``[j, j+1) x [i, i+1)``) and camera-frame depth ``z (..., N)``. Points with ``z <= 0``
        are behind the camera and their ``uv`` is meaningless; ``|z|`` is clamped to ``eps`` in
        the division so the output stays finite.
    """
    check_trailing(points_world, "points_world", (3,))
    check_trailing(c2w, "c2w", (4, 4))
    check_trailing(K_px, "K_px", (4,))
    R = c2w[..., None, :3, :3]
    t = c2w[..., None, :3, 3]
    # x_cam = R^T (x_world - t), written row-vector style to broadcast over N.
    p_cam = ((points_world - t)[..., None, :] @ R).squeeze(-2)
    z = p_cam[..., 2]
    z_safe = torch.where(z >= 0, z.clamp_min(eps), z.clamp_max(-eps))
    uv = p_cam[..., :2] / z_safe[..., None] * K_px[..., None, :2] + K_px[..., None, 2:]
    return uv, z
