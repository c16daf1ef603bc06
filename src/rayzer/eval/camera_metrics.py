"""The camera-accuracy metrics of ``rayzer eval`` (definitions in :data:`POSE_DEFINITIONS`).

Two families, computed per sample and pooled over samples (errors are concatenated, then
summarised — the convention of RelPose / PoseDiffusion / VGGT for AUC):

* **gauge-free pairwise** metrics on the relative pose ``inv(c2w_i) @ c2w_j`` of every pair
  ``i < j`` (:func:`rayzer.geometry.relative_pose_errors`): rotation error, translation-direction
  error and their maximum; AUC@5/10/20/30 of that maximum, and RPA@5/15/30 as E-RayZer defines
  it (:func:`relative_pose_accuracy`: the translation-direction angle folded to <= 90°);
* **aligned** metrics after one similarity transform of the predicted world onto the true one
  (:func:`rayzer.geometry.align_cameras`, Umeyama on the camera centres): per-camera rotation
  error (R@10/20/30°) and centre error in units of the ground-truth scene scale (t@0.1/0.2/0.3);
* the **focal** error of the predicted shared focal length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rayzer.eval.turns import by_turn, pair_turns
from rayzer.geometry import (
    accuracy_at,
    align_cameras,
    normalize_scene_scale,
    pose_auc,
    relative_pose_errors,
    rotation_error_deg,
)

AUC_THRESHOLDS = (5, 10, 20, 30)
RPA_THRESHOLDS = (5, 15, 30)
ROT_THRESHOLDS = (10, 20, 30)
TRANS_THRESHOLDS = (0.1, 0.2, 0.3)

POSE_DEFINITIONS = {
    "pairs": "every pair i < j of the sample's views; relative pose inv(c2w_i) @ c2w_j (camera j "
    "in camera i's frame), so no alignment is needed",
    "rot_err_deg": "geodesic angle between predicted and true relative rotations (degrees)",
    "trans_dir_err_deg": "angle between predicted and true relative translation directions "
    "(degrees, sign kept; 0 when the true translation is shorter than 1e-8: no direction to "
    "recover; 90 when only the predicted one is: no direction given)",
    "max_err_deg": "max(rot_err_deg, trans_dir_err_deg) per pair",
    "auc": "AUC@T of max_err_deg (RelPose / PoseDiffusion / VGGT mAA: mean over 1-degree bins "
    "up to T of the fraction of pairs under the bin edge)",
    "rpa": "relative pose accuracy (E-RayZer) RPA@T = fraction of all pairs with max(rot_err_deg, "
    "min(trans_dir_err_deg, 180 - trans_dir_err_deg)) <= T degrees (translation direction "
    "folded to <= 90°, so a flipped direction counts as right, as in E-RayZer and VGGT)",
    "aligned": "predicted cameras mapped onto the truth by one similarity x -> s R x + t "
    "(Umeyama on the camera centres; rotation averaging when the centres coincide, a joint fit "
    "with the camera axes when they are collinear)",
    "R@k": "fraction of cameras whose aligned rotation error is <= k degrees",
    "t@k": "fraction of cameras whose aligned centre error |c_pred - c_true| is <= k, in units "
    "of the ground-truth scene scale = mean distance of the other true camera centres to the "
    "canonical (middle) view's centre (the normalisation of training; world units if all "
    "centres coincide)",
    "focal_rel_err": "|f_pred - f_true| / f_true with f = fx / W of the evaluated images (the "
    "model predicts one focal per sample; f_true = mean over the sample's views)",
    "by_turn": "only where some samples' true cameras turn one way (every consecutive view "
    "turns the same way about the camera's vertical y axis, >= 5 degrees in all: orbits, most "
    "walks): the rotation / translation-direction error medians over the pairs of the samples "
    "turning + (about +y) and - , and balanced_* = the mean of the two medians. A model that "
    "predicts the commoner turn without reading the images scores a low plain median but is "
    "off by about twice the motion on the other side, worse there than the identity; compare "
    "each side with the identity's (rayzer.eval.turns)",
}


@dataclass
class PoseErrors:
    """Raw errors of one or more samples (concatenate with :func:`cat_pose_errors`).

    Attributes:
        rot_deg, trans_deg: (P,) pairwise relative rotation / translation-direction errors.
        gt_rel_rot_deg: (P,) true relative rotation angle of each pair (how much views rotate).
        aligned_rot_deg: (N,) per-camera rotation error after similarity alignment.
        aligned_trans: (N,) per-camera centre error after alignment / GT scene scale.
        focal_rel_err: (S,) relative focal errors (empty when focals were not given).
        turn: (P,) the true turn sign of each pair's sample (:func:`rayzer.eval.turns.turn_signs`,
            0 where the cameras do not turn one way).
        num_samples: S.
    """

    rot_deg: Tensor
    trans_deg: Tensor
    gt_rel_rot_deg: Tensor
    aligned_rot_deg: Tensor
    aligned_trans: Tensor
    focal_rel_err: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))
    turn: Tensor | None = None
    num_samples: int = 1

    def __post_init__(self) -> None:
        if self.turn is None:  # no sign given: no pair counts as turning
            self.turn = torch.zeros(self.rot_deg.shape, dtype=torch.long)


def pose_errors(
    pred_c2w: Tensor,
    gt_c2w: Tensor,
    pred_focal: float | Tensor | None = None,
    gt_focal: float | Tensor | None = None,
) -> PoseErrors:
    """Errors of one sample's predicted cameras.

    Args:
        pred_c2w, gt_c2w: (V, 4, 4) OpenCV camera-to-world (any gauge each), V >= 2.
        pred_focal, gt_focal: normalised focals fx / W (scalars), optional.
    Returns:
        :class:`PoseErrors` (float64, CPU).
    """
    if pred_c2w.ndim != 3 or pred_c2w.shape != gt_c2w.shape or pred_c2w.shape[0] < 2:
        raise ValueError(
            f"pred_c2w/gt_c2w must both be (V >= 2, 4, 4), got {tuple(pred_c2w.shape)} and "
            f"{tuple(gt_c2w.shape)}"
        )
    pred, gt = pred_c2w.detach().double().cpu(), gt_c2w.detach().double().cpu()
    pair = relative_pose_errors(pred, gt)
    identity = torch.eye(4, dtype=gt.dtype).expand_as(gt)
    gt_rot = relative_pose_errors(identity, gt)["rot_deg"]
    aligned, *_ = align_cameras(pred, gt)
    _, scale = normalize_scene_scale(gt)  # t_normalised = scale * t
    centre_err = (aligned[:, :3, 3] - gt[:, :3, 3]).norm(dim=-1) * scale
    focal = torch.zeros(0, dtype=torch.float64)
    if pred_focal is not None and gt_focal is not None:
        pf, gf = float(pred_focal), float(gt_focal)
        focal = torch.tensor([abs(pf - gf) / gf], dtype=torch.float64)
    return PoseErrors(
        rot_deg=pair["rot_deg"],
        trans_deg=pair["trans_deg"],
        gt_rel_rot_deg=gt_rot,
        aligned_rot_deg=rotation_error_deg(aligned[:, :3, :3], gt[:, :3, :3]),
        aligned_trans=centre_err,
        focal_rel_err=focal,
        turn=pair_turns(gt),
    )


def cat_pose_errors(errors: Sequence[PoseErrors]) -> PoseErrors:
    """Pool the errors of several samples."""
    if not errors:
        raise ValueError("cat_pose_errors: no errors to pool")
    return PoseErrors(
        *(torch.cat([getattr(e, k) for e in errors]) for k in _TENSOR_FIELDS),
        num_samples=sum(e.num_samples for e in errors),
    )


_TENSOR_FIELDS = (
    "rot_deg",
    "trans_deg",
    "gt_rel_rot_deg",
    "aligned_rot_deg",
    "aligned_trans",
    "focal_rel_err",
    "turn",
)


def _keyed(values: dict, fmt: str = "@{}") -> dict[str, float]:
    return {fmt.format(k): v for k, v in values.items()}


def relative_pose_accuracy(
    rot_deg: Tensor, trans_deg: Tensor, thresholds: Sequence[float] = RPA_THRESHOLDS
) -> dict[str, float]:
    """E-RayZer's RPA@T: the share of all view pairs whose max(rotation error, translation-
    direction angle folded to <= 90°) is <= T degrees.

    Args:
        rot_deg, trans_deg: (P,) pairwise errors in degrees (translation sign kept, in [0, 180]).
    Returns:
        ``{"@5": …, "@15": …, "@30": …}``.
    """
    folded = torch.minimum(trans_deg, 180.0 - trans_deg)
    return _keyed(accuracy_at(torch.maximum(rot_deg, folded), thresholds))


def pairwise_summary(rot_deg: Tensor, trans_deg: Tensor) -> dict[str, Any]:
    """Medians / means of the pairwise errors and AUC / RPA of their maximum."""
    worst = torch.maximum(rot_deg, trans_deg)
    return {
        "num_pairs": int(rot_deg.numel()),
        "rot_err_deg_median": rot_deg.median().item(),
        "rot_err_deg_mean": rot_deg.mean().item(),
        "trans_dir_err_deg_median": trans_deg.median().item(),
        "trans_dir_err_deg_mean": trans_deg.mean().item(),
        "max_err_deg_median": worst.median().item(),
        "max_err_deg_mean": worst.mean().item(),
        "auc": _keyed(pose_auc(worst, AUC_THRESHOLDS)),
        "rpa": relative_pose_accuracy(rot_deg, trans_deg),
    }


def summarize_pose_errors(err: PoseErrors) -> dict[str, Any]:
    """The reported numbers (see :data:`POSE_DEFINITIONS`) of pooled errors."""
    out = pairwise_summary(err.rot_deg, err.trans_deg)
    out.update(
        {
            "num_samples": err.num_samples,
            "num_cameras": int(err.aligned_rot_deg.numel()),
            "R_at": _keyed(accuracy_at(err.aligned_rot_deg, ROT_THRESHOLDS)),
            "t_at": _keyed(accuracy_at(err.aligned_trans, TRANS_THRESHOLDS)),
            "aligned_rot_err_deg_median": err.aligned_rot_deg.median().item(),
            "aligned_trans_err_median": err.aligned_trans.median().item(),
            "gt_rel_rot_deg_median": err.gt_rel_rot_deg.median().item(),
            "focal_rel_err_median": (
                err.focal_rel_err.median().item() if err.focal_rel_err.numel() else None
            ),
            "focal_rel_err_mean": (
                err.focal_rel_err.mean().item() if err.focal_rel_err.numel() else None
            ),
        }
    )
    split = by_turn(err.rot_deg, err.trans_deg, err.turn)
    if split is not None:
        out["by_turn"] = split
    return out
