"""Shared helpers for the data tests: a depth-based photometric warp check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from rayzer.geometry import axis_angle_to_matrix, project_points, unproject_depth


@dataclass
class WarpResult:
    median_error: float  # median |colour_i - colour_j(warped)| over co-visible pixels (mean of RGB)
    covisible: float  # fraction of frame i's pixels that are co-visible in frame j


def warp_error(
    images: torch.Tensor,
    depth: torch.Tensor,
    c2w: torch.Tensor,
    K: torch.Tensor,
    i: int,
    j: int,
    c2w_j: torch.Tensor | None = None,
    rel_tol: float = 0.03,
) -> WarpResult:
    """Warp frame ``i`` into frame ``j`` with ``i``'s depth and the cameras; compare colours.

    Every pixel of frame i with finite depth is unprojected (``rayzer.geometry.unproject_depth``),
    projected into camera j (``project_points``; ``c2w_j`` overrides camera j for negative controls),
    kept if it lands inside image j in front of the camera and is not occluded there (its depth
    agrees with frame j's stored depth at that pixel within ``rel_tol``), and frame j's colour is
    sampled bilinearly at the projected position.
    """
    _, _, H, W = images.shape
    cam_j = c2w[j] if c2w_j is None else c2w_j
    valid = torch.isfinite(depth[i]).reshape(-1)
    pts = unproject_depth(torch.nan_to_num(depth[i], posinf=0.0), c2w[i], K[i]).reshape(-1, 3)
    uv, z = project_points(pts[valid], cam_j, K[j])
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    col = uv[:, 0].floor().long().clamp(0, W - 1)
    row = uv[:, 1].floor().long().clamp(0, H - 1)
    d_j = depth[j][row, col]
    visible = inside & torch.isfinite(d_j) & ((z - d_j).abs() <= rel_tol * d_j)
    grid = torch.stack([uv[:, 0] / W * 2 - 1, uv[:, 1] / H * 2 - 1], -1)[None, None]
    sampled = F.grid_sample(images[j][None], grid, align_corners=False)[0, :, 0].T
    source = images[i].permute(1, 2, 0).reshape(-1, 3)[valid]
    err = (sampled - source).abs().mean(-1)[visible]
    median = err.median().item() if err.numel() else float("inf")
    return WarpResult(median, visible.sum().item() / (H * W))


def perturb_rotation(c2w: torch.Tensor, degrees: float) -> torch.Tensor:
    """``c2w`` with its rotation composed with a ``degrees`` rotation about the (1,1,1) axis."""
    axis = torch.ones(3, dtype=c2w.dtype) / 3**0.5
    out = c2w.clone()
    out[:3, :3] = c2w[:3, :3] @ axis_angle_to_matrix(axis * torch.pi * degrees / 180)
    return out


@pytest.fixture
def warp() -> Callable[..., WarpResult]:
    return warp_error


@pytest.fixture
def perturb() -> Callable[..., torch.Tensor]:
    return perturb_rotation
