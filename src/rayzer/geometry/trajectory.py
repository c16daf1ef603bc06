"""Camera trajectories: rotation slerp, keyframe interpolation, orbits and LLFF-style spirals.

All cameras are OpenCV camera-to-world 4x4 matrices (x right, y down, z forward).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import check_floating, check_positive_int, check_trailing
from rayzer.geometry.rotations import matrix_to_quaternion, quaternion_to_matrix
from rayzer.geometry.se3 import look_at, make_c2w

__all__ = [
    "interpolate_cameras",
    "orbit_path",
    "quaternion_slerp",
    "slerp",
    "spiral_path",
]


def _as_times(t: torch.Tensor | Sequence[float] | float, like: torch.Tensor) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
    if t.ndim > 1:
        raise ValueError(f"t: expected a scalar or 1-D tensor of times, got shape {tuple(t.shape)}")
    return t.reshape(-1)


def _quaternion_slerp_pointwise(
    q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """Shorter-arc slerp with ``q0, q1 (..., 4)`` and ``t`` broadcastable to ``(...,)``."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)  # q and -q are the same rotation: take the shorter arc
    dot = dot.abs().clamp(max=1.0)
    # Angle between the quaternions via atan2 of the orthogonal component (accurate near 0).
    sin_o = torch.linalg.vector_norm(q1 - dot * q0, dim=-1, keepdim=True)
    omega = torch.atan2(sin_o, dot)
    tt = t[..., None]
    small = sin_o < 1e-7
    sin_safe = torch.where(small, torch.ones_like(sin_o), torch.sin(omega))
    w0 = torch.where(small, 1.0 - tt, torch.sin((1.0 - tt) * omega) / sin_safe)
    w1 = torch.where(small, tt, torch.sin(tt * omega) / sin_safe)
    return F.normalize(w0 * q0 + w1 * q1, dim=-1)


def quaternion_slerp(
    q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor | Sequence[float] | float
) -> torch.Tensor:
    """Spherical linear interpolation of unit quaternions along the SHORTER arc.

    ``q`` and ``-q`` are the same rotation, so when ``q0 . q1 < 0`` the second endpoint is
    negated first; otherwise slerp would take the long way round (up to a 360° detour).

    Args:
        q0, q1: ``(..., 4)`` unit quaternions ``(w, x, y, z)`` (leading dims broadcast).
        t: ``(T,)`` times (0 -> ``q0``, 1 -> ``q1``; values outside extrapolate).

    Returns:
        ``(..., T, 4)`` unit quaternions; rotations at ``t`` of constant angular speed.
    """
    check_trailing(q0, "q0", (4,))
    check_trailing(q1, "q1", (4,))
    check_floating(q0, "q0")
    t = _as_times(t, q0)
    return _quaternion_slerp_pointwise(q0[..., None, :], q1[..., None, :], t)


def _slerp_pointwise(R0: torch.Tensor, R1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``R0 exp(t log(R0^T R1))`` with ``R0, R1 (..., 3, 3)`` and ``t`` broadcastable to ``(...,)``."""
    R0, R1 = torch.broadcast_tensors(R0, R1)
    q_rel = matrix_to_quaternion(R0.transpose(-1, -2) @ R1)  # w >= 0: shortest path
    identity = torch.zeros_like(q_rel)
    identity[..., 0] = 1.0
    R = R0 @ quaternion_to_matrix(_quaternion_slerp_pointwise(identity, q_rel, t))
    tt = t[..., None, None]
    R = torch.where(tt == 0, R0, R)
    return torch.where(tt == 1, R1, R)


def slerp(
    R0: torch.Tensor, R1: torch.Tensor, t: torch.Tensor | Sequence[float] | float
) -> torch.Tensor:
    """Geodesic interpolation of rotations ``R(t) = R0 exp(t log(R0^T R1))``.

    Constant angular speed along the shortest path (the relative quaternion is taken with
    ``w >= 0``, which resolves the antipodal sign). Endpoints are returned EXACTLY (``t == 0``
    gives ``R0``, ``t == 1`` gives ``R1``). At exactly 180° the shortest path is not unique; one
    of the two is returned.

    Args:
        R0, R1: ``(..., 3, 3)`` rotations (leading dims broadcast).
        t: ``(T,)`` times.

    Returns:
        ``(..., T, 3, 3)``.
    """
    check_trailing(R0, "R0", (3, 3))
    check_trailing(R1, "R1", (3, 3))
    check_floating(R0, "R0")
    t = _as_times(t, R0)
    return _slerp_pointwise(R0[..., None, :, :], R1[..., None, :, :], t)


def interpolate_cameras(
    c2w: torch.Tensor,
    K: torch.Tensor | None,
    num: int,
    closed: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Smooth path through key cameras: piecewise slerp of rotations, linear centres and intrinsics.

    Key camera ``k`` sits at path parameter ``k``; the ``num`` samples are evenly spaced in the
    parameter over ``[0, V - 1]`` (open path, both ends included) or ``[0, V)`` (closed loop,
    returning to camera 0 after camera ``V - 1``; the start is not repeated). Hence with
    ``num = (V - 1) * m + 1`` (open) or ``num = V * m`` (closed) every ``m``-th sample is exactly a
    key camera.

    Args:
        c2w: ``(V, 4, 4)`` key cameras (camera-to-world).
        K: ``(V, 4)`` key intrinsics (any units; interpolated linearly) or None.
        num: number of output cameras.
        closed: loop back to the first camera.

    Returns:
        ``(num, 4, 4)`` cameras and ``(num, 4)`` intrinsics (None if ``K`` is None).
    """
    check_trailing(c2w, "c2w", (4, 4))
    check_floating(c2w, "c2w")
    if c2w.ndim != 3:
        raise ValueError(f"c2w: expected shape (V, 4, 4), got {tuple(c2w.shape)}")
    V = c2w.shape[0]
    if K is not None and tuple(K.shape) != (V, 4):
        raise ValueError(f"K: expected shape ({V}, 4) to match c2w, got {tuple(K.shape)}")
    num = check_positive_int(num, "num")
    if V == 1:
        return c2w.expand(num, 4, 4).clone(), None if K is None else K.expand(num, 4).clone()

    segments = V if closed else V - 1
    # Path parameter in float64 and snapped to integers, so samples meant to hit a key camera do.
    if closed:
        s = torch.arange(num, dtype=torch.float64) * (segments / num)
    else:
        s = torch.linspace(0.0, float(segments), num, dtype=torch.float64)
    s = torch.where((s - s.round()).abs() < 1e-9, s.round(), s)
    seg = s.floor().clamp(max=segments - 1)
    frac = (s - seg).to(device=c2w.device, dtype=c2w.dtype)
    seg = seg.long().to(c2w.device)
    nxt = (seg + 1) % V

    R0, R1 = c2w[seg, :3, :3], c2w[nxt, :3, :3]
    R = _slerp_pointwise(R0, R1, frac)  # (num, 3, 3): each sample on its own segment
    f = frac[:, None]
    centres = (1 - f) * c2w[seg, :3, 3] + f * c2w[nxt, :3, 3]
    centres = torch.where(f == 1, c2w[nxt, :3, 3], centres)
    out_K = None
    if K is not None:
        out_K = (1 - f) * K[seg] + f * K[nxt]
        out_K = torch.where(f == 1, K[nxt], out_K)
    return make_c2w(R, centres), out_K


def _basis_perpendicular(up: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two unit vectors ``e1, e2`` with ``(e1, e2, up)`` right-handed orthonormal.

    ``e1`` is world x projected off ``up`` (world y if ``up`` is along x), so for ``up = +z`` the
    azimuth is measured from +x towards +y.
    """
    ex = torch.tensor([1.0, 0.0, 0.0], dtype=up.dtype, device=up.device)
    ey = torch.tensor([0.0, 1.0, 0.0], dtype=up.dtype, device=up.device)
    ref = ex if abs(float(up[0])) < 0.9 else ey
    e1 = F.normalize(ref - (ref @ up) * up, dim=-1)
    e2 = torch.linalg.cross(up, e1, dim=-1)
    return e1, e2


def orbit_path(
    center: torch.Tensor | Sequence[float],
    radius: float,
    elevation_deg: float,
    num: int,
    up: torch.Tensor | Sequence[float] = (0.0, 0.0, 1.0),
    start_azimuth_deg: float = 0.0,
    arc_deg: float = 360.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Cameras on a circle around ``center``, all looking at it: ``(num, 4, 4)`` c2w.

    Camera ``k`` sits at azimuth ``start + k * step`` (degrees, counter-clockwise about ``up``,
    0 = world +x projected off ``up``) and elevation ``elevation_deg`` above the plane orthogonal to
    ``up``, at distance ``radius`` from ``center``. A full circle (``arc_deg`` a multiple of 360)
    does not repeat its first camera (``step = arc / num``); a partial arc includes both ends
    (``step = arc / (num - 1)``). The image "up" (camera ``-y``) is aligned with ``up``.

    ``dtype`` / ``device`` default to those of ``center`` if it is a tensor, else float32 / CPU.
    """
    num = check_positive_int(num, "num")
    if not radius > 0:
        raise ValueError(f"radius: expected a positive number, got {radius!r}")
    like = center if isinstance(center, torch.Tensor) else None
    dtype = dtype or (like.dtype if like is not None else torch.float32)
    device = device or (like.device if like is not None else None)
    center = torch.as_tensor(center, dtype=dtype, device=device)
    up = F.normalize(torch.as_tensor(up, dtype=dtype, device=device), dim=-1)
    check_trailing(center, "center", (3,))
    check_trailing(up, "up", (3,))
    e1, e2 = _basis_perpendicular(up)

    full = math.isclose(arc_deg % 360.0, 0.0, abs_tol=1e-9) and arc_deg != 0
    step = arc_deg / num if (full or num == 1) else arc_deg / (num - 1)
    az = torch.deg2rad(
        start_azimuth_deg + step * torch.arange(num, dtype=torch.float64, device=device)
    ).to(dtype)
    el = math.radians(elevation_deg)
    offset = (
        math.cos(el) * (torch.cos(az)[:, None] * e1 + torch.sin(az)[:, None] * e2)
        + math.sin(el) * up
    )
    eye = center + radius * offset
    return look_at(eye, center.expand_as(eye), up.expand_as(eye))


def spiral_path(
    c2w_ref: torch.Tensor,
    radius: float | Sequence[float],
    num: int,
    rotations: float = 2.0,
    focus_depth: float = 1.0,
    z_rate: float = 0.5,
) -> torch.Tensor:
    """LLFF-style forward-facing spiral around a reference camera: ``(num, 4, 4)`` c2w.

    In the reference camera frame, camera ``k`` (angle ``a = 2 pi rotations k / num``) sits at
    ``(rx cos a, ry sin a, rz sin(z_rate a))`` and looks at the focus point ``(0, 0, focus_depth)``
    on the reference optical axis, with its image "up" aligned with the reference camera's
    (``-y``). The first camera is at ``(rx, 0, 0)``.

    Args:
        c2w_ref: ``(4, 4)`` reference camera-to-world.
        radius: ``r`` or per-axis ``(rx, ry, rz)`` in world units (``rz`` defaults to 0 for a
            scalar, i.e. a planar spiral).
        num: number of cameras.
        rotations: number of turns.
        focus_depth: depth (along the reference z axis) of the point all cameras look at.
        z_rate: angular rate of the in/out (z) oscillation relative to the spiral.
    """
    check_trailing(c2w_ref, "c2w_ref", (4, 4))
    check_floating(c2w_ref, "c2w_ref")
    if c2w_ref.ndim != 2:
        raise ValueError(f"c2w_ref: expected shape (4, 4), got {tuple(c2w_ref.shape)}")
    num = check_positive_int(num, "num")
    if not focus_depth > 0:
        raise ValueError(f"focus_depth: expected a positive depth, got {focus_depth!r}")
    radii = [float(radius), float(radius), 0.0] if isinstance(radius, int | float) else list(radius)
    if len(radii) != 3:
        raise ValueError(f"radius: expected a number or (rx, ry, rz), got {radius!r}")
    dtype, device = c2w_ref.dtype, c2w_ref.device
    a = torch.arange(num, dtype=torch.float64, device=device) * (2 * math.pi * rotations / num)
    offsets_cam = torch.stack(
        (radii[0] * torch.cos(a), radii[1] * torch.sin(a), radii[2] * torch.sin(z_rate * a)), -1
    ).to(dtype)
    R_ref, t_ref = c2w_ref[:3, :3], c2w_ref[:3, 3]
    eye = t_ref + offsets_cam @ R_ref.T
    focus = t_ref + focus_depth * R_ref[:, 2]
    up = -R_ref[:, 1]
    return look_at(eye, focus.expand_as(eye), up.expand_as(eye))
