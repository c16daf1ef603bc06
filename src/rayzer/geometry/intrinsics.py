"""Pinhole intrinsics as compact tensors ``K = (..., 4) = (fx, fy, cx, cy)``.

Conventions (:mod:`rayzer`):

* At the boundary ``K`` is in PIXELS; the principal point is measured from the top-left image
  CORNER and pixel ``(i, j)`` (row, column) has its centre at ``(u, v) = (j + 0.5, i + 0.5)``.
  A camera-frame point ``(x, y, z)`` projects to ``u = fx x / z + cx``, ``v = fy y / z + cy``.
* Inside the models ``K`` is NORMALISED by the image size: ``(fx / W, fy / H, cx / W, cy / H)``,
  so a centred principal point is ``(0.5, 0.5)`` whatever the resolution.

``height`` / ``width`` arguments accept Python numbers or tensors broadcastable to ``K[..., 0]``.
"""

from __future__ import annotations

import math

import torch

from rayzer.geometry._checks import check_floating, check_trailing

__all__ = [
    "crop_intrinsics",
    "denormalize_intrinsics",
    "focal_from_fov",
    "fov_from_focal",
    "intrinsics_from_matrix",
    "intrinsics_matrix",
    "normalize_intrinsics",
    "resize_intrinsics",
]

Size = int | float | torch.Tensor


def _wh_scale(height: Size, width: Size, like: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` tensor ``(W, H, W, H)`` matching ``like``'s dtype/device."""
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, torch.Tensor) and not value > 0:
            raise ValueError(f"{name}: expected a positive size, got {value!r}")
    h = torch.as_tensor(height, dtype=like.dtype, device=like.device)
    w = torch.as_tensor(width, dtype=like.dtype, device=like.device)
    h, w = torch.broadcast_tensors(h, w)
    return torch.stack((w, h, w, h), dim=-1)


def _check_K(K: torch.Tensor, name: str) -> None:
    check_trailing(K, name, (4,))
    check_floating(K, name)


def normalize_intrinsics(K_px: torch.Tensor, height: Size, width: Size) -> torch.Tensor:
    """Pixel intrinsics ``(..., 4)`` -> normalised ``(fx/W, fy/H, cx/W, cy/H)``."""
    _check_K(K_px, "K_px")
    return K_px / _wh_scale(height, width, K_px)


def denormalize_intrinsics(K_norm: torch.Tensor, height: Size, width: Size) -> torch.Tensor:
    """Normalised intrinsics ``(..., 4)`` -> pixels ``(fx*W, fy*H, cx*W, cy*H)``."""
    _check_K(K_norm, "K_norm")
    return K_norm * _wh_scale(height, width, K_norm)


def intrinsics_matrix(K: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` -> ``(..., 3, 3)`` matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``."""
    _check_K(K, "K")
    fx, fy, cx, cy = K.unbind(-1)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack((fx, zero, cx, zero, fy, cy, zero, zero, one), dim=-1).reshape(
        *K.shape[:-1], 3, 3
    )


def intrinsics_from_matrix(K_mat: torch.Tensor) -> torch.Tensor:
    """``(..., 3, 3)`` pinhole matrix -> ``(..., 4)`` = ``(fx, fy, cx, cy)`` (skew is ignored)."""
    check_trailing(K_mat, "K_mat", (3, 3))
    return torch.stack((K_mat[..., 0, 0], K_mat[..., 1, 1], K_mat[..., 0, 2], K_mat[..., 1, 2]), -1)


def resize_intrinsics(
    K_px: torch.Tensor, old_hw: tuple[Size, Size], new_hw: tuple[Size, Size]
) -> torch.Tensor:
    """Intrinsics after resizing the image from ``old_hw = (H, W)`` to ``new_hw = (H', W')``.

    Continuous pixel coordinates scale about the image corner, ``u' = u * W'/W`` (pixel centres
    ``j + 0.5`` map to ``(j + 0.5) W'/W``, as for ``align_corners=False`` resampling), so
    ``fx, cx`` scale by ``W'/W`` and ``fy, cy`` by ``H'/H``.
    """
    _check_K(K_px, "K_px")
    if len(old_hw) != 2 or len(new_hw) != 2:
        raise ValueError(f"old_hw/new_hw: expected (height, width) pairs, got {old_hw}, {new_hw}")
    return K_px * _wh_scale(new_hw[0], new_hw[1], K_px) / _wh_scale(old_hw[0], old_hw[1], K_px)


def crop_intrinsics(K_px: torch.Tensor, top: Size, left: Size) -> torch.Tensor:
    """Intrinsics after cropping an image so that pixel ``(top, left)`` becomes the new ``(0, 0)``.

    The focal lengths are unchanged and the principal point shifts: ``cx - left``, ``cy - top``.
    ``top`` / ``left`` may be ints or tensors broadcastable to ``K_px[..., 0]``.
    """
    _check_K(K_px, "K_px")
    top_t = torch.as_tensor(top, dtype=K_px.dtype, device=K_px.device)
    left_t = torch.as_tensor(left, dtype=K_px.dtype, device=K_px.device)
    top_t, left_t = torch.broadcast_tensors(top_t, left_t)
    zero = torch.zeros_like(top_t)
    return K_px - torch.stack((zero, zero, left_t, top_t), dim=-1)


def focal_from_fov(fov_rad: float | torch.Tensor, size: Size) -> float | torch.Tensor:
    """Focal length in pixels for a full field of view ``fov_rad`` across ``size`` pixels.

    ``f = size / (2 tan(fov / 2))``. Returns a float for float inputs, else a tensor.
    """
    if isinstance(fov_rad, torch.Tensor) or isinstance(size, torch.Tensor):
        return torch.as_tensor(size) / (2.0 * torch.tan(torch.as_tensor(fov_rad) / 2.0))
    if not 0.0 < fov_rad < math.pi:
        raise ValueError(f"fov_rad: expected a field of view in (0, pi) radians, got {fov_rad}")
    return size / (2.0 * math.tan(fov_rad / 2.0))


def fov_from_focal(f: float | torch.Tensor, size: Size) -> float | torch.Tensor:
    """Full field of view (radians) across ``size`` pixels for focal length ``f`` in pixels.

    ``fov = 2 atan(size / (2 f))``. Returns a float for float inputs, else a tensor.
    """
    if isinstance(f, torch.Tensor) or isinstance(size, torch.Tensor):
        return 2.0 * torch.atan(torch.as_tensor(size) / (2.0 * torch.as_tensor(f)))
    if not f > 0:
        raise ValueError(f"f: expected a positive focal length, got {f}")
    return 2.0 * math.atan(size / (2.0 * f))
