"""Pose metrics of ``rayzer eval``: perfect scores for any similarity transform of the truth,
and the documented definitions of RPA, aligned R@ / t@ (scene-scale units) and focal error."""

from __future__ import annotations

import math

import pytest
import torch

from rayzer.eval.camera_metrics import (
    POSE_DEFINITIONS,
    cat_pose_errors,
    pairwise_summary,
    pose_errors,
    summarize_pose_errors,
)
from rayzer.eval.camera_paths import apply_similarity
from rayzer.geometry import align_cameras, axis_angle_to_matrix, look_at, random_rotation


def orbit(v: int, radius: float = 3.0) -> torch.Tensor:
    ang = torch.deg2rad(torch.arange(v, dtype=torch.float64) * 15.0)
    eye = torch.stack(
        (radius * torch.sin(ang), 0.4 * torch.cos(3 * ang), -radius * torch.cos(ang)), -1
    )
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64).expand(v, 3)
    return look_at(eye, torch.zeros(v, 3, dtype=torch.float64), up)


def similarity(c2w: torch.Tensor, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    R = random_rotation(1, generator=gen, dtype=torch.float64)
    s = torch.tensor([0.1 + 5 * torch.rand(1, generator=gen, dtype=torch.float64).item()])
    t = 10 * torch.randn(1, 3, generator=gen, dtype=torch.float64)
    return apply_similarity(c2w[None], s, R, t)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_transformed_truth_scores_perfectly(seed):
    gt = orbit(6)
    pred = similarity(gt, seed)
    report = summarize_pose_errors(pose_errors(pred, gt, pred_focal=0.8, gt_focal=0.8))
    for key in ("auc", "rpa", "R_at", "t_at"):
        assert all(v == 1.0 for v in report[key].values()), (key, report[key])
    assert report["rot_err_deg_median"] < 1e-5
    assert report["trans_dir_err_deg_median"] < 1e-5
    assert report["aligned_trans_err_median"] < 1e-9
    assert report["focal_rel_err_median"] == 0.0
    assert report["num_pairs"] == 15 and report["num_cameras"] == 6


def test_rpa_is_the_fraction_of_pairs_under_the_max_error():
    rot = torch.tensor([1.0, 4.0, 10.0, 20.0, 40.0], dtype=torch.float64)
    trans = torch.tensor([6.0, 1.0, 2.0, 35.0, 1.0], dtype=torch.float64)
    s = pairwise_summary(rot, trans)  # max = 6, 4, 10, 35, 40
    assert s["rpa"] == {"@5": 0.2, "@15": 0.6, "@30": 0.6}
    assert s["max_err_deg_median"] == 10.0


def test_aligned_rotation_accuracy_counts_cameras():
    gt = orbit(5)
    pred = gt.clone()
    # Rotate camera 4 about its own optical axis: its centre (hence the alignment) is unchanged.
    pred[4, :3, :3] = gt[4, :3, :3] @ axis_angle_to_matrix(
        torch.tensor([0.0, 0.0, math.radians(15.0)], dtype=torch.float64)
    )
    report = summarize_pose_errors(pose_errors(pred, gt))
    assert report["R_at"] == {"@10": 0.8, "@20": 1.0, "@30": 1.0}
    assert report["t_at"] == {"@0.1": 1.0, "@0.2": 1.0, "@0.3": 1.0}


def test_translation_error_is_in_units_of_the_gt_scene_scale():
    gt = orbit(5)
    pred = gt.clone()
    pred[0, :3, 3] += torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64)  # one centre moves
    err = pose_errors(pred, gt)
    assert err.aligned_trans.shape == (5,) and err.aligned_trans.max() > 0.05
    # Scaling the whole truth (and the prediction) changes nothing in scene-scale units.
    big_gt, big_pred = gt.clone(), pred.clone()
    big_gt[:, :3, 3] *= 7.0
    big_pred[:, :3, 3] *= 7.0
    assert torch.allclose(pose_errors(big_pred, big_gt).aligned_trans, err.aligned_trans)
    # The unit: mean distance of the other true centres to the canonical (middle) one.
    centres = gt[:, :3, 3]
    unit = torch.cat((centres[:2], centres[3:])).sub(centres[2]).norm(dim=-1).mean()
    aligned, *_ = align_cameras(pred, gt)
    expected = (aligned[:, :3, 3] - centres).norm(dim=-1) / unit
    assert torch.allclose(err.aligned_trans, expected)


def test_focal_error_and_pooling():
    gt = orbit(4)
    a = pose_errors(gt, gt, pred_focal=1.1, gt_focal=1.0)
    b = pose_errors(gt, gt, pred_focal=0.8, gt_focal=1.0)
    pooled = summarize_pose_errors(cat_pose_errors([a, b]))
    assert pooled["focal_rel_err_mean"] == pytest.approx(0.15)
    assert pooled["num_samples"] == 2 and pooled["num_pairs"] == 12
    assert summarize_pose_errors(pose_errors(gt, gt))["focal_rel_err_median"] is None


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="V >= 2"):
        pose_errors(orbit(3), orbit(4))


def test_coincident_predicted_centres_score_90_degrees_as_the_definition_says():
    """Two predicted cameras at one centre (the without-targets registration puts every target
    whose pass got scale 0 on the context centroid) have no translation direction: 90°, as
    the report's definition says, not 0 (which would reward a collapse)."""
    gt = orbit(3)
    pred = gt.clone()
    pred[2, :3, 3] = pred[1, :3, 3]  # cameras 1 and 2 share a centre
    trans = pose_errors(pred, gt).trans_deg  # pairs (0, 1), (0, 2), (1, 2)
    assert trans[2].item() == 90.0 and trans[0].item() < 1e-6
    definition = POSE_DEFINITIONS["trans_dir_err_deg"]
    assert "90 when only the predicted one" in definition
    assert "0 when the true translation" in definition
