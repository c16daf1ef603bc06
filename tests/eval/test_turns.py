"""Pose read-outs split by the true turn direction (``rayzer.eval.turns``) and their place in
``camera_report``: a content-free head that always predicts the commoner orbit turn scores a 0°
median rotation error on the bench's held-out ``even`` set, not on the balanced read-out."""

from __future__ import annotations

import math

import pytest
import torch

from _scripts import load_script
from rayzer.config import load_config
from rayzer.eval.novel_view import camera_report
from rayzer.eval.turns import MIN_TURN_DEG, by_turn, turn_signs
from rayzer.geometry import look_at

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sign_probe():
    return load_script("experiments/issue18_explicit/probe_orbit_sign_bound.py")


@pytest.fixture(scope="module")
def orbit_even(sign_probe) -> torch.Tensor:
    """(32, V, 4, 4) true cameras of ``rayzer bench quality``'s held-out orbit ``even`` set."""
    samples = sign_probe.bench_even_set(load_config("erayzer-tiny-cpu", []).data, 32)
    return torch.stack([s.c2w.double() for s in samples])


def orbit(step_deg: float, views: int = 6, elevation_deg: float = 25.0) -> torch.Tensor:
    """(V, 4, 4) cameras on a circle about the world z axis (up), looking at the origin."""
    az = torch.deg2rad(torch.arange(views, dtype=torch.float64) * step_deg)
    el = math.radians(elevation_deg)
    eye = 4.0 * torch.stack(
        (math.cos(el) * az.cos(), math.cos(el) * az.sin(), torch.full_like(az, math.sin(el))), -1
    )
    target = torch.zeros(3, dtype=torch.float64)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    return torch.stack([look_at(e, target, up) for e in eye])


def test_turn_signs_of_orbits_and_of_cameras_that_do_not_turn():
    cams = torch.stack((orbit(10.0), orbit(-10.0), orbit(0.0), orbit(0.5)))
    # azimuth growing counter-clockwise seen from above = about −y of a camera (y points down)
    assert turn_signs(cams).tolist() == [-1, 1, 0, 0]  # 2.5° in all < MIN_TURN_DEG
    assert MIN_TURN_DEG == 5.0
    # back and forth: a sign only where every step turns the same way
    swing = orbit(10.0)[[0, 1, 2, 1, 0, 1]]
    assert turn_signs(swing).item() == 0
    # ... also where the steps add up to a turn either way (+40°, −40°: one step back)
    ahead = [0, 1, 2, 3, 2, 3, 4]
    assert turn_signs(torch.stack((orbit(-10.0)[ahead], orbit(10.0)[ahead]))).tolist() == [0, 0]
    # more than half a turn over the sample still has its sign (first vs last alone would flip)
    assert turn_signs(orbit(-40.0, views=6)).item() == 1


def test_the_sign_probe_labels_turns_as_the_library_does(sign_probe, orbit_even):
    """probe_orbit_sign_bound's sign (its prior, probe_pose_only's by-turn read-out) is the
    library's: first vs last view alone wrapped past 180° and mislabelled the even set's scene
    29 (about 180° in all, + at every step)."""
    assert [sign_probe.turn_sign(c) for c in orbit_even] == turn_signs(orbit_even).tolist()
    assert sign_probe.turn_sign(orbit(-40.0, views=6)) == 1.0  # 200° in all
    assert sign_probe.turn_sign(orbit(0.0)) == 0.0


def test_by_turn_is_absent_without_a_turn_and_balanced_only_with_both():
    rot, trans = torch.tensor([1.0, 2.0, 3.0, 10.0]), torch.tensor([5.0, 6.0, 7.0, 8.0])
    assert by_turn(rot, trans, torch.zeros(4, dtype=torch.long)) is None
    one = by_turn(rot, trans, torch.tensor([1, 1, 0, 0]))
    assert one == {"plus": {"pairs": 2, "rot_err_deg_median": 1.0, "trans_dir_err_deg_median": 5.0}}
    both = by_turn(rot, trans, torch.tensor([1, 1, -1, -1]))
    assert both["minus"]["rot_err_deg_median"] == 3.0  # torch's lower median
    assert both["balanced_rot_err_deg_median"] == 2.0
    assert both["balanced_trans_dir_err_deg_median"] == 6.0


def test_the_content_free_direction_prior_fails_the_balanced_read_out(sign_probe, orbit_even):
    """probe_orbit_sign_bound's head: the truth where the scene turns the commoner way, the
    mirror image (true magnitude, other direction) elsewhere."""
    signs = turn_signs(orbit_even)
    assert (signs != 0).all()  # every orbit test scene turns one way
    assert (signs == -1).sum().item() == 19  # (first vs last view alone says 20: scene 29
    # turns ~180° over its views, where first vs last wraps to the other side)
    # the probe's own construction (its "known_sign_-" head), with its own sign
    prior = torch.stack(
        [
            c if sign_probe.turn_sign(c) == -1 else sign_probe.mirrored_relatives(c)
            for c in orbit_even
        ]
    )
    canonical = orbit_even.shape[1] // 2
    pose = camera_report(prior, orbit_even, canonical)["pose"]
    assert pose["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)  # the gamed median
    split = pose["by_turn"]
    assert split["minus"]["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)
    # measured: + 84.04° (worse than predicting no motion there, 44.12°), − 0.00°, balanced
    # 42.02° (identity's 47.96°: mirrored motions beyond 90° saturate, so compare each side)
    ident = torch.eye(4, dtype=orbit_even.dtype).expand_as(orbit_even)
    no_motion = camera_report(ident, orbit_even, canonical)["pose"]["by_turn"]
    assert split["plus"]["rot_err_deg_median"] > no_motion["plus"]["rot_err_deg_median"] + 20.0
    assert split["balanced_rot_err_deg_median"] > 30.0
    truth = camera_report(orbit_even, orbit_even, canonical)["pose"]
    assert truth["by_turn"]["plus"]["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)
    assert truth["by_turn"]["balanced_rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)


def test_most_walks_pan_one_way_and_the_prior_is_exposed_there_too(sign_probe):
    """The walk test set has the split too (the module docstring): its cameras pan 6-26° one
    way in 29 of 32 samples; the commoner-turn prior is worse than the identity on the other
    side (measured 10.94° vs 5.62°), so the columns mean the same there as on orbits."""
    walk = sign_probe.bench_even_set(load_config("tiny-cpu", ["data.family=walk"]).data, 32)
    gt = torch.stack([s.c2w.double() for s in walk])
    signs = turn_signs(gt)
    assert [(signs == k).sum().item() for k in (1, -1, 0)] == [16, 13, 3]
    prior = torch.stack(
        [c if k != -1 else sign_probe.mirrored_relatives(c) for c, k in zip(gt, signs.tolist())]
    )
    canonical = gt.shape[1] // 2
    split = camera_report(prior, gt, canonical)["pose"]["by_turn"]
    ident = torch.eye(4, dtype=gt.dtype).expand_as(gt)
    no_motion = camera_report(ident, gt, canonical)["pose"]["by_turn"]
    assert split["plus"]["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)
    assert split["minus"]["rot_err_deg_median"] > 1.5 * no_motion["minus"]["rot_err_deg_median"]


def test_camera_report_has_no_split_where_the_cameras_do_not_turn():
    still = orbit(0.0)[None]
    assert "by_turn" not in camera_report(still, still, 0)["pose"]


def test_quality_table_has_by_turn_columns_only_where_present():
    from rayzer.bench.quality_report import method_rows

    pose = {"rot_err_deg_median": 10.0, "trans_dir_err_deg_median": 20.0, "rpa": None}
    res = {
        "psnr": {"m": 20.0},
        "ssim": {"m": 0.5},
        "lpips": {"m": None},
        "pose": {"m": pose},
        "depth": {"m": None},
        "identity_pose": {"rot_err_deg_median": 30.0},
    }
    plain = method_rows(res, {}, ["m"])
    assert "turn" not in plain[0] and plain[0].count("|") == 14  # 13 columns
    split = by_turn(torch.tensor([1.0, 5.0]), None, torch.tensor([1, -1]))
    res["pose"]["m"] = {**pose, "by_turn": split}
    res["identity_pose"]["by_turn"] = by_turn(
        torch.tensor([40.0, 60.0]), None, torch.tensor([1, -1])
    )
    head, _, row, ident = method_rows(res, {}, ["m"])
    assert head.count("|") == 16 and "turn + / −" in head
    assert row.split(" | ")[5:7] == ["1.00 / 5.00", "3.00"]
    assert ident.split(" | ")[5:7] == ["40.00 / 60.00", "50.00"]


def test_rayzer_eval_pose_summary_and_report_split_by_turn():
    from rayzer.eval.camera_metrics import cat_pose_errors, pose_errors, summarize_pose_errors
    from rayzer.eval.eval_report import _pose_rows

    left, right, still = orbit(-10.0), orbit(10.0), orbit(0.0)
    # a head that always turns "left": exact on the left-turning sample, mirrored on the other
    errors = [pose_errors(left, left), pose_errors(left, right), pose_errors(still, still)]
    summary = summarize_pose_errors(cat_pose_errors(errors))
    split = summary["by_turn"]
    assert split["plus"]["pairs"] == split["minus"]["pairs"] == 15  # the still sample: neither
    assert split["plus"]["rot_err_deg_median"] == pytest.approx(0.0, abs=1e-6)
    assert split["minus"]["rot_err_deg_median"] > 15.0  # twice a 10-20° turn
    rows = {r["metric"]: r["m"] for r in _pose_rows({"m": summary})}
    assert (
        rows["rot. error median, balanced (°) ↓"] == f"{split['balanced_rot_err_deg_median']:.2f}"
    )
    plus, minus = split["plus"]["rot_err_deg_median"], split["minus"]["rot_err_deg_median"]
    assert rows["rot. error median, turn + / − (°) ↓"] == f"{plus:.2f} / {minus:.2f}"
    assert rows["pairs turning + / −"] == "15 / 15"
    assert "by_turn" not in summarize_pose_errors(errors[2])
    plain = [r["metric"] for r in _pose_rows({"m": summarize_pose_errors(errors[2])})]
    assert not any("turn" in m or "balanced" in m for m in plain)
