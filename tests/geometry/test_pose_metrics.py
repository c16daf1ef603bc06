"""Pose metrics: rotation / translation-direction errors, relative pose errors, AUC, accuracy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rayzer.geometry import (
    accuracy_at,
    axis_angle_to_matrix,
    make_c2w,
    pair_indices,
    pose_auc,
    random_rotation,
    relative_pose_errors,
    rotation_error_deg,
    translation_direction_error_deg,
)


def reference_auc_np(max_errors: np.ndarray, max_threshold: int) -> float:
    """The RelPose / PoseDiffusion / VGGT definition, re-implemented from its description."""
    histogram, _ = np.histogram(max_errors, bins=np.arange(max_threshold + 1))
    return float(np.mean(np.cumsum(histogram / len(max_errors))))


def rot_y(deg: float) -> torch.Tensor:
    return axis_angle_to_matrix(torch.tensor([0.0, math.radians(deg), 0.0], dtype=torch.float64))


def test_rotation_error_deg_known_angle(gen):
    R = random_rotation(8, generator=gen, dtype=torch.float64)
    err = rotation_error_deg(R @ rot_y(10.0), R)
    torch.testing.assert_close(err, torch.full((8,), 10.0, dtype=torch.float64))
    torch.testing.assert_close(rotation_error_deg(R, R @ rot_y(10.0)), err)
    torch.testing.assert_close(
        rotation_error_deg(R, R), torch.zeros(8, dtype=torch.float64), atol=1e-6, rtol=0
    )


def test_translation_direction_error_deg():
    # rows: orthogonal, opposite, same, no predicted direction, 45°, no true direction
    a = torch.tensor(
        [[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0, 0, 0], [2.0, 2.0, 0], [0, 1.0, 0]],
        dtype=torch.float64,
    )
    b = torch.tensor(
        [[0, 3.0, 0], [-1.0, 0, 0], [5.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 0]],
        dtype=torch.float64,
    )
    expected = torch.tensor([90.0, 180.0, 0.0, 90.0, 45.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(translation_direction_error_deg(a, b), expected)
    torch.testing.assert_close(
        translation_direction_error_deg(a, b, sign_invariant=True),
        torch.tensor([90.0, 0.0, 0.0, 90.0, 45.0, 0.0], dtype=torch.float64),
    )


def test_relative_pose_errors_zero_for_identical_and_gauge_changed_poses(random_c2w, gen):
    gt = random_c2w(2, 5)
    errs = relative_pose_errors(gt, gt)
    assert errs["rot_deg"].shape == errs["trans_deg"].shape == (2, 10)
    torch.testing.assert_close(
        errs["rot_deg"], torch.zeros(2, 10, dtype=gt.dtype), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        errs["trans_deg"], torch.zeros(2, 10, dtype=gt.dtype), atol=1e-5, rtol=0
    )
    # A global similarity of the world (rotation, translation, scale) leaves them unchanged.
    G = random_c2w(1)[0]
    pred = G @ gt
    pred = make_c2w(pred[..., :3, :3], 2.5 * pred[..., :3, 3])
    errs = relative_pose_errors(pred, gt)
    torch.testing.assert_close(
        errs["rot_deg"], torch.zeros(2, 10, dtype=gt.dtype), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(
        errs["trans_deg"], torch.zeros(2, 10, dtype=gt.dtype), atol=1e-5, rtol=0
    )


def test_relative_pose_errors_ten_degrees_on_one_camera(random_c2w):
    gt = random_c2w(4)
    pred = gt.clone()
    rotated = 2
    pred[rotated, :3, :3] = gt[rotated, :3, :3] @ rot_y(10.0)  # 10° about the camera's own y axis
    errs = relative_pose_errors(pred, gt)
    i, j = pair_indices(4)
    involved = (i == rotated) | (j == rotated)
    torch.testing.assert_close(errs["rot_deg"][involved], torch.full((3,), 10.0, dtype=gt.dtype))
    torch.testing.assert_close(
        errs["rot_deg"][~involved], torch.zeros(3, dtype=gt.dtype), atol=1e-5, rtol=0
    )
    # Translations seen from an unrotated camera are unchanged.
    unchanged = i != rotated
    torch.testing.assert_close(
        errs["trans_deg"][unchanged], torch.zeros(5, dtype=gt.dtype), atol=1e-5, rtol=0
    )
    assert (errs["trans_deg"][~unchanged] <= 10.0 + 1e-9).all()


def test_pair_indices_order():
    assert pair_indices(4).tolist() == [[0, 0, 0, 1, 1, 2], [1, 2, 3, 2, 3, 3]]


def test_pose_auc_extremes_and_hand_computed_case():
    assert pose_auc(torch.zeros(7)) == {5: 1.0, 10: 1.0, 20: 1.0, 30: 1.0}
    assert pose_auc(torch.full((7,), 1e6)) == {5: 0.0, 10: 0.0, 20: 0.0, 30: 0.0}
    # errors 0.5, 2.5, 7: AUC@5 = (1/3 + 1/3 + 2/3 + 2/3 + 2/3) / 5 = 8/15;
    # AUC@10 = (2 * 1/3 + 5 * 2/3 + 3 * 1) / 10 = 0.7.
    auc = pose_auc(torch.tensor([0.5, 2.5, 7.0]), thresholds=(5, 10))
    assert auc[5] == pytest.approx(8 / 15)
    assert auc[10] == pytest.approx(0.7)
    # An error exactly at the threshold counts (closed last bin), one just above does not.
    assert pose_auc([5.0], thresholds=(5,))[5] == pytest.approx(1 / 5)
    assert pose_auc([5.0 + 1e-9], thresholds=(5,))[5] == 0.0


def test_pose_auc_matches_reference_histogram(gen):
    errors = torch.cat(
        (
            40 * torch.rand(500, generator=gen, dtype=torch.float64),
            torch.arange(0, 35, dtype=torch.float64),  # values exactly on bin edges
            torch.tensor([float("nan")], dtype=torch.float64),
        )
    )
    auc = pose_auc(errors, thresholds=(1, 3, 5, 10, 20, 30))
    for thr, value in auc.items():
        assert value == pytest.approx(reference_auc_np(errors.numpy(), thr), abs=1e-12)


def test_pose_auc_and_accuracy_reject_bad_input():
    with pytest.raises(ValueError, match="errors_deg"):
        pose_auc(torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="errors_deg"):
        pose_auc(torch.tensor([]))
    with pytest.raises(ValueError, match="thresholds"):
        pose_auc(torch.tensor([1.0]), thresholds=(2.5,))


def test_accuracy_at():
    errs = torch.tensor([0.05, 0.15, 0.25, 10.0, float("nan")])
    acc = accuracy_at(errs, (0.1, 0.2, 0.3))
    assert acc == {0.1: pytest.approx(0.2), 0.2: pytest.approx(0.4), 0.3: pytest.approx(0.6)}
    assert accuracy_at([1.0, 2.0], (2,)) == {2: 1.0}
