"""Pose distillation from a label-free classical teacher: the explicit models' predicted
*relative* poses should agree with the teacher's (:mod:`rayzer.data.pose_teacher`).

Our addition, opt-in through ``model.pose_teacher_weight`` (default 0: not computed, the papers'
recipe). Per view pair (a, b) of a sample with both views solved by the teacher, the relative
pose ``T_ab = c2w_a⁻¹ · c2w_b`` (view b in view a's frame) is compared:

- rotation: the geodesic angle between the predicted and the teacher's relative rotation, in
  radians (``2·asin(‖R̂ − R‖_F / (2√2))``: exact and smooth, unlike ``acos`` near 0; its
  gradient is taken just short of 180°, where asin's is infinite);
- translation direction: ``1 − cos`` between the predicted and the teacher's relative
  translation. Only the direction: the teacher's scale is its own. The predicted translation is
  divided by ``max(|t̂|, eps)``, so a translation near 0 (every view starts at the identity)
  gets a bounded gradient along the teacher's direction instead of a 1/|t̂| blow-up.

Both gauge-free: the teacher's frame and scale do not matter, nor does which view the model
holds at the identity. Pairs where the teacher failed on either view contribute nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

#: The batch keys the loss reads (added by the stream with ``data.pose_teacher``).
TEACHER_KEYS = ("teacher_c2w", "teacher_valid")

#: Predicted relative translations shorter than this are not normalised (bounded gradient).
TRANSLATION_EPS = 1e-2

#: The rotation term's gradient is taken with sin(angle / 2) clamped to 1 − this (finite at
#: a 180° error).
ROTATION_CLAMP = 1e-6


def _relative(c2w: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """(B, V, 4, 4) cameras, pair indices a, b (P,) → (B, P, 4, 4) ``c2w_a⁻¹ · c2w_b``."""
    ca, cb = c2w[:, a], c2w[:, b]
    r_t = ca[..., :3, :3].transpose(-1, -2)
    rot = r_t @ cb[..., :3, :3]
    trans = (r_t @ (cb[..., :3, 3] - ca[..., :3, 3]).unsqueeze(-1)).squeeze(-1)
    out = torch.zeros_like(ca)
    out[..., :3, :3], out[..., :3, 3], out[..., 3, 3] = rot, trans, 1.0
    return out


def pose_teacher_terms(
    c2w: Tensor, teacher_c2w: Tensor, teacher_valid: Tensor, eps: float = TRANSLATION_EPS
) -> dict[str, Tensor]:
    """Relative-pose disagreement with the teacher over all view pairs.

    Args:
        c2w: (B, V, 4, 4) predicted camera-to-world (any gauge).
        teacher_c2w: (B, V, 4, 4) the teacher's cameras (any gauge and scale).
        teacher_valid: (B, V) bool, views the teacher solved (views with non-finite teacher
            cameras are left out as well).

    Returns:
        ``loss`` (fp32 scalar with gradient: mean over valid pairs of rotation angle in radians
        + (1 − cos) of the translation directions; 0 when no pair is valid), its two parts
        ``rot_loss`` and ``trans_loss`` (the same means, each with gradient), and detached logs
        ``rot_deg`` / ``trans_deg``: the mean rotation and translation-direction errors in
        degrees over the valid pairs (NaN when none).
    """
    if c2w.shape != teacher_c2w.shape or teacher_valid.shape != c2w.shape[:2]:
        raise ValueError(
            f"pose teacher: c2w {tuple(c2w.shape)}, teacher_c2w {tuple(teacher_c2w.shape)} and "
            f"teacher_valid {tuple(teacher_valid.shape)} do not match"
        )
    v = c2w.shape[1]
    a, b = torch.triu_indices(v, v, offset=1, device=c2w.device)
    with torch.autocast(c2w.device.type, enabled=False):
        # views the teacher did not solve may hold anything (NaN too): identity in their place,
        # so that masked pairs are finite and give exactly zero gradient (0 · NaN would not)
        valid = teacher_valid.to(c2w.device)
        teacher = teacher_c2w.float().to(c2w.device)
        valid = valid & torch.isfinite(teacher).all(-1).all(-1)
        eye = torch.eye(4, device=c2w.device).expand_as(teacher)
        teacher = torch.where(valid[..., None, None], teacher, eye)
        pred = _relative(c2w.float(), a, b)
        true = _relative(teacher, a, b)
        t_true = true[..., :3, 3]
        t_norm = t_true.norm(dim=-1)
        # a teacher pair with no baseline has no direction to teach
        mask = (valid[:, a] & valid[:, b] & (t_norm > 1e-8)).float()
        chord = (pred[..., :3, :3] - true[..., :3, :3]).square().sum((-1, -2))
        sin_half = (chord + 1e-12).sqrt() / (2 * math.sqrt(2))
        exact = 2 * torch.asin(sin_half.clamp(max=1.0))
        # asin' is infinite at 1, a 180° error (fp32 rounds sin_half to 1 within ~0.04° of it),
        # and the backward pass turned that into a NaN gradient. The gradient is taken through
        # a clamp just below 1 instead (none within ~0.2° of 180°, where no direction of
        # descent is better than another); the value stays exact.
        safe = 2 * torch.asin(sin_half.clamp(max=1.0 - ROTATION_CLAMP))
        angle = safe + (exact - safe).detach()
        t_pred = pred[..., :3, 3]
        cos = (t_pred * t_true).sum(-1) / (
            t_pred.norm(dim=-1).clamp_min(eps) * t_norm.clamp_min(1e-8)
        )
        per_pair = angle + (1.0 - cos)
        count = mask.sum()
        loss = (per_pair * mask).sum() / count.clamp_min(1.0)
        # the two parts on their own (``loss`` is their sum up to rounding, kept as it was so
        # that runs stay bit-reproducible), for weighting them differently
        rot_loss = (angle * mask).sum() / count.clamp_min(1.0)
        trans_loss = ((1.0 - cos) * mask).sum() / count.clamp_min(1.0)
        with torch.no_grad():
            cos_exact = (t_pred * t_true).sum(-1) / (t_pred.norm(dim=-1) * t_norm).clamp_min(1e-12)
            trans_deg = torch.rad2deg(torch.acos(cos_exact.clamp(-1.0, 1.0)))
            nan = torch.tensor(float("nan"), device=c2w.device)
            rot_log = (torch.rad2deg(angle) * mask).sum() / count if count > 0 else nan
            trans_log = (trans_deg * mask).sum() / count if count > 0 else nan
    return {
        "loss": loss,
        "rot_loss": rot_loss,
        "trans_loss": trans_loss,
        "rot_deg": rot_log.detach(),
        "trans_deg": trans_log.detach(),
    }


def batch_pose_teacher_terms(batch: Mapping[str, Tensor], c2w: Tensor) -> dict[str, Tensor]:
    """:func:`pose_teacher_terms` of the batch's ``teacher_*`` entries and the predicted
    cameras (B, V, 4, 4) of all V views; a clear error when the batch has no teacher."""
    missing = [k for k in TEACHER_KEYS if k not in batch]
    if missing:
        raise ValueError(
            f"model.pose_teacher_weight > 0 needs the teacher's cameras in the batch (missing "
            f"{missing}): set data.pose_teacher to a cache (rayzer.data.pose_teacher)"
        )
    return pose_teacher_terms(c2w, batch["teacher_c2w"], batch["teacher_valid"])
