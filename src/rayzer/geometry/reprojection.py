"""The photometric reprojection (depth-warping) error: the objective :mod:`rayzer.refine`
minimises and the explicit models' optional warping loss (:mod:`rayzer.models.warp_loss`).

Every pixel of a target view is lifted with its own z-depth, projected into each of its
neighbour views, and the neighbour's image is sampled there (bilinear). The error of a pixel is
the mean, over the neighbours that see it, of a robust (Charbonnier) colour difference. A
neighbour "sees" a pixel when the point lands inside its frame, in front of it, and not behind
that neighbour's own depth at that spot (an occlusion test on the depth maps).

Shapes and conventions: images ``(V, 3, H, W)`` in [0, 1]; depth ``(V, H, W)`` camera z-depth at
the images' size, ``<= 0`` or non-finite where unknown (absurdly far values should be removed
first, :func:`rayzer.refine.depth.clean_depth`); cameras OpenCV camera-to-world ``(V, 4, 4)`` and pixel
intrinsics ``(V, 4) = (fx, fy, cx, cy)`` of the same size (:mod:`rayzer.geometry`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rayzer.geometry.rays import project_points, unproject_depth

#: Charbonnier ε: the error behaves like L1 above it and stays smooth at zero (L-BFGS needs it).
CHARBONNIER_EPS = 1e-3
#: Normalised sample coordinates beyond this (or non-finite) are replaced by it: outside the
#: frame ([-1, 1]) yet small enough for grid_sample's integer index arithmetic.
OFF_FRAME = 2.0


def neighbour_views(num_views: int, k: int) -> Tensor:
    """``(V, k')`` indices of each view's ``k' = min(k, V - 1)`` nearest views in capture order
    (ties: the earlier one), sorted."""
    k = min(k, num_views - 1)
    rows = []
    for t in range(num_views):
        others = sorted((i for i in range(num_views) if i != t), key=lambda i: (abs(i - t), i))
        rows.append(sorted(others[:k]))
    return torch.tensor(rows, dtype=torch.long)


def reprojection_error(
    images: Tensor,
    depth: Tensor,
    c2w: Tensor,
    K: Tensor,
    neighbours: Tensor,
    occlusion_tolerance: float = 0.05,
    squared: bool = False,
) -> tuple[Tensor, Tensor]:
    """Per-pixel photometric error of every view against its neighbours.

    Args:
        images, depth, c2w, K: as in the module docstring, one size.
        neighbours: ``(V, k)`` source views of every target view (:func:`neighbour_views`).
        occlusion_tolerance: a neighbour whose own depth at the projected spot is nearer than
            the point's by more than this fraction is occluding it.
        squared: squared colour error (for a PSNR) instead of the Charbonnier one.

    Returns:
        ``error (V, H, W)`` (differentiable in depth and cameras) and ``valid (V, H, W)`` bool:
        pixels with a known depth that at least one neighbour sees (the error is 0 elsewhere).
    """
    v, c, h, w = images.shape
    k = neighbours.shape[1]
    known = torch.isfinite(depth) & (depth > 0)
    # unknown pixels are lifted at depth 1 (masked out below) so no NaN reaches the gradients
    pts = unproject_depth(torch.where(known, depth, 1.0).clamp_min(1e-6), c2w, K)  # (V, H, W, 3)
    pts = pts[:, None].expand(v, k, h, w, 3).reshape(v, k, h * w, 3)
    uv, z = project_points(pts, c2w[neighbours], K[neighbours])  # (V, k, HW, 2), (V, k, HW)
    grid = torch.stack((uv[..., 0] / w * 2 - 1, uv[..., 1] / h * 2 - 1), dim=-1)
    # Points far outside a neighbour's frame (or non-finite ones) would overflow grid_sample's
    # index arithmetic (a crash in its backward pass): park them just outside the frame, where
    # they sample the border and count as unseen.
    off_frame = ~(grid.abs() <= OFF_FRAME).all(-1)  # also true for NaN
    grid = torch.where(off_frame[..., None], torch.full_like(grid, OFF_FRAME), grid)
    grid = grid.reshape(v * k, 1, h * w, 2)
    sampled = F.grid_sample(
        images[neighbours].reshape(v * k, c, h, w),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    ).reshape(v, k, c, h * w)
    diff = sampled - images.reshape(v, 1, c, h * w)
    if squared:
        err = diff.square().mean(2)
    else:
        err = (diff.square() + CHARBONNIER_EPS**2).sqrt().mean(2)
    with torch.no_grad():  # the visibility test is a mask, not part of the objective's slope
        seen = (grid.reshape(v, k, h * w, 2).abs() < 1).all(-1) & (z > 1e-6) & ~off_frame
        source_depth = F.grid_sample(
            depth[neighbours].reshape(v * k, 1, h, w),
            grid,
            mode="nearest",
            padding_mode="border",
            align_corners=False,
        ).reshape(v, k, h * w)
        unoccluded = (source_depth <= 0) | (z < source_depth * (1 + occlusion_tolerance))
        seen &= unoccluded & known.reshape(v, 1, h * w)
        count = seen.sum(1)
    err = (err * seen).sum(1) / count.clamp_min(1)
    return err.reshape(v, h, w), (count > 0).reshape(v, h, w)


def mean_error(error: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``error`` over the ``valid`` pixels (0 when none is)."""
    return (error * valid).sum() / valid.sum().clamp_min(1)
