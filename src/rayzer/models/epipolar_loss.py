"""An epipolar loss for the explicit models' cameras: label-free SIFT matches between the views
of a sample must satisfy the epipolar constraint of the *predicted* relative poses and focal.

Our addition, not in either paper (E-RayZer and NAS3R learn cameras from the render loss alone);
opt-in through ``model.epipolar_loss_weight`` (default 0: the papers' recipe). It needs no depth
and no appearance, so — unlike the render and depth-warp losses — free per-pixel colours cannot
absorb a wrong camera. The matches come with the batch (``epipolar_*`` keys, added by the training
stream when ``data.epipolar_matches > 0``; :mod:`rayzer.data.matches`); the per-pair term is
:func:`rayzer.geometry.epipolar.epipolar_pair_loss` (Sampson error plus a translation-free
rotation cost that stays alive while the predicted translation is 0).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from rayzer.geometry.epipolar import epipolar_pair_loss
from rayzer.geometry.intrinsics import denormalize_intrinsics

#: The batch keys the loss reads (see :class:`rayzer.data.matches.ViewMatches`).
MATCH_KEYS = ("epipolar_pairs", "epipolar_uv", "epipolar_valid")


def batch_epipolar_loss(batch: Mapping[str, Tensor], c2w: Tensor, K_norm: Tensor) -> Tensor:
    """Mean epipolar loss of the batch's matches under cameras of all V views.

    Args:
        batch: with ``image`` (B, V, 3, H, W) and the :data:`MATCH_KEYS`: ``epipolar_pairs``
            (B, P, 2) view positions into the V views, ``epipolar_uv`` (B, P, M, 4) matched
            pixels ``(u_a, v_a, u_b, v_b)`` of the H × W images, ``epipolar_valid`` (B, P, M).
        c2w: (B, V, 4, 4) predicted cameras; K_norm: (B, V, 4) their normalised intrinsics.

    Returns:
        fp32 scalar: the mean over the pairs with at least one valid match (0 if none).
    """
    missing = [k for k in MATCH_KEYS if k not in batch]
    if missing:
        raise ValueError(
            f"model.epipolar_loss_weight > 0 needs matches in the batch (missing {missing}): "
            "set data.epipolar_matches > 0 (and install opencv: pip install 'rayzer[undistort]')"
        )
    h, w = batch["image"].shape[-2:]
    pairs, uv, valid = (batch[k] for k in MATCH_KEYS)
    b = torch.arange(pairs.shape[0], device=pairs.device)[:, None]
    with torch.autocast(c2w.device.type, enabled=False):
        c2w = c2w.float()
        K = denormalize_intrinsics(K_norm.float(), h, w)
        a_i, b_i = pairs[..., 0], pairs[..., 1]
        per_pair = epipolar_pair_loss(
            uv[..., :2].float(),
            uv[..., 2:].float(),
            valid,
            c2w[b, a_i],
            c2w[b, b_i],
            K[b, a_i],
            K[b, b_i],
            (h, w),
        )
        used = valid.any(-1).float()
        return (per_pair * used).sum() / used.sum().clamp_min(1.0)
