"""Pose-quality report of predicted cameras against ground truth, and collapse diagnostics.

All numbers are gauge-free: relative poses between views (``inv(c2w_i) @ c2w_j``) are compared,
so no alignment is needed and RayZer's canonical frame and arbitrary scale do not matter.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rayzer.eval.camera_metrics import relative_pose_accuracy
from rayzer.eval.turns import by_turn, pair_turns
from rayzer.geometry import (
    accuracy_at,
    pose_auc,
    relative_pose_errors,
    rotation_angle,
    se3_inverse,
)


def pose_report(
    pred_c2w: Tensor,
    gt_c2w: Tensor,
    pred_focal: Tensor | None = None,
    gt_focal: Tensor | None = None,
) -> dict[str, Any]:
    """Relative-pose errors over all view pairs of all samples.

    Args:
        pred_c2w, gt_c2w: (S, V, 4, 4) OpenCV camera-to-world (any per-sample gauge).
        pred_focal, gt_focal: optional (S,) normalised focals (fx / W).
    Returns:
        rotation / translation-direction error medians (degrees), accuracy under 5/10/15°,
        AUC@5/10/20/30 of max(rot, trans), E-RayZer's RPA@5/15/30
        (:func:`rayzer.eval.camera_metrics.relative_pose_accuracy`), the identity-pose baseline (error of predicting no
        motion at all), focal statistics when given, and ``by_turn`` where the true cameras
        turn one way (:func:`rayzer.eval.turns.by_turn`: the pairs split by that direction,
        read-outs a model that predicts the commoner turn without reading the images cannot
        game; absent when no sample turns one way).
    """
    err = relative_pose_errors(pred_c2w, gt_c2w)
    rot, trans = err["rot_deg"].flatten(), err["trans_deg"].flatten()
    identity = torch.eye(4, dtype=gt_c2w.dtype).expand_as(gt_c2w)
    gt_rot = relative_pose_errors(identity, gt_c2w)["rot_deg"].flatten()
    report: dict[str, Any] = {
        "rot_err_deg_median": rot.median().item(),
        "rot_err_deg_mean": rot.mean().item(),
        "trans_dir_err_deg_median": trans.median().item(),
        "rot_acc": {f"@{t}": v for t, v in accuracy_at(rot, (5, 10, 15)).items()},
        "trans_acc": {f"@{t}": v for t, v in accuracy_at(trans, (5, 10, 15)).items()},
        "auc": {
            f"@{t}": v for t, v in pose_auc(torch.maximum(rot, trans), (5, 10, 20, 30)).items()
        },
        "rpa": relative_pose_accuracy(rot, trans),
        # Ground-truth relative rotation = the error of predicting identity for every view.
        "gt_rel_rot_deg_median": gt_rot.median().item(),
        "identity_rot_err_deg_median": gt_rot.median().item(),
    }
    if pred_focal is not None and gt_focal is not None:
        report["focal_pred_mean"] = pred_focal.mean().item()
        report["focal_pred_std"] = pred_focal.std().item() if pred_focal.numel() > 1 else 0.0
        report["focal_true_mean"] = gt_focal.mean().item()
        report["focal_rel_err_median"] = ((pred_focal - gt_focal).abs() / gt_focal).median().item()
    split = by_turn(rot, trans, pair_turns(gt_c2w).flatten())
    if split is not None:
        report["by_turn"] = split
    return report


def collapse_diagnostics(pred_c2w: Tensor, canonical: int) -> dict[str, float]:
    """Signs of the canonical-flag collapse: every non-canonical view given one pose.

    Args:
        pred_c2w: (S, V, 4, 4) predicted cameras; canonical: index of the identity view.
    Returns:
        ``noncanonical_spread_deg_median``: median rotation angle between pairs of
        non-canonical views (≈ 0 in a collapse); ``pred_rel_rot_deg_median``: median predicted
        rotation of non-canonical views from the canonical one.
    """
    v = pred_c2w.shape[1]
    others = [i for i in range(v) if i != canonical]
    rest = pred_c2w[:, others]
    pair = se3_inverse(rest).unsqueeze(2) @ rest.unsqueeze(1)
    iu = torch.triu_indices(len(others), len(others), offset=1)
    spread = torch.rad2deg(rotation_angle(pair[:, iu[0], iu[1], :3, :3]))
    rel = torch.rad2deg(rotation_angle(rest[..., :3, :3]))
    return {
        "noncanonical_spread_deg_median": spread.median().item() if spread.numel() else 0.0,
        "pred_rel_rot_deg_median": rel.median().item(),
    }
