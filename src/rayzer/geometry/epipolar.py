"""Epipolar geometry of matched pixels: fundamental matrices, the Sampson error, and a
translation-free rotation cost, all differentiable in the poses and the intrinsics.

Conventions (:mod:`rayzer.geometry`): OpenCV camera-to-world ``c2w (..., 4, 4)``; pixel
intrinsics ``K_px (..., 4) = (fx, fy, cx, cy)`` with the principal point from the image corner, so
the centre of pixel ``(i, j)`` is ``(u, v) = (j + 0.5, i + 0.5)``; matched points ``uv (..., M, 2)``
in that same continuous pixel frame (OpenCV keypoints put pixel centres at integers: add 0.5).

For views a and b the relative pose is ``T_ab = inv(c2w_a) @ c2w_b = [R | t]`` (camera b's frame
to camera a's: ``X_a = R X_b + t``), the essential matrix ``E = [t]ₓ R`` and the fundamental
matrix ``F = K_a⁻ᵀ E K_b⁻¹``, so a correspondence ``(x_a, x_b)`` (homogeneous pixels) satisfies
``x_aᵀ F x_b = 0``.

The translation's length is unobservable from correspondences; only its direction matters, and
every quantity here is computed from ``t / sqrt(|t|² + eps²)``, which is the direction for
``|t| ≫ eps`` and goes smoothly to 0 for ``t → 0``. What happens at ``t = 0`` (e.g. cameras at
the identity, NAS3R's zero-initialised head): ``E = 0``; the Sampson error, a ratio that is
homogeneous of degree 0 in ``F``, has no value and no gradient there, so :func:`sampson_error`
returns 0 with zero gradient for such pairs (its denominator is clamped). No loss built from
``F`` alone can do better: any function of the direction of ``t`` is undefined at 0. The signal
that survives ``t = 0`` is the error at the *best* translation direction for the given rotation:
:func:`rotation_epipolar_cost` (Kneip & Lynen, "Direct optimization of frame-to-frame rotation",
ICCV 2013), the smallest eigenvalue of ``M(R) = Σ nᵢ nᵢᵀ``, ``nᵢ = f_a × R f_b`` (unit bearing
vectors), whose eigenvector is that direction (:func:`best_translation_direction`). It needs no
translation at all and is 0 at the true rotation for exact matches. The training loss,
:func:`epipolar_pair_loss`, uses that direction while the predicted translation is near 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import check_trailing
from rayzer.geometry.se3 import se3_inverse

__all__ = [
    "behind_cameras",
    "best_translation_direction",
    "epipolar_pair_loss",
    "fundamental_matrix",
    "relative_pose",
    "rotation_epipolar_cost",
    "safe_direction",
    "sampson_error",
    "skew",
]

#: Below this translation length (in the cameras' own unit) the direction fades to 0.
DIRECTION_EPS = 1e-3


def relative_pose(c2w_a: torch.Tensor, c2w_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(R (..., 3, 3), t (..., 3))`` of ``inv(c2w_a) @ c2w_b``: camera b's frame to camera a's."""
    check_trailing(c2w_a, "c2w_a", (4, 4))
    check_trailing(c2w_b, "c2w_b", (4, 4))
    T = se3_inverse(c2w_a) @ c2w_b
    return T[..., :3, :3], T[..., :3, 3]


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices ``[v]ₓ (..., 3, 3)`` of ``v (..., 3)``: ``[v]ₓ w = v × w``."""
    check_trailing(v, "v", (3,))
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack(
        (torch.stack((o, -z, y), -1), torch.stack((z, o, -x), -1), torch.stack((-y, x, o), -1)),
        dim=-2,
    )


def safe_direction(t: torch.Tensor, eps: float = DIRECTION_EPS) -> torch.Tensor:
    """``t / sqrt(|t|² + eps²)`` (..., 3): the unit direction for ``|t| ≫ eps``, smooth, 0 at 0."""
    return t / (t.square().sum(-1, keepdim=True) + eps * eps).sqrt()


def _inverse_K(K_px: torch.Tensor) -> torch.Tensor:
    """``K⁻¹ (..., 3, 3)`` of pixel intrinsics ``(fx, fy, cx, cy)``."""
    fx, fy, cx, cy = K_px.unbind(-1)
    o, one = torch.zeros_like(fx), torch.ones_like(fx)
    return torch.stack(
        (
            torch.stack((1 / fx, o, -cx / fx), -1),
            torch.stack((o, 1 / fy, -cy / fy), -1),
            torch.stack((o, o, one), -1),
        ),
        dim=-2,
    )


def fundamental_matrix(
    R: torch.Tensor,
    t: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    eps: float = DIRECTION_EPS,
) -> torch.Tensor:
    """``F = K_a⁻ᵀ [t̂]ₓ R K_b⁻¹ (..., 3, 3)`` with ``t̂ = safe_direction(t, eps)``.

    ``R (..., 3, 3)``, ``t (..., 3)``: :func:`relative_pose` of the pair; ``K_a``, ``K_b``
    ``(..., 4)`` pixel intrinsics. ``x_aᵀ F x_b = 0`` for homogeneous pixels of one 3D point.
    """
    E = skew(safe_direction(t, eps)) @ R
    return _inverse_K(K_a).transpose(-1, -2) @ E @ _inverse_K(K_b)


def _homogeneous(uv: torch.Tensor) -> torch.Tensor:
    return torch.cat((uv, torch.ones_like(uv[..., :1])), dim=-1)


def sampson_error(
    uv_a: torch.Tensor, uv_b: torch.Tensor, F_ab: torch.Tensor, tiny: float = 1e-20
) -> torch.Tensor:
    """First-order geometric (Sampson) error of matches under ``F_ab``: ``(..., M)`` in pixels².

    ``(x_aᵀ F x_b)² / ((F x_b)₁² + (F x_b)₂² + (Fᵀ x_a)₁² + (Fᵀ x_a)₂²)`` for ``uv_a``, ``uv_b``
    ``(..., M, 2)`` and ``F_ab (..., 3, 3)``; the squared distance (to first order) of the match
    from the nearest pair of points that satisfy the constraint exactly. Homogeneous of degree 0
    in ``F``; where ``F = 0`` (translation 0) the denominator is clamped to ``tiny`` and the
    error is 0 with zero gradient.
    """
    check_trailing(uv_a, "uv_a", (2,))
    check_trailing(uv_b, "uv_b", (2,))
    check_trailing(F_ab, "F_ab", (3, 3))
    xa, xb = _homogeneous(uv_a), _homogeneous(uv_b)
    Fxb = xb @ F_ab.transpose(-1, -2)  # (..., M, 3): rows F x_b
    Ftxa = xa @ F_ab  # (..., M, 3): rows Fᵀ x_a
    r = (xa * Fxb).sum(-1)
    den = Fxb[..., :2].square().sum(-1) + Ftxa[..., :2].square().sum(-1)
    return r.square() / den.clamp_min(tiny)


def _bearings(uv: torch.Tensor, K_px: torch.Tensor) -> torch.Tensor:
    """Unit camera-frame directions ``(..., M, 3)`` of pixels ``uv (..., M, 2)``."""
    f, c = K_px[..., None, :2], K_px[..., None, 2:]
    xy = (uv - c) / f
    return F.normalize(torch.cat((xy, torch.ones_like(xy[..., :1])), dim=-1), dim=-1)


def _plane_normal_moments(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    R: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    valid: torch.Tensor | None,
) -> torch.Tensor:
    """``Σᵢ wᵢ nᵢ nᵢᵀ / Σᵢ wᵢ (..., 3, 3)``, ``nᵢ = f_a,i × R f_b,i`` (arguments as in
    :func:`rotation_epipolar_cost`; 0 for a pair without valid matches)."""
    check_trailing(R, "R", (3, 3))
    n = torch.linalg.cross(_bearings(uv_a, K_a), _bearings(uv_b, K_b) @ R.transpose(-1, -2))
    w = torch.ones_like(n[..., 0]) if valid is None else valid.to(n.dtype)
    M = (n[..., :, None] * n[..., None, :] * w[..., None, None]).sum(-3)
    return M / w.sum(-1).clamp_min(1.0)[..., None, None]


def rotation_epipolar_cost(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    R: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Kneip–Lynen rotation cost ``(...)``: the smallest eigenvalue of ``Σᵢ wᵢ nᵢ nᵢᵀ / Σᵢ wᵢ``.

    ``nᵢ = f_a,i × R f_b,i`` with unit bearings ``f`` of ``uv_a``, ``uv_b`` ``(..., M, 2)``
    through ``K_a``, ``K_b`` ``(..., 4)``; ``R (..., 3, 3)`` maps camera b's frame to camera
    a's; ``w = valid (..., M)`` (all ones if None). For a unit translation direction ``d`` the
    epipolar residual of match i is ``d · nᵢ`` (the sine of the ray's angle to the epipolar
    plane, times the sine of the plane's angle to ``d``), so this is the mean squared residual
    (radians², roughly) at the best ``d`` for ``R``: 0 at the true rotation for exact matches,
    independent of the predicted translation. Pairs with no valid match give 0.
    """
    M = _plane_normal_moments(uv_a, uv_b, R, K_a, K_b, valid)
    return torch.linalg.eigvalsh(M)[..., 0].clamp_min(0.0)


def best_translation_direction(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    R: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """The unit translation direction ``(..., 3)`` (up to sign) that best explains the matches
    for rotation ``R``: the eigenvector of the smallest eigenvalue of the matrix of
    :func:`rotation_epipolar_cost` (arguments as there)."""
    M = _plane_normal_moments(uv_a, uv_b, R, K_a, K_b, valid)
    return torch.linalg.eigh(M)[1][..., :, 0]


def epipolar_pair_loss(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    valid: torch.Tensor,
    c2w_a: torch.Tensor,
    c2w_b: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    image_size: tuple[int, int],
    robust_px: float = 0.5,
    cheirality: bool = True,
    eps: float = DIRECTION_EPS,
) -> torch.Tensor:
    """Per-pair epipolar loss ``(...)`` of matches under predicted cameras, in image-size units.

    The robust mean Sampson error of the valid matches, ``ρ(s) = s / (1 + s / robust_px²)``
    (≈ s for small errors, at most ``robust_px²``, so a wrong match costs a bounded amount),
    divided by ``H · W`` (a squared distance as a fraction of the image). It is 0 at the true
    cameras for exact matches and moves the rotation, translation direction and focal.

    The translation direction used is ``d = t̂ + (1 − |t̂|²) · d*`` with ``t̂`` =
    :func:`safe_direction` of the predicted translation and ``d*`` the best direction for the
    predicted rotation (:func:`best_translation_direction`, detached; its sign towards ``t̂``, or
    while ``|t̂| < 1/2`` the one that puts more matches in front of both cameras): the
    predicted direction once ``|t| ≫ eps``, and ``d*`` as ``t → 0``. So at ``t = 0`` (cameras at
    the identity, NAS3R's zero-initialised head) the loss is the error of the best translation
    for the predicted rotation — finite, with gradients in the rotation, the focal and (towards
    ``d*``, scaled by ``1 / eps``) the translation — instead of the undefined Sampson error of
    ``E = 0``. Shrinking a translation whose direction is worse than ``d*`` lowers the loss, a
    pull that acts only within ``|t| ≲ eps`` of 0.

    With ``cheirality`` each match also costs ``robust_px² ×`` :func:`behind_cameras` (a point
    triangulated behind a camera costs as much as a wrong match): the epipolar error alone is
    the same for ``t`` and ``−t``.

    Args:
        uv_a, uv_b: ``(..., M, 2)`` matched pixels of views a and b.
        valid: ``(..., M)`` bool, which matches are real (padding is ignored).
        c2w_a, c2w_b: ``(..., 4, 4)``; K_a, K_b: ``(..., 4)`` pixel intrinsics.
        image_size: ``(H, W)`` of the images the pixels refer to.
        robust_px: the error scale (pixels) where the robust cost starts to saturate.
        cheirality: add the behind-the-cameras cost.
    """
    h, w = image_size
    R, t = relative_pose(c2w_a, c2w_b)
    t_hat = safe_direction(t, eps)
    with torch.no_grad():
        d_star = best_translation_direction(uv_a, uv_b, R, K_a, K_b, valid)
        d_star = d_star * _direction_sign(uv_a, uv_b, valid, R, t_hat, d_star, K_a, K_b)
    d = t_hat + (1 - t_hat.square().sum(-1, keepdim=True)) * d_star
    F_ab = _inverse_K(K_a).transpose(-1, -2) @ skew(d) @ R @ _inverse_K(K_b)
    s = sampson_error(uv_a, uv_b, F_ab)
    tau2 = robust_px * robust_px
    cost = s / (1 + s / tau2)
    if cheirality:
        cost = cost + tau2 * behind_cameras(uv_a, uv_b, R, d, K_a, K_b)
    wt = valid.to(cost.dtype)
    return (cost * wt).sum(-1) / wt.sum(-1).clamp_min(1.0) / (h * w)


def _direction_sign(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    valid: torch.Tensor,
    R: torch.Tensor,
    t_hat: torch.Tensor,
    d_star: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
) -> torch.Tensor:
    """±1 ``(..., 1)`` for ``d_star`` (whose sign the eigenvector leaves arbitrary) in
    :func:`epipolar_pair_loss`: towards ``t̂`` where ``|t̂| >= 1/2``, else the sign with fewer
    valid matches behind the cameras (at ``t = 0``, ``t̂`` says nothing). The threshold keeps
    ``d = t̂ + (1 − |t̂|²) d*`` away from 0: ``|d| >= 1 − |t̂|² − |t̂| > 1/4`` below it, and
    ``d · d* > 0`` above it."""
    towards_t = torch.where((d_star * t_hat).sum(-1, keepdim=True) < 0, -1.0, 1.0)
    w = valid.to(d_star.dtype)

    def behind(d: torch.Tensor) -> torch.Tensor:
        return (behind_cameras(uv_a, uv_b, R, d, K_a, K_b) * w).sum(-1, keepdim=True)

    in_front = torch.where(behind(-d_star) < behind(d_star), -1.0, 1.0)
    small = t_hat.square().sum(-1, keepdim=True) < 0.25
    return torch.where(small, in_front, towards_t).to(d_star.dtype)


def behind_cameras(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    R: torch.Tensor,
    d: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    tiny: float = 1e-12,
) -> torch.Tensor:
    """Soft cheirality violation ``(..., M)`` in [0, 1] of matches under ``R``, direction ``d``.

    The rays ``λ_a f_a`` and ``d + λ_b R f_b`` (unit bearings ``f``) meet, in the least-squares
    sense, at ``λ_a ∝ (d × g)·(f_a × g)`` and ``λ_b ∝ (d × f_a)·(f_a × g)`` (``g = R f_b``); a
    real point has both > 0. Returns the mean of ``relu(−cos)`` of the two angles behind those
    dot products: 0 when the point lies in front of both cameras, up to 1 behind both. The
    epipolar constraint cannot tell ``d`` from ``−d`` (nor a rotation from its "twisted pair");
    this can.
    """
    fa = _bearings(uv_a, K_a)
    g = _bearings(uv_b, K_b) @ R.transpose(-1, -2)
    d = d[..., None, :].expand_as(fa)
    n = torch.linalg.cross(fa, g)
    u_a = torch.linalg.cross(d, g)
    u_b = torch.linalg.cross(d, fa)
    nn = n.norm(dim=-1)
    cos_a = (u_a * n).sum(-1) / (u_a.norm(dim=-1) * nn + tiny)
    cos_b = (u_b * n).sum(-1) / (u_b.norm(dim=-1) * nn + tiny)
    return 0.5 * (torch.relu(-cos_a) + torch.relu(-cos_b))
