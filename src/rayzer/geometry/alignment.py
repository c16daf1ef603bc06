"""Similarity alignment of point sets (Umeyama) and of camera trajectories.

Predicted cameras of a self-supervised model live in their own gauge (arbitrary global rotation,
translation and scale), so they are aligned to the ground truth before absolute comparisons or
visualisation. All solves run in float64 internally (SVD of a 3x3 cross-covariance is cheap, and
float32 loses digits on nearly-degenerate sets) and results are cast back to the input dtype.
"""

from __future__ import annotations

import torch

from rayzer.geometry._checks import check_floating, check_trailing
from rayzer.geometry.se3 import make_c2w

__all__ = ["align_cameras", "project_to_so3", "umeyama"]


def project_to_so3(M: torch.Tensor) -> torch.Tensor:
    """Closest rotation (Frobenius norm) to ``M (..., 3, 3)``: ``U diag(1, 1, det(U V^T)) V^T``.

    This is also the rotation ``R`` maximising ``trace(R^T M)`` (orthogonal Procrustes).
    """
    check_trailing(M, "M", (3, 3))
    U, _, Vh = torch.linalg.svd(M)
    d = torch.linalg.det(U @ Vh)
    ones = torch.ones_like(d)
    D = torch.diag_embed(torch.stack((ones, ones, torch.where(d < 0, -ones, ones)), dim=-1))
    return U @ D @ Vh


def umeyama(
    src: torch.Tensor, dst: torch.Tensor, with_scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least-squares similarity ``dst ≈ s R src + t`` (Umeyama, 1991).

    Args:
        src, dst: ``(..., N, 3)`` corresponding points (leading dims broadcast). The rotation is
            unique only when the centred ``src`` points span at least a plane (N >= 3, not
            collinear); otherwise an arbitrary minimiser is returned.
        with_scale: estimate ``s``; if False, ``s = 1`` (rigid alignment).

    Returns:
        ``s (...,)``, ``R (..., 3, 3)`` with ``det R = +1``, ``t (..., 3)`` in the input dtype,
        minimising ``sum_n |dst_n - (s R src_n + t)|^2``.
    """
    check_trailing(src, "src", (3,))
    check_trailing(dst, "dst", (3,))
    check_floating(src, "src")
    if src.shape[-2] != dst.shape[-2] or src.shape[-2] < 1:
        raise ValueError(
            f"src/dst: need the same number N >= 1 of points, got {tuple(src.shape)} and {tuple(dst.shape)}"
        )
    out_dtype = src.dtype
    src64, dst64 = src.double(), dst.double()
    mu_src = src64.mean(-2)
    mu_dst = dst64.mean(-2)
    src_c = src64 - mu_src[..., None, :]
    dst_c = dst64 - mu_dst[..., None, :]
    cov = dst_c.transpose(-1, -2) @ src_c / src.shape[-2]  # (..., 3, 3) = E[dst_c src_c^T]
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.linalg.det(U @ Vh)
    sign = torch.where(d < 0, -torch.ones_like(d), torch.ones_like(d))
    ones = torch.ones_like(sign)
    diag = torch.stack((ones, ones, sign), dim=-1)
    R = U @ torch.diag_embed(diag) @ Vh
    if with_scale:
        var_src = (src_c * src_c).sum(-1).mean(-1)
        s = (S * diag).sum(-1) / var_src.clamp_min(torch.finfo(torch.float64).tiny)
    else:
        s = torch.ones_like(sign)
    t = mu_dst - s[..., None] * (R @ mu_src[..., None]).squeeze(-1)
    return s.to(out_dtype), R.to(out_dtype), t.to(out_dtype)


def align_cameras(
    pred_c2w: torch.Tensor,
    gt_c2w: torch.Tensor,
    with_scale: bool = True,
    degenerate_tol: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align predicted cameras to ground truth with one similarity transform of the world.

    The similarity ``x -> s R x + t`` maps the predicted world frame onto the ground-truth one;
    camera ``c2w = [R_i, c_i]`` becomes ``[R R_i, s R c_i + t]``.

    How it is estimated (per batch element, chosen branch-free):

    * general case: Umeyama on the camera centres (``gt_c ≈ s R pred_c + t``);
    * centres (of either set) all equal: the centres carry no rotation information, so ``R`` is
      the chordal mean of the relative rotations ``R_gt_i R_pred_i^T``, ``s = 1`` and ``t`` maps
      the mean centre onto the mean centre;
    * centres collinear (e.g. V = 2, or a straight dolly): the rotation about the line is not
      determined by the centres, so ``R`` solves the joint Procrustes problem on the
      RMS-normalised centred centres AND the camera axes; ``s`` and ``t`` are then the
      least-squares fit of the centres given ``R``.

    Args:
        pred_c2w, gt_c2w: ``(..., V, 4, 4)``.
        with_scale: estimate the scale (else ``s = 1``).
        degenerate_tol: relative tolerance on the singular values of the centred centres used to
            detect the degenerate cases (relative to the centres' magnitude / largest singular value).

    Gradients flow through the selected branch; exactly degenerate inputs (repeated singular
    values) can give non-finite gradients through the SVD, as for any Procrustes solver.

    Returns:
        ``(aligned (..., V, 4, 4), s (...,), R (..., 3, 3), t (..., 3))`` in the input dtype.
    """
    check_trailing(pred_c2w, "pred_c2w", (4, 4))
    check_trailing(gt_c2w, "gt_c2w", (4, 4))
    check_floating(pred_c2w, "pred_c2w")
    if pred_c2w.ndim < 3 or pred_c2w.shape[-3] != gt_c2w.shape[-3]:
        raise ValueError(
            f"pred_c2w/gt_c2w: expected (..., V, 4, 4) with the same V, got "
            f"{tuple(pred_c2w.shape)} and {tuple(gt_c2w.shape)}"
        )
    out_dtype = pred_c2w.dtype
    P, G = pred_c2w.double(), gt_c2w.double()
    P, G = torch.broadcast_tensors(P, G)
    pc, gc = P[..., :3, 3], G[..., :3, 3]
    Rp, Rg = P[..., :3, :3], G[..., :3, :3]

    # Degeneracy of each centre set from the singular values of its centred coordinates.
    def _spread(c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cc = c - c.mean(-2, keepdim=True)
        sv = torch.linalg.svdvals(cc.detach())  # (..., min(V, 3)), descending
        sv = torch.cat((sv, sv.new_zeros(*sv.shape[:-1], 3 - sv.shape[-1])), -1)
        all_equal = sv[..., 0] <= degenerate_tol * c.detach().abs().amax(dim=(-1, -2))
        collinear = sv[..., 1] <= degenerate_tol * sv[..., 0].clamp_min(1e-300)
        return cc, all_equal, collinear

    pc_c, p_eq, p_line = _spread(pc)
    gc_c, g_eq, g_line = _spread(gc)
    all_equal = p_eq | g_eq
    collinear = ~all_equal & (p_line | g_line)

    # (a) general case: Umeyama rotation from the centres.
    _, R_u, _ = umeyama(pc, gc, with_scale=False)

    # (b) rotation-only: R maximises sum_i trace(R^T Rg_i Rp_i^T).
    M_rot = (Rg @ Rp.transpose(-1, -2)).sum(-3)
    R_rot = project_to_so3(M_rot)
    # (c) joint: centres normalised to unit RMS so they weigh like the unit camera axes.
    rms_p = pc_c.square().sum(-1).mean(-1).sqrt().clamp_min(1e-300)
    rms_g = gc_c.square().sum(-1).mean(-1).sqrt().clamp_min(1e-300)
    M_joint = M_rot + (gc_c / rms_g[..., None, None]).transpose(-1, -2) @ (
        pc_c / rms_p[..., None, None]
    )
    R_joint = project_to_so3(M_joint)

    R = torch.where(all_equal[..., None, None], R_rot, R_u)
    R = torch.where(collinear[..., None, None], R_joint, R)
    # Least-squares scale and translation given R; with R = R_u this is exactly Umeyama's
    # s = trace(D S) / var(src) and t = mu_dst - s R mu_src.
    if with_scale:
        rot_pc = (R[..., None, :, :] @ pc_c[..., None]).squeeze(-1)
        s = (gc_c * rot_pc).sum((-1, -2)) / pc_c.square().sum((-1, -2)).clamp_min(1e-300)
        s = torch.where(all_equal, torch.ones_like(s), s)
    else:
        s = torch.ones(R.shape[:-2], dtype=R.dtype, device=R.device)
    t = gc.mean(-2) - s[..., None] * (R @ pc.mean(-2)[..., None]).squeeze(-1)

    aligned_R = R[..., None, :, :] @ Rp
    aligned_t = (
        s[..., None, None] * (R[..., None, :, :] @ pc[..., None]).squeeze(-1) + t[..., None, :]
    )
    aligned = make_c2w(aligned_R, aligned_t)
    return aligned.to(out_dtype), s.to(out_dtype), R.to(out_dtype), t.to(out_dtype)
