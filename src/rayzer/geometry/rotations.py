"""Rotation representations: 6-D (Zhou et al.), rotation matrices, quaternions, axis-angle.

Conventions
-----------
* Rotation matrices act on column vectors: ``x' = R @ x``.
* 6-D representation = the first two COLUMNS of ``R`` concatenated:
  ``rot6d = cat(R[..., :, 0], R[..., :, 1])``; mapped back to SO(3) by Gram-Schmidt.
* Quaternions are ``(w, x, y, z)`` (scalar first) and are only meant for I/O and interpolation;
  :func:`matrix_to_quaternion` returns the representative with ``w >= 0``.
* Axis-angle is the rotation vector ``angle * unit_axis`` (radians).

Every function is batched over leading dims ``...``, differentiable, and device/dtype agnostic.

Why not ``roma`` / ``pytorch3d``: the few conversions we need are small, and writing them here
keeps the core package dependency-free (roma is not installed on our machines, pytorch3d has no
CPU wheels for current torch). Each function is covered by round-trip / invariant tests in
``tests/geometry/test_rotations.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import check_floating, check_positive_int, check_trailing

__all__ = [
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "quaternion_multiply",
    "quaternion_to_matrix",
    "random_rotation",
    "rot6d_to_matrix",
    "rotation_angle",
]


def rot6d_to_matrix(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Map a 6-D rotation representation to a rotation matrix by Gram-Schmidt.

    Args:
        x: ``(..., 6)`` = ``[a1 (3), a2 (3)]``, the (unnormalised) first and second columns.
        eps: lower bound on vector norms, so degenerate inputs (zero or parallel columns)
            give finite values and gradients instead of NaN.

    Returns:
        ``(..., 3, 3)`` rotation with columns ``b1 = a1/|a1|``, ``b2`` = normalised part of ``a2``
        orthogonal to ``b1``, ``b3 = b1 x b2`` (so ``det = +1``).
    """
    check_trailing(x, "x", (6,))
    check_floating(x, "x")
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = F.normalize(a1, dim=-1, eps=eps)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=eps)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """Return the 6-D representation ``cat(R[..., :, 0], R[..., :, 1])`` of ``R (..., 3, 3)``."""
    check_trailing(R, "R", (3, 3))
    return torch.cat((R[..., :, 0], R[..., :, 1]), dim=-1)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Convert quaternions ``(..., 4)`` in ``(w, x, y, z)`` order to rotation matrices ``(..., 3, 3)``.

    The quaternion need not be unit-norm: the standard formula is divided by ``|q|^2``, which is
    the same as normalising first (and keeps ``q`` and ``-q`` mapping to the same matrix).
    """
    check_trailing(q, "q", (4,))
    check_floating(q, "q")
    w, x, y, z = q.unbind(-1)
    two_s = 2.0 / (q * q).sum(-1).clamp_min(torch.finfo(q.dtype).tiny)
    rows = (
        1 - two_s * (y * y + z * z),
        two_s * (x * y - z * w),
        two_s * (x * z + y * w),
        two_s * (x * y + z * w),
        1 - two_s * (x * x + z * z),
        two_s * (y * z - x * w),
        two_s * (x * z - y * w),
        two_s * (y * z + x * w),
        1 - two_s * (x * x + y * y),
    )
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Convert rotation matrices ``(..., 3, 3)`` to unit quaternions ``(..., 4)`` = ``(w, x, y, z)``, ``w >= 0``.

    Branch-free Shepperd method: the four quantities ``4w^2, 4x^2, 4y^2, 4z^2`` are read off the
    diagonal; each gives one candidate quaternion by dividing the off-diagonal sums/differences by
    its square root, and the candidate with the LARGEST divisor is selected. Its divisor is
    always ``>= 1`` (they sum to 4), so the result is accurate everywhere, including near-180°
    rotations where the classic trace formula (divide by ``4w``) breaks down. Denominators of the
    unselected candidates are clamped so their (discarded) gradients stay finite.
    """
    check_trailing(R, "R", (3, 3))
    check_floating(R, "R")
    m = R.reshape(*R.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    # 4w^2, 4x^2, 4y^2, 4z^2 for a proper rotation
    sq = torch.stack(
        (
            1 + m00 + m11 + m22,
            1 + m00 - m11 - m22,
            1 - m00 + m11 - m22,
            1 - m00 - m11 + m22,
        ),
        dim=-1,
    )
    # Rows: the 4w*q, 4x*q, 4y*q, 4z*q vectors (each proportional to q).
    cand = torch.stack(
        (
            torch.stack((sq[..., 0], m21 - m12, m02 - m20, m10 - m01), dim=-1),
            torch.stack((m21 - m12, sq[..., 1], m10 + m01, m02 + m20), dim=-1),
            torch.stack((m02 - m20, m10 + m01, sq[..., 2], m12 + m21), dim=-1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, sq[..., 3]), dim=-1),
        ),
        dim=-2,
    )
    # The selected divisor is >= 1, so clamping at 0.25 only affects discarded candidates.
    cand = cand / (2.0 * sq.clamp_min(0.25).sqrt()[..., None])
    best = sq.argmax(dim=-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = torch.where(q[..., :1] < 0, -q, q)
    # Renormalise: removes drift when R is only approximately orthonormal.
    return F.normalize(q, dim=-1)


def quaternion_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product ``a * b`` of ``(w, x, y, z)`` quaternions (broadcast over leading dims).

    Matches matrix composition: ``quaternion_to_matrix(a * b) = quaternion_to_matrix(a) @ quaternion_to_matrix(b)``.
    """
    check_trailing(a, "a", (4,))
    check_trailing(b, "b", (4,))
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        (
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ),
        dim=-1,
    )


def _skew_vector(R: torch.Tensor) -> torch.Tensor:
    """``(R - R^T)^vee = 2 sin(angle) * axis`` for ``R (..., 3, 3)``; returns ``(..., 3)``."""
    return torch.stack(
        (R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]),
        dim=-1,
    )


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (radians, in ``[0, pi]``) of rotation ``R (..., 3, 3)`` from the identity.

    Computed as ``atan2(|vee(R - R^T)|, trace(R) - 1)`` (= ``atan2(2 sin a, 2 cos a)``) rather than
    ``acos((trace - 1) / 2)``: acos loses half the digits near 0 and near pi and its derivative is
    infinite there, while atan2 is accurate over the whole range. The gradient at exactly the
    identity is 0 (the subgradient of ``|angle|`` at 0).
    """
    check_trailing(R, "R", (3, 3))
    check_floating(R, "R")
    sin2 = torch.linalg.vector_norm(_skew_vector(R), dim=-1)  # 2 sin(angle) >= 0
    cos2 = R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0  # 2 cos(angle)
    return torch.atan2(sin2, cos2)


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: rotation vector ``(..., 3)`` (radians * unit axis) -> ``(..., 3, 3)``.

    Uses Taylor expansions of ``sin(a)/a`` and ``(1 - cos a)/a^2`` for small angles, so it is
    exact (and smoothly differentiable) at zero.
    """
    check_trailing(rotvec, "rotvec", (3,))
    check_floating(rotvec, "rotvec")
    a2 = (rotvec * rotvec).sum(-1)
    small = a2 < 1e-6
    a2_safe = torch.where(small, torch.ones_like(a2), a2)
    a_safe = a2_safe.sqrt()
    sinc = torch.where(small, 1 - a2 / 6 + a2 * a2 / 120, torch.sin(a_safe) / a_safe)
    cosc = torch.where(small, 0.5 - a2 / 24 + a2 * a2 / 720, (1 - torch.cos(a_safe)) / a2_safe)
    x, y, z = rotvec.unbind(-1)
    zero = torch.zeros_like(x)
    K = torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*rotvec.shape, 3)
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + sinc[..., None, None] * K + cosc[..., None, None] * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Logarithm map: ``R (..., 3, 3)`` -> rotation vector ``(..., 3)`` with angle in ``[0, pi]``.

    Goes through :func:`matrix_to_quaternion` (robust near pi): ``angle = 2 atan2(|v|, w)`` and
    ``rotvec = v * angle / |v|``, with the small-angle limit ``angle / |v| -> 2 / w``.
    """
    q = matrix_to_quaternion(R)
    w, v = q[..., :1], q[..., 1:]
    n = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    small = n < 1e-6
    n_safe = torch.where(small, torch.ones_like(n), n)
    ratio = torch.where(small, 2.0 / w.clamp_min(0.5), 2.0 * torch.atan2(n_safe, w) / n_safe)
    return v * ratio


def random_rotation(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample ``n`` rotations uniformly (Haar measure) on SO(3); returns ``(n, 3, 3)``.

    A normalised 4-D standard Gaussian is uniform on the unit quaternion sphere, which double
    covers SO(3) uniformly. Random numbers are drawn on the generator's device and then moved.
    """
    n = check_positive_int(n, "n")
    gen_device = generator.device if generator is not None else device
    q = torch.randn(n, 4, generator=generator, dtype=dtype, device=gen_device)
    return quaternion_to_matrix(F.normalize(q, dim=-1)).to(device=device)
