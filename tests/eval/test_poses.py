import torch

from rayzer.eval.poses import collapse_diagnostics, pose_report
from rayzer.geometry import look_at, make_c2w, random_rotation


def orbit(n: int, step_deg: float) -> torch.Tensor:
    ang = torch.deg2rad(torch.arange(n) * step_deg)
    eye = torch.stack((3 * ang.cos(), 3 * ang.sin(), torch.ones(n)), -1)
    return look_at(eye, torch.zeros(n, 3), torch.tensor([0.0, 0.0, 1.0]).expand(n, 3))


def test_perfect_prediction_in_another_gauge_has_zero_error():
    gt = orbit(6, 10).unsqueeze(0)
    g = make_c2w(random_rotation(1, generator=torch.Generator().manual_seed(0))[0], torch.randn(3))
    pred = g @ gt  # a rigid change of world frame
    pred[..., :3, 3] *= 2.5  # and of scale
    rep = pose_report(pred, gt, torch.tensor([1.1]), torch.tensor([1.1]))
    assert rep["rot_err_deg_median"] < 1e-3 and rep["trans_dir_err_deg_median"] < 1e-2
    assert rep["auc"]["@5"] > 0.99 and rep["rot_acc"]["@5"] == 1.0
    assert rep["focal_rel_err_median"] == 0.0
    # the identity baseline is the median ground-truth relative rotation (10° steps over 6 views)
    assert 15 < rep["identity_rot_err_deg_median"] < 25


def test_identity_prediction_scores_the_identity_baseline():
    gt = orbit(5, 8).unsqueeze(0)
    rep = pose_report(torch.eye(4).expand_as(gt), gt)
    assert abs(rep["rot_err_deg_median"] - rep["identity_rot_err_deg_median"]) < 1e-4
    assert rep["rot_acc"]["@5"] < 0.5


def test_collapse_is_detected():
    v, c = 6, 3
    collapsed = torch.eye(4).repeat(1, v, 1, 1)
    offset = orbit(2, 20)[1]
    collapsed[:, [i for i in range(v) if i != c]] = offset
    diag = collapse_diagnostics(collapsed, c)
    assert diag["noncanonical_spread_deg_median"] < 1e-3
    assert diag["pred_rel_rot_deg_median"] > 15
    healthy = collapse_diagnostics(orbit(v, 10).unsqueeze(0), c)
    assert healthy["noncanonical_spread_deg_median"] > 5
