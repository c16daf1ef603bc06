"""Camera-pose error metrics: rotation / translation-direction errors, relative pose errors,
accuracy at thresholds and the pose AUC (mAA) used by RelPose / PoseDiffusion / VGGT.

Relative-pose metrics are invariant to the global gauge (rotation, translation, and - for the
translation DIRECTION error - scale) of the predicted cameras, so no alignment is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from rayzer.geometry._checks import check_floating, check_trailing
from rayzer.geometry.rotations import rotation_angle
from rayzer.geometry.se3 import se3_inverse

__all__ = [
    "accuracy_at",
    "pair_indices",
    "pose_auc",
    "relative_pose_errors",
    "rotation_error_deg",
    "translation_direction_error_deg",
]


def rotation_error_deg(R_pred: torch.Tensor, R_gt: torch.Tensor) -> torch.Tensor:
    """Geodesic angle in degrees between rotations ``(..., 3, 3)``: angle of ``R_pred^T R_gt``."""
    check_trailing(R_pred, "R_pred", (3, 3))
    check_trailing(R_gt, "R_gt", (3, 3))
    return torch.rad2deg(rotation_angle(R_pred.transpose(-1, -2) @ R_gt))


def translation_direction_error_deg(
    t_pred: torch.Tensor,
    t_gt: torch.Tensor,
    eps: float = 1e-8,
    sign_invariant: bool = False,
) -> torch.Tensor:
    """Angle in degrees between translation vectors ``(..., 3)`` (scale-invariant).

    Computed as ``atan2(|a x b|, a . b)`` (accurate for small and near-180° angles).

    Args:
        eps: a vector shorter than ``eps`` has no direction. A ground-truth pair of coincident
            cameras has no direction to recover: error 0, it does not count as a failure. A
            prediction with no direction where the truth has one is uninformative: 90°, the
            error of a direction guessed at random in the signed metric, the worst possible in
            the sign-invariant one (a collapsed model predicting t = 0 must not score a perfect
            translation error).
        sign_invariant: return ``min(angle, 180 - angle)``; this is what VGGT / PoseDiffusion
            report (their ``translation_angle(..., ambiguity=True)``). Default False: we keep the
            sign, which a model that predicts metric-direction cameras should get right.
    """
    check_trailing(t_pred, "t_pred", (3,))
    check_trailing(t_gt, "t_gt", (3,))
    check_floating(t_pred, "t_pred")
    cross = torch.linalg.vector_norm(torch.linalg.cross(t_pred, t_gt, dim=-1), dim=-1)
    dot = (t_pred * t_gt).sum(-1)
    angle = torch.rad2deg(torch.atan2(cross, dot))
    if sign_invariant:
        angle = torch.minimum(angle, 180.0 - angle)
    pred_tiny = torch.linalg.vector_norm(t_pred, dim=-1) < eps
    gt_tiny = torch.linalg.vector_norm(t_gt, dim=-1) < eps
    angle = torch.where(pred_tiny, torch.full_like(angle, 90.0), angle)
    return torch.where(gt_tiny, torch.zeros_like(angle), angle)


def pair_indices(num_views: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``(2, P)`` indices ``(i, j)`` of all pairs ``i < j`` of ``num_views`` views, row-major order."""
    return torch.triu_indices(num_views, num_views, offset=1, device=device)


def relative_pose_errors(
    pred_c2w: torch.Tensor,
    gt_c2w: torch.Tensor,
    sign_invariant: bool = False,
) -> dict[str, torch.Tensor]:
    """Rotation and translation-direction errors of all relative poses ``i < j``.

    The relative pose of pair ``(i, j)`` is ``inv(c2w_i) @ c2w_j`` (camera ``j`` in camera ``i``'s
    frame); pairs are ordered as :func:`pair_indices`.

    Args:
        pred_c2w, gt_c2w: ``(..., V, 4, 4)`` camera-to-world, V >= 2.
        sign_invariant: see :func:`translation_direction_error_deg`.

    Returns:
        ``{"rot_deg": (..., P), "trans_deg": (..., P)}`` with ``P = V (V - 1) / 2``.
    """
    check_trailing(pred_c2w, "pred_c2w", (4, 4))
    check_trailing(gt_c2w, "gt_c2w", (4, 4))
    if pred_c2w.ndim < 3 or pred_c2w.shape[-3] != gt_c2w.shape[-3] or pred_c2w.shape[-3] < 2:
        raise ValueError(
            "pred_c2w/gt_c2w: expected (..., V, 4, 4) with the same V >= 2, got "
            f"{tuple(pred_c2w.shape)} and {tuple(gt_c2w.shape)}"
        )
    i, j = pair_indices(pred_c2w.shape[-3], device=pred_c2w.device)

    def rel(c2w: torch.Tensor) -> torch.Tensor:
        return se3_inverse(c2w[..., i, :, :]) @ c2w[..., j, :, :]

    rel_pred, rel_gt = rel(pred_c2w), rel(gt_c2w)
    return {
        "rot_deg": rotation_error_deg(rel_pred[..., :3, :3], rel_gt[..., :3, :3]),
        "trans_deg": translation_direction_error_deg(
            rel_pred[..., :3, 3], rel_gt[..., :3, 3], sign_invariant=sign_invariant
        ),
    }


def _as_errors(errors: torch.Tensor | Sequence[float], name: str) -> torch.Tensor:
    if isinstance(errors, torch.Tensor):
        e = errors.detach().flatten().to(device="cpu", dtype=torch.float64)
    else:  # Python / numpy values: keep full precision
        e = torch.as_tensor(errors, dtype=torch.float64).flatten()
    if e.numel() == 0:
        raise ValueError(f"{name}: need at least one error value")
    if (e < 0).any():
        raise ValueError(f"{name}: errors must be non-negative, got min {e.min().item()}")
    return e


def pose_auc(
    errors_deg: torch.Tensor | Sequence[float],
    thresholds: Iterable[int] = (5, 10, 20, 30),
) -> dict[int, float]:
    """Pose AUC (a.k.a. mAA) at integer degree thresholds, as in RelPose / PoseDiffusion / VGGT.

    ``errors_deg`` holds one error per pair; the standard protocol uses
    ``max(rot_deg, trans_deg)`` per pair (``torch.maximum`` of the two outputs of
    :func:`relative_pose_errors`). For a threshold ``T`` this reproduces the reference
    ``calculate_auc_np``: histogram the errors into the 1° bins ``[0,1), [1,2), ..., [T-1, T]``
    (the last bin closed, like ``np.histogram``), normalise by the number of errors, take the
    cumulative sum and average it over the ``T`` bins. Equivalently::

        AUC@T = (1/T) * ( sum_{k=1}^{T-1} frac(err < k)  +  frac(err <= T) )

    Errors above ``T`` and NaN errors count as failures.

    Returns:
        ``{T: auc}`` with ``auc`` in ``[0, 1]`` as Python floats.
    """
    e = _as_errors(errors_deg, "errors_deg")
    out: dict[int, float] = {}
    for thr in thresholds:
        if isinstance(thr, bool) or int(thr) != thr or thr <= 0:
            raise ValueError(f"thresholds: expected positive integers (degrees), got {thr!r}")
        T = int(thr)
        ks = torch.arange(1, T + 1, dtype=torch.float64)
        acc = (e[None, :] < ks[:, None]).to(torch.float64).mean(-1)
        acc[-1] = (e <= T).to(torch.float64).mean()
        out[T] = float(acc.mean())
    return out


def accuracy_at(
    errors: torch.Tensor | Sequence[float], thresholds: Iterable[float]
) -> dict[float, float]:
    """Fraction of ``errors`` that are ``<= thr`` for each threshold (NaN counts as a failure).

    E.g. ``accuracy_at(rot_deg, (10, 20, 30))`` gives RRA@10/20/30 and
    ``accuracy_at(trans_err, (0.1, 0.2, 0.3))`` the translation accuracies of pose probing.
    """
    e = _as_errors(errors, "errors")
    out: dict[float, float] = {}
    for thr in thresholds:
        if not math.isfinite(thr):
            raise ValueError(f"thresholds: expected finite numbers, got {thr!r}")
        out[thr] = float((e <= thr).to(torch.float64).mean())
    return out
