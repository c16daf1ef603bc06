"""EWA projection of 3D Gaussians to 2D screen-space Gaussians, in plain PyTorch.

Doing the projection here (and not inside a CUDA kernel) is what gives camera pose *and* all four
intrinsics gradients through autograd, whichever backend composites the 2D Gaussians.

Conventions (gsplat's pinhole model, so the gsplat backend and the torch backend agree):

* ``c2w (B, V, 4, 4)`` OpenCV camera-to-world; ``K (B, V, 4)`` = pixel ``(fx, fy, cx, cy)`` with
  the principal point measured from the image corner (pixel centres at ``+0.5``).
* 3D covariance ``Σ = R S Sᵀ Rᵀ`` from quaternions ``(w, x, y, z)`` (normalised) and scales.
* 2D covariance ``J W Σ Wᵀ Jᵀ + 0.3 I`` (the low-pass dilation), with the Jacobian ``J`` taken at
  a camera point whose ``x/z`` and ``y/z`` are clamped to the frustum widened by 30 % of the half
  field of view on each side (gsplat's convention; it keeps Gaussians far outside the view from
  producing huge screen footprints). The 2D mean uses the unclamped point.
* A Gaussian is *visible* when ``near < z < far`` and the dilated covariance has ``det > 0``;
  invisible ones get radius 0 and finite dummy values (never NaN, also in the backward pass).
* Screen extent: gsplat's opacity-aware box. Where ``opacity * exp(-power) >= 1/255`` the power is
  at most ``log(255 * opacity)``, so the box half-widths ``sqrt(2 log(255 o) Σ_ii)`` (capped at
  3.33 σ) contain every pixel that can receive a contribution: binning to tiles with it changes
  nothing in the image. ``radii`` are those half-widths rounded up (gsplat's integer radii).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rayzer.geometry import quaternion_to_matrix, se3_inverse

__all__ = ["ALPHA_THRESHOLD", "EPS2D", "MAX_EXTEND", "Projection", "project_gaussians"]

EPS2D = 0.3  # px², low-pass dilation of the 2D covariance (gsplat and 3DGS)
ALPHA_THRESHOLD = 1.0 / 255.0  # contributions with a smaller alpha are skipped
MAX_EXTEND = 3.33  # σ, the largest screen extent (gsplat)


@dataclass
class Projection:
    """Screen-space Gaussians for ``I`` images (leading dims ``(B, V)`` or flattened).

    Attributes:
        means2d: ``(..., N, 2)`` pixel coordinates ``(x, y)``.
        conics: ``(..., N, 3)`` upper triangle ``(a, b, c)`` of the inverse 2D covariance, so
            ``power = 0.5 (a dx² + c dy²) + b dx dy``.
        depths: ``(..., N)`` camera-space z.
        radii: ``(..., N, 2)`` int32 screen half-extents in px (0 = culled), gsplat's convention.
        extents: ``(..., N, 2)`` float half-extents used for tile binning (0 = culled); no grad.
        cov2d: ``(..., N, 3)`` dilated 2D covariance ``(xx, xy, yy)``.
    """

    means2d: torch.Tensor
    conics: torch.Tensor
    depths: torch.Tensor
    radii: torch.Tensor
    extents: torch.Tensor
    cov2d: torch.Tensor

    @property
    def visible(self) -> torch.Tensor:
        """``(..., N)`` bool: the Gaussian can touch at least one pixel."""
        return (self.radii > 0).all(-1)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """World covariances ``(..., 3, 3) = R diag(s²) Rᵀ`` from ``quats (..., 4)`` wxyz and ``scales (..., 3)``."""
    M = quaternion_to_matrix(quats) * scales[..., None, :]
    return M @ M.transpose(-1, -2)


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    c2w: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    *,
    opacities: torch.Tensor | None = None,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = EPS2D,
) -> Projection:
    """Project ``(B, N)`` Gaussians into ``(B, V)`` cameras.

    Args:
        means: ``(B, N, 3)`` world positions.
        quats: ``(B, N, 4)`` rotations ``(w, x, y, z)``, any norm.
        scales: ``(B, N, 3)`` standard deviations along the rotated axes (world units).
        c2w: ``(B, V, 4, 4)`` OpenCV camera-to-world.
        K: ``(B, V, 4)`` pixel intrinsics ``(fx, fy, cx, cy)``.
        width, height: image size in pixels (the clamping margin and the culling use it).
        opacities: ``(B, N)`` in [0, 1] or ``None``. With opacities the screen extent is
            gsplat's opacity-aware box and Gaussians with opacity < 1/255 are culled; without,
            the extent is 3.33 σ (gsplat's PyTorch reference ``_fully_fused_projection``).
        near, far: camera-z range of visible Gaussians (strict inequalities).
        eps2d: dilation added to the diagonal of the 2D covariance.

    Returns:
        :class:`Projection` with leading dims ``(B, V)``.
    """
    w2c = se3_inverse(c2w)  # (B, V, 4, 4)
    R = w2c[..., :3, :3]
    t = w2c[..., :3, 3]
    means_c = torch.einsum("bvij,bnj->bvni", R, means) + t[:, :, None, :]  # (B, V, N, 3)
    cov_w = covariance_3d(quats, scales)  # (B, N, 3, 3)
    cov_c = torch.einsum("bvij,bnjk,bvlk->bvnil", R, cov_w, R)  # (B, V, N, 3, 3)

    x, y, z = means_c.unbind(-1)
    valid = (z > near) & (z < far)
    # Invisible Gaussians get z = 1 before any division, so neither the forward values nor the
    # backward pass (where 0 * inf would be NaN) see a zero or negative depth.
    z_safe = torch.where(valid, z, torch.ones_like(z))
    fx, fy, cx, cy = (k[:, :, None] for k in K.unbind(-1))  # (B, V, 1)

    # Jacobian at the clamped point (gsplat: the frustum plus 30 % of the half field of view).
    margin_x = 0.3 * (0.5 * width / fx)
    margin_y = 0.3 * (0.5 * height / fy)
    u = torch.clamp(x / z_safe, min=-(cx / fx + margin_x), max=(width - cx) / fx + margin_x)
    v = torch.clamp(y / z_safe, min=-(cy / fy + margin_y), max=(height - cy) / fy + margin_y)
    zero = torch.zeros_like(z)
    inv_z = 1.0 / z_safe
    J = torch.stack(
        (fx * inv_z, zero, -fx * u * inv_z, zero, fy * inv_z, -fy * v * inv_z), dim=-1
    ).reshape(*z.shape, 2, 3)
    cov2 = J @ cov_c @ J.transpose(-1, -2)  # (B, V, N, 2, 2)
    sxx = cov2[..., 0, 0] + eps2d
    sxy = 0.5 * (cov2[..., 0, 1] + cov2[..., 1, 0])
    syy = cov2[..., 1, 1] + eps2d
    det = sxx * syy - sxy * sxy
    valid = valid & (det > 0)
    det_safe = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack((syy / det_safe, -sxy / det_safe, sxx / det_safe), dim=-1)
    means2d = torch.stack((fx * x * inv_z + cx, fy * y * inv_z + cy), dim=-1)

    with torch.no_grad():
        if opacities is None:
            extend = torch.full_like(z, MAX_EXTEND)
        else:
            o = opacities[:, None, :].expand_as(z)
            valid = valid & (o >= ALPHA_THRESHOLD)
            extend = torch.sqrt(2.0 * torch.log(o.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
            extend = extend.clamp_max(MAX_EXTEND)
        sd = torch.stack((sxx, syy), dim=-1).clamp_min(0).sqrt()
        extents = extend[..., None] * sd
        radii = torch.ceil(extents)
        m = means2d.detach()
        inside = (
            (m[..., 0] + radii[..., 0] > 0)
            & (m[..., 0] - radii[..., 0] < width)
            & (m[..., 1] + radii[..., 1] > 0)
            & (m[..., 1] - radii[..., 1] < height)
        )
        keep = (valid & inside & (radii > 0).all(-1))[..., None]
        extents = torch.where(keep, extents, torch.zeros_like(extents))
        radii = torch.where(keep, radii, torch.zeros_like(radii)).to(torch.int32)
    return Projection(
        means2d=means2d,
        conics=conics,
        depths=z,
        radii=radii,
        extents=extents,
        cov2d=torch.stack((sxx, sxy, syy), dim=-1),
    )
