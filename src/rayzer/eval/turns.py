"""Pose errors split by the direction the true cameras turn: read-outs a direction prior cannot
game.

On a set where most samples turn one way (the synthetic orbit test set: 19 of 32 ``even``
samples), a head that ignores the images and always predicts that turn, with the typical
magnitude, gets most pairs right and so a near-zero *median* rotation error. Splitting the pairs
by the sample's true turn direction exposes it: such a head is exact on one side and off by the
mirrored motion, about twice the motion, on the other. Compare each side with the identity's on
that side: beyond 90° of motion the mirrored error saturates (rotation distances stop at 180°),
so the mean of the two medians (``balanced``) can fall below the identity's (on the orbit test
set: + 84.0° / − 0.00°, balanced 42.0°, against the identity's 44.1° / 51.8°, balanced 48.0°).
Only a model that reads the direction from the images beats the identity on both sides.

A sample **has a turn sign** when its true cameras, in frame order, turn monotonically about the
camera's vertical axis: every consecutive relative rotation ``inv(R_i) @ R_{i+1}`` (camera
``i + 1`` in camera ``i``'s frame, OpenCV: y down) has a y component of its rotation vector of
the same sign, and they add up to at least :data:`MIN_TURN_DEG`. Orbits do, and so do most
walks, which pan one way (29 of the 32 walk test samples: 6-26° over their views, 16 + / 13 −);
a camera that swings back and forth, a still or a purely translating one does not (sign 0), and
its pairs are left out of the split. ``+1`` is a positive rotation about the camera's y axis
(the probe ``experiments/issue18_explicit/probe_orbit_sign_bound.py`` uses this function).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rayzer.geometry import matrix_to_axis_angle, relative_pose_errors

#: The smallest total turn (degrees, summed over consecutive views) that defines a direction.
MIN_TURN_DEG = 5.0


def turn_signs(c2w: Tensor) -> Tensor:
    """The turn direction of each sample's true cameras (module docstring).

    Args:
        c2w: (..., V, 4, 4) camera-to-world (OpenCV), views in frame order, V >= 2.
    Returns:
        (...) int64 in {+1, −1, 0}; 0 where the cameras do not turn one way by >= MIN_TURN_DEG.
    """
    if c2w.ndim < 3 or c2w.shape[-2:] != (4, 4) or c2w.shape[-3] < 2:
        raise ValueError(f"turn_signs: expected (..., V >= 2, 4, 4), got {tuple(c2w.shape)}")
    r = c2w[..., :3, :3].double()
    step = r[..., :-1, :, :].transpose(-1, -2) @ r[..., 1:, :, :]  # (..., V-1, 3, 3)
    yaw = torch.rad2deg(matrix_to_axis_angle(step)[..., 1])  # (..., V-1) turn of each step
    plus = (yaw > 0).all(-1) & (yaw.sum(-1) >= MIN_TURN_DEG)
    minus = (yaw < 0).all(-1) & (yaw.sum(-1) <= -MIN_TURN_DEG)
    return plus.long() - minus.long()


def by_turn(rot_deg: Tensor, trans_deg: Tensor | None, turn: Tensor) -> dict[str, Any] | None:
    """Pairwise errors split by the true turn direction of their sample.

    Args:
        rot_deg: (P,) pairwise rotation errors (degrees).
        trans_deg: (P,) translation-direction errors, or None (rotation only, e.g. for the
            identity baseline, whose translation direction is undefined).
        turn: (P,) the turn sign (:func:`turn_signs`) of each pair's sample.
    Returns:
        None when no pair has a turn sign (the read-out is absent, not zero). Otherwise
        ``{"plus": {...}, "minus": {...}}`` for each direction present, each with ``pairs``,
        ``rot_err_deg_median`` (and ``trans_dir_err_deg_median``); and, when both are present,
        ``balanced_rot_err_deg_median`` (and ``balanced_trans_dir_err_deg_median``), the mean
        of the two directions' medians. A prior that is exact on one side is off by about
        twice the motion on the other (less where motions exceed 90°: rotation distances
        saturate at 180°), so compare each side with the identity's on that side.
    """
    errors = {"rot_err_deg_median": rot_deg.flatten()}
    if trans_deg is not None:
        errors["trans_dir_err_deg_median"] = trans_deg.flatten()
    turn = turn.flatten()
    if any(e.shape != turn.shape for e in errors.values()):
        raise ValueError(
            f"by_turn: the errors and turn must have the same length, got "
            f"{[e.numel() for e in errors.values()]} and {turn.numel()}"
        )
    out: dict[str, Any] = {}
    for key, sign in (("plus", 1), ("minus", -1)):
        mask = turn == sign
        if mask.any():
            out[key] = {"pairs": int(mask.sum())}
            out[key].update({name: e[mask].median().item() for name, e in errors.items()})
    if not out:
        return None
    if "plus" in out and "minus" in out:
        for name in errors:
            out[f"balanced_{name}"] = 0.5 * (out["plus"][name] + out["minus"][name])
    return out


def pair_turns(gt_c2w: Tensor) -> Tensor:
    """(S, V, 4, 4) true cameras → (S, P) the turn sign of each sample repeated over its
    ``P = V (V − 1) / 2`` pairs (the order of :func:`rayzer.geometry.relative_pose_errors`)."""
    v = gt_c2w.shape[-3]
    return turn_signs(gt_c2w)[..., None].expand(*gt_c2w.shape[:-3], v * (v - 1) // 2)


def turn_report(
    pred_c2w: Tensor, gt_c2w: Tensor, rotation_only: bool = False
) -> dict[str, Any] | None:
    """:func:`by_turn` of predicted against true cameras, each sample split by its true turn.

    Args:
        pred_c2w, gt_c2w: (S, V, 4, 4) OpenCV camera-to-world (any gauge per sample).
        rotation_only: leave the translation-direction errors out.
    Returns:
        :func:`by_turn`'s dict, or None when no sample has a turn sign.
    """
    err = relative_pose_errors(pred_c2w, gt_c2w)
    trans = None if rotation_only else err["trans_deg"]
    return by_turn(err["rot_deg"], trans, pair_turns(gt_c2w))
