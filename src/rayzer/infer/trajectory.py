"""Novel-view camera paths from predicted cameras: a smooth path through them in capture order
and a spiral around the canonical view.

Predicted cameras carry no depth, so the spiral's scale comes from the cameras themselves: its
radius is half the median distance of the cameras from the canonical one, and it looks at the
point where the optical axes converge (least squares) when they do (object-centric captures),
else at a fixed multiple of the camera spread (forward-facing captures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from rayzer.geometry import interpolate_cameras, spiral_path
from rayzer.infer.predict import Cameras

MIN_AXIS_SPREAD = 1e-3  # smallest eigenvalue of mean(I - z z^T) for converging optical axes
FOCUS_PER_SPREAD = 5.0  # fallback focus depth in units of the camera spread
DEFAULT_SCALE = 1.0  # focus depth when all cameras coincide (untrained model)


@dataclass
class SpiralInfo:
    radius: float
    focus_depth: float
    focus_from_axes: bool


def axes_convergence(c2w: Tensor) -> tuple[Tensor, float]:
    """Point closest (least squares) to all optical axes (``z`` columns through the centres).

    Returns:
        ``(point (3,), conditioning)``: conditioning is the smallest eigenvalue of
        ``mean_i(I - z_i z_i^T)``; near 0 when the axes are (nearly) parallel.
    """
    c2w = c2w.double()
    z = c2w[:, :3, 2]
    c = c2w[:, :3, 3]
    P = torch.eye(3, dtype=c2w.dtype) - z[:, :, None] * z[:, None, :]  # (V, 3, 3) projectors
    A = P.mean(0)
    b = (P @ c[:, :, None]).mean(0)
    cond = float(torch.linalg.eigvalsh(A)[0])
    point = torch.linalg.lstsq(A, b).solution[:, 0]
    return point, cond


def spiral_scale(c2w: Tensor, canonical: int) -> SpiralInfo:
    """Radius and focus depth of the spiral around camera ``canonical`` (see module doc)."""
    ref = c2w[canonical].double()
    others = [i for i in range(c2w.shape[0]) if i != canonical]
    dist = (
        (c2w[others, :3, 3].double() - ref[:3, 3]).norm(dim=-1).median().item() if others else 0.0
    )
    focus, from_axes = None, False
    if len(others) >= 1 and dist > 1e-8:
        point, cond = axes_convergence(c2w)
        depth = float((point - ref[:3, 3]) @ ref[:3, 2])
        if cond > MIN_AXIS_SPREAD and math.isfinite(depth) and 0 < depth < 1e3 * dist:
            focus, from_axes = depth, True
    if focus is None:
        focus = FOCUS_PER_SPREAD * dist if dist > 1e-8 else DEFAULT_SCALE
    radius = 0.5 * dist if dist > 1e-8 else 0.05 * focus
    return SpiralInfo(radius=min(radius, 0.5 * focus), focus_depth=focus, focus_from_axes=from_axes)


def path_through(cameras: Cameras, num: int) -> Cameras:
    """``num`` cameras along a smooth path through the views in capture order (slerp of
    rotations, linear centres and intrinsics)."""
    c2w, K = interpolate_cameras(cameras.c2w, cameras.K, num, closed=False)
    return Cameras(c2w, K, cameras.height, cameras.width)


def spiral_around(cameras: Cameras, num: int, rotations: float = 1.0) -> tuple[Cameras, SpiralInfo]:
    """``num`` cameras on a planar spiral (a circle for one rotation) around the canonical view,
    all looking at its focus point; intrinsics of the canonical view."""
    canonical = cameras.canonical if cameras.canonical is not None else len(cameras) // 2
    info = spiral_scale(cameras.c2w, canonical)
    c2w = spiral_path(
        cameras.c2w[canonical].double(),
        info.radius,
        num,
        rotations=rotations,
        focus_depth=info.focus_depth,
    ).float()
    K = cameras.K[canonical].float().expand(num, 4).clone()
    return Cameras(c2w, K, cameras.height, cameras.width), info
