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
that survives ``t = 0`` is :func:`rotation_epipolar_cost` (Kneip & Lynen, "Direct optimization of
frame-to-frame rotation", ICCV 2013): the epipolar error with the *best* translation direction
for the given rotation, the smallest eigenvalue of ``M(R) = Σ nᵢ nᵢᵀ``, ``nᵢ = f_a × R f_b`` (unit
bearing vectors). It needs no translation at all, is 0 at the true rotation for exact matches,
and has a gradient in ``R`` and the intrinsics wherever the smallest eigenvalue is simple.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rayzer.geometry._checks import check_trailing
from rayzer.geometry.se3 import se3_inverse

__all__ = [
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
    check_trailing(R, "R", (3, 3))
    n = torch.linalg.cross(_bearings(uv_a, K_a), _bearings(uv_b, K_b) @ R.transpose(-1, -2))
    w = torch.ones_like(n[..., 0]) if valid is None else valid.to(n.dtype)
    M = (n[..., :, None] * n[..., None, :] * w[..., None, None]).sum(-3)
    M = M / w.sum(-1).clamp_min(1.0)[..., None, None]
    return torch.linalg.eigvalsh(M)[..., 0].clamp_min(0.0)


def epipolar_pair_loss(
    uv_a: torch.Tensor,
    uv_b: torch.Tensor,
    valid: torch.Tensor,
    c2w_a: torch.Tensor,
    c2w_b: torch.Tensor,
    K_a: torch.Tensor,
    K_b: torch.Tensor,
    image_size: tuple[int, int],
    eps: float = DIRECTION_EPS,
) -> torch.Tensor:
    """Per-pair epipolar loss ``(...)`` of matches under predicted cameras, in image-size units.

    Two parts, both 0 at the true cameras for exact matches:

    - the mean Sampson error of the valid matches (:func:`sampson_error`) divided by ``H · W``
      (a squared distance as a fraction of the image), weighted by ``|t̂|²`` (``t̂`` =
      :func:`safe_direction`): it moves the translation direction, rotation and focal, and fades
      out (value and gradient) as ``t → 0`` instead of being undefined there;
    - :func:`rotation_epipolar_cost` times ``(fx_a / W) · (fx_b / W)`` (detached: it converts
      radians² to the same image-fraction² scale without rewarding a smaller focal): it moves the
      rotation and focal whatever the translation, including at ``t = 0``.

    Args:
        uv_a, uv_b: ``(..., M, 2)`` matched pixels of views a and b.
        valid: ``(..., M)`` bool, which matches are real (padding is ignored).
        c2w_a, c2w_b: ``(..., 4, 4)``; K_a, K_b: ``(..., 4)`` pixel intrinsics.
        image_size: ``(H, W)`` of the images the pixels refer to.
    """
    h, w = image_size
    R, t = relative_pose(c2w_a, c2w_b)
    wt = valid.to(uv_a.dtype)
    count = wt.sum(-1).clamp_min(1.0)
    F_ab = fundamental_matrix(R, t, K_a, K_b, eps)
    sampson = (sampson_error(uv_a, uv_b, F_ab) * wt).sum(-1) / count / (h * w)
    fade = safe_direction(t, eps).square().sum(-1)
    scale = (K_a[..., 0] * K_b[..., 0]).detach() / (w * w)
    rot = rotation_epipolar_cost(uv_a, uv_b, R, K_a, K_b, valid) * scale
    return fade * sampson + rot
