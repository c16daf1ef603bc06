"""Cameras from feature matches (rayzer.refine.matched_cameras): a synthetic walk rendered at
192 px recovered from a 10 %-off focal and identity cameras; failures keep the input cameras."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import relative_pose_errors
from rayzer.refine import MatchConfig, cameras_from_matches

SIZE = 192  # the photos; the "model" image is 32 px, as a tiny model's input
MODEL = 32


@pytest.fixture(scope="module")
def walk():
    clip = render_clip(0, SynthConfig(family="walk", frames=6, height=SIZE, width=SIZE))
    photos = [(im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for im in clip.images]
    return clip, photos


#: The model image is the central 3/4 of each photo (a crop box, as the inference's policy
#: makes one); keypoints outside it still count.
BOX = (SIZE / 8, SIZE / 8, 7 * SIZE / 8, 7 * SIZE / 8)


def _prior(clip, v: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Identity cameras (a tiny model's guess) and the true focal of the model image, 10 % too
    long."""
    K = clip.K.clone()
    K[:, :2] *= 1.1 * MODEL / (BOX[2] - BOX[0])
    K[:, 2:] = MODEL / 2
    return torch.eye(4).repeat(v, 1, 1), K


def test_recovers_the_cameras_of_a_synthetic_walk(walk):
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    cfg = MatchConfig(focal_search=False)  # one start: the focal search has its own test
    res = cameras_from_matches(
        photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), anchor=2, config=cfg
    )
    assert res.registered.all(), res.report
    err = relative_pose_errors(res.c2w.double(), clip.c2w.double())
    # measured: max 0.81°, median 0.51° over the 15 pairs (seed 0; seeds 1 and 3, run on the
    # whole photos, ended with focals 4.8x / 6.9x too long and rotations up to 3.8° / 8.5° off
    # with the focal moving 1.25x per pass)
    assert err["rot_deg"].max() < 2.0
    # translation directions of a short forward walk are weakly constrained (measured median
    # 5.7° over the pairs; focal 55.0 px, truth 46.0); identity cameras are 90° off
    assert err["trans_deg"].median() < 20.0
    # the gauge: the anchor keeps its input camera; the registered views share one focal
    assert torch.allclose(res.c2w[2], c2w[2], atol=1e-5)
    assert torch.allclose(res.K[:, 0], res.K[0, 0].expand(len(photos)))
    assert torch.allclose(res.K[0, 2:], torch.tensor([MODEL / 2, MODEL / 2]))
    rep = res.report
    assert rep["num_registered"] == len(photos)
    assert rep["reprojection_after_ba"]["rms_px"] <= rep["reprojection_before_ba"]["rms_px"]
    assert rep["reprojection_after_ba"]["median_px"] < 1.0
    assert rep["pairs_kept"] >= len(photos) - 1


def test_sequential_matching_pairs_only_near_views_and_still_registers_all(walk):
    """max_pair_gap (frames in capture order): only pairs at most that far apart are matched;
    the tracks chain through them, so every view is still registered and accurate."""
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    cfg = MatchConfig(focal_search=False, max_pair_gap=2)
    res = cameras_from_matches(
        photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), anchor=2, config=cfg
    )
    gaps = {int(j) - int(i) for i, j in (k.split("-") for k in res.report["pair_inliers"])}
    assert gaps == {1, 2}  # 9 of the 15 pairs; every pair (the default) has gaps 1 … 5
    assert res.report["pairs"] == 9
    assert res.registered.all(), res.report
    err = relative_pose_errors(res.c2w.double(), clip.c2w.double())
    assert err["rot_deg"].max() < 2.0  # as with every pair (test above)
    with pytest.raises(ValueError, match="max_pair_gap"):
        MatchConfig(max_pair_gap=0)


def test_a_gap_of_one_leaves_a_chain_whose_rotations_nothing_checks(walk):
    """max_pair_gap=1 matches only neighbours: no three views close a loop, so the rotation
    averaging has nothing to compare a pair with (it can drop none) and the evidence is weak;
    the cameras are still registered, with a warning saying so. (The near-planar test is off:
    on this walk's short steps it rejects all five neighbour pairs and nothing registers.)"""
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    cfg = MatchConfig(focal_search=False, max_pair_gap=1, max_homography_ratio=None)
    res = cameras_from_matches(
        photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), anchor=2, config=cfg
    )
    rep = res.report
    assert rep["pairs"] == len(photos) - 1 and rep["pairs_dropped_by_rotation_averaging"] == []
    assert rep["evidence"]["triplets"] == 0 and rep["evidence"]["weak"], rep["evidence"]
    assert "no three registered views" in rep["warning"]
    assert res.registered.all(), rep


def test_the_depth_scale_sets_the_median_depth_of_the_reference_view(walk):
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    box = BOX
    cfg = MatchConfig(focal_search=False, ba_max_evals=5)  # the gauge, not the accuracy
    photos, c2w, K = photos[:4], c2w[:4], K[:4]
    one = cameras_from_matches(photos, [box] * 4, c2w, K, (MODEL, MODEL), anchor=0, config=cfg)
    three = cameras_from_matches(
        photos, [box] * 4, c2w, K, (MODEL, MODEL), anchor=0, depth_scale=3.0, config=cfg
    )
    assert one.report["depth_scale"] == 1.0 and three.report["depth_scale"] == 3.0
    assert torch.allclose(three.c2w[:, :3, 3], 3 * one.c2w[:, :3, 3], atol=1e-4)


def test_no_matching_pair_keeps_the_input_cameras_and_says_so():
    pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(4)]  # noise
    c2w = torch.eye(4).repeat(4, 1, 1)
    c2w[:, 0, 3] = torch.arange(4.0)
    K = torch.tensor([[40.0, 40.0, 16.0, 16.0]]).repeat(4, 1)
    box = (16.0, 0.0, 112.0, 96.0)  # the centre crop of the 128 x 96 photos
    res = cameras_from_matches(photos, [box] * 4, c2w, K, (MODEL, MODEL), anchor=1)
    assert not res.registered.any()
    assert torch.equal(res.c2w, c2w) and torch.equal(res.K, K)
    assert "the model's cameras are kept" in res.report["warning"]


def test_bad_input_and_missing_opencv(monkeypatch):
    import rayzer.refine.matched_cameras as mc

    photos = [np.zeros((8, 8, 3), dtype=np.uint8)] * 2
    box = (0.0, 0.0, 8.0, 8.0)
    with pytest.raises(ValueError, match="one box and camera each"):
        mc.cameras_from_matches(
            photos, [box], torch.eye(4).repeat(2, 1, 1), torch.ones(2, 4), (8, 8)
        )
    with pytest.raises(ValueError, match="anchor 5"):
        mc.cameras_from_matches(
            photos, [box] * 2, torch.eye(4).repeat(2, 1, 1), torch.ones(2, 4), (8, 8), anchor=5
        )
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # import cv2 -> ImportError
    assert "rayzer[undistort]" in mc.opencv_missing_reason()
    with pytest.raises(ImportError, match=r"pip install 'rayzer\[undistort\]'"):
        mc.cameras_from_matches(
            photos, [box] * 2, torch.eye(4).repeat(2, 1, 1), torch.ones(2, 4), (8, 8)
        )


def _on_stubbed_pairs(monkeypatch, posed, config: MatchConfig | None = None):
    """``cameras_from_matches`` on 3 blank 32 px photos with no SIFT or matching, the pairs'
    poses from ``posed`` (a stand-in for ``pair_poses``). Returns ``(result, c2w, K)``, the
    input cameras: identity ``(3, 4, 4)`` and ``(3, 4)`` intrinsics of 16 px."""
    import rayzer.refine.matched_cameras as mc
    from rayzer.refine.pair_geometry import ViewFeatures

    no_features = ViewFeatures(np.zeros((0, 2)), np.zeros((0, 128), np.float32))
    monkeypatch.setattr(mc, "detect_features", lambda *a, **k: no_features)
    monkeypatch.setattr(mc, "match_pairs", lambda *a, **k: [])
    monkeypatch.setattr(mc, "pair_poses", posed)
    photos = [np.zeros((32, 32, 3), np.uint8)] * 3
    c2w, K = torch.eye(4).repeat(3, 1, 1), torch.full((3, 4), 16.0)
    res = mc.cameras_from_matches(
        photos, [(0.0, 0.0, 32.0, 32.0)] * 3, c2w, K, (32, 32), config=config
    )
    return res, c2w, K


def test_pairs_that_all_disagree_keep_the_input_cameras_and_say_so(monkeypatch):
    """Three pairs whose relative rotations do not close the loop (20° each way, symmetric):
    rotation averaging leaves each 20° off, so every pair is dropped; the input cameras are kept
    with a warning instead of an exception."""
    from scipy.spatial.transform import Rotation

    from rayzer.refine.pair_geometry import PairGeometry

    def rz(deg: float) -> np.ndarray:
        return Rotation.from_euler("z", deg, degrees=True).as_matrix()

    def posed(feats, matched, K, threshold_px, min_matches):
        loop = [((0, 1), rz(20)), ((1, 2), rz(20)), ((0, 2), rz(-20))]
        inl = np.arange(50)
        pairs = [
            PairGeometry(i, j, np.zeros((50, 2), np.int64), inl, R, np.ones(3))
            for (i, j), R in loop
        ]
        return pairs

    res, c2w, K = _on_stubbed_pairs(monkeypatch, posed)
    assert not res.registered.any()
    assert torch.equal(res.c2w, c2w) and torch.equal(res.K, K)
    assert res.report["pairs_dropped_by_rotation_averaging"] == ["0-1", "1-2", "0-2"]
    assert "disagree" in res.report["warning"] and "cameras are kept" in res.report["warning"]


def test_the_focal_search_poses_each_focal_once_and_keeps_the_prior_without_evidence(monkeypatch):
    """13 focals tried, each posed once; when no focal registers anything (no pose anywhere),
    the prior stays, not the first focal tried (0.5x)."""
    import rayzer.refine.matched_cameras as mc

    calls: list[float] = []

    def no_pose(feats, matched, K, threshold_px, min_matches):
        calls.append(K[0])
        return []

    monkeypatch.setattr(mc, "pair_poses", no_pose)
    c = np.array([16.0, 16.0])
    sol, tried = mc._search_focal([], [], 40.0, c, 3, 0, MatchConfig())
    assert len(calls) == len(tried) == 13
    assert sol.start_f == 40.0 and sol.posed == [] and sol.rec is None
    assert [t["registered"] for t in tried] == [0] * 13
    assert [t["chosen"] for t in tried].index(True) == 4  # factor 1.0


def test_the_focal_search_recovers_a_focal_far_from_the_prior(walk):
    """The prior 2.5x too short (the temple ring's case with a tiny model's focal): starting
    focals up to 4x the prior, scored by the bundle adjustment's reprojection error, end near
    the truth. Before (one start at the prior, the focal moving 1.25x per pass) it ended at
    most 1.56x the prior, 38 % short. Three starts keep the test fast (the default has 13)."""
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    true_f = float(K[0, 0]) / 1.1
    K[:, :2] = true_f / 2.5
    cfg = MatchConfig(focal_factors=(1.0, 2.0, 4.0))
    res = cameras_from_matches(
        photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), anchor=2, config=cfg
    )
    assert res.registered.all(), res.report
    # measured: 52.8 px against the true 46.0 (prior 18.4; a forward walk constrains the focal
    # weakly), from the start at 2x the prior; rotations median 0.49°, max 0.72°
    assert 0.8 < res.report["focal_px"] / true_f < 1.3, res.report["focal_search"]
    err = relative_pose_errors(res.c2w.double(), clip.c2w.double())
    assert err["rot_deg"].max() < 2.0
    chosen = [t["factor"] for t in res.report["focal_search"] if t["chosen"]]
    assert chosen == [2.0]


def test_near_planar_pairs_are_left_out_of_the_averaging(monkeypatch):
    """A pair whose matches a homography explains better than its essential matrix (a plane or
    a pure rotation: the rotation may be the wrong one of two) is not averaged: with every pair
    such, nothing is registered and the warning says why."""
    from rayzer.refine.pair_geometry import PairGeometry

    def planar(feats, matched, K, threshold_px, min_matches):
        inl = np.arange(50)
        return [
            PairGeometry(i, j, np.zeros((50, 2), np.int64), inl, np.eye(3), np.ones(3), 1.0, 80)
            for i, j in ((0, 1), (1, 2), (0, 2))
        ]

    res, c2w, K = _on_stubbed_pairs(monkeypatch, planar, MatchConfig(focal_search=False))
    assert not res.registered.any() and torch.equal(res.c2w, c2w) and torch.equal(res.K, K)
    assert res.report["pairs_near_planar"] == ["0-1", "1-2", "0-2"]
    assert "near-planar" in res.report["warning"]
    assert res.report["pair_homography_inliers"] == {"0-1": 80, "1-2": 80, "0-2": 80}


def test_homography_inliers_tell_a_plane_from_a_3d_scene():
    """Points on a plane: a homography explains every match; points spread in depth seen from
    two centres: it explains few."""
    pytest.importorskip("cv2")
    from rayzer.refine.pair_geometry import homography_inliers

    rng = np.random.default_rng(0)
    f, c = 300.0, np.array([160.0, 120.0])

    def views(X):
        R = np.array([[0.98, 0, 0.2], [0, 1, 0], [-0.2, 0, 0.98]])
        R = np.linalg.qr(R)[0] * np.sign(np.diag(np.linalg.qr(R)[1]))
        Xb = X @ R.T + np.array([-0.5, 0.0, 0.0])
        return f * X[:, :2] / X[:, 2:] + c, f * Xb[:, :2] / Xb[:, 2:] + c

    plane = np.c_[rng.uniform(-1, 1, (200, 2)), np.full(200, 4.0)]
    deep = np.c_[rng.uniform(-1, 1, (200, 2)), rng.uniform(2.0, 8.0, 200)]
    assert homography_inliers(*views(plane), 1.5) >= 195
    assert homography_inliers(*views(deep), 1.5) < 60
    assert homography_inliers(np.zeros((3, 2)), np.zeros((3, 2)), 1.5) == 0


def test_the_evidence_flags_many_dropped_pairs_or_no_loop_and_rejects_most_dropped():
    """Weak evidence (a warning, cameras kept): more than a quarter of the pairs dropped by the
    averaging (fox spread's wrong registration: 8 of 20), or no loop of three registered
    views; taken as wrong (the input cameras kept): more than half dropped."""
    import rayzer.refine.matched_cameras as mc

    cfg = MatchConfig()
    figures, weak, wrong = mc._judge(["0-1"], 8, 2, cfg)
    assert not weak and not wrong and figures["pairs_dropped_share"] == 0.125
    figures, weak, wrong = mc._judge(["0-1", "0-2", "1-5"], 8, 2, cfg)
    assert weak == ["3 of 8 matched pairs disagree with the averaged rotations"] and not wrong
    assert figures["weak"]
    _, weak, wrong = mc._judge([], 3, 0, cfg)
    assert weak == ["no three registered views check each other's rotations"] and not wrong
    _, weak, wrong = mc._judge(["0-1", "0-2", "1-5", "2-3", "3-4"], 8, 0, cfg)
    # the rejection names its own reason, not the last weak one (the loop check)
    assert wrong == "5 of 8 matched pairs (62%) disagree with the averaged rotations, more than 50%"
    assert len(weak) == 2


def test_triplets_count_closed_loops_among_registered_views():
    import rayzer.refine.matched_cameras as mc
    from rayzer.refine.pair_geometry import PairGeometry

    def pairs(*ij):
        return [PairGeometry(i, j, np.zeros((0, 2), np.int64)) for i, j in ij]

    reg = np.array([True, True, True, True])
    assert mc._triplets(pairs((0, 1), (1, 2), (0, 2), (2, 3)), reg) == 1
    assert mc._triplets(pairs((0, 1), (1, 2), (2, 3)), reg) == 0
    assert mc._triplets(pairs((0, 1), (1, 2), (0, 2)), np.array([True, True, False, True])) == 0


def test_per_view_depth_scales_use_the_reference_view_when_the_anchor_has_no_match(walk):
    """The anchor (a noise photo) matches nothing, so another view holds the gauge: of one
    depth scale per view, that reference view's sets the scale, not the anchor's."""
    pytest.importorskip("cv2")
    clip, photos = walk
    noise = np.random.default_rng(0).integers(0, 256, photos[0].shape, dtype=np.uint8)
    photos = [*photos[:4], noise]
    c2w, K = _prior(clip, 6)
    c2w, K = c2w[:5], K[:5]
    cfg = MatchConfig(focal_search=False, ba_max_evals=5)

    def run(scales):
        return cameras_from_matches(
            photos, [BOX] * 5, c2w, K, (MODEL, MODEL), anchor=4, depth_scale=scales, config=cfg
        )

    one = run([1.0, 1.0, 1.0, 1.0, 7.0])
    ref = one.report["reference_view"]
    assert ref != 4 and one.registered[:4].all() and not one.registered[4]
    assert one.report["depth_scale"] == 1.0
    three = run([3.0 if k == ref else 1.0 for k in range(4)] + [7.0])
    assert three.report["depth_scale"] == 3.0
    assert torch.allclose(three.c2w[:4, :3, 3], 3 * one.c2w[:4, :3, 3], atol=1e-4)
    with pytest.raises(ValueError, match="depth_scale: expected one value or 5, got 2"):
        run([1.0, 2.0])


def test_two_photos_keep_the_input_cameras_without_matching(monkeypatch):
    """Fewer photos than ``min_views`` (3) can never be registered: said at once, no SIFT run."""
    pytest.importorskip("cv2")
    import rayzer.refine.matched_cameras as mc

    def no_sift(*args, **kwargs):
        raise AssertionError("SIFT ran on 2 photos")

    monkeypatch.setattr(mc, "detect_features", no_sift)
    photos = [np.zeros((32, 32, 3), np.uint8)] * 2
    c2w, K = torch.eye(4).repeat(2, 1, 1), torch.full((2, 4), 16.0)
    res = mc.cameras_from_matches(photos, [(0.0, 0.0, 32.0, 32.0)] * 2, c2w, K, (32, 32))
    assert not res.registered.any() and torch.equal(res.c2w, c2w) and torch.equal(res.K, K)
    assert res.report["warning"].startswith("2 photos: cameras from matches need at least 3")
    assert res.report["pairs_kept"] == 0


def test_the_reference_is_in_the_largest_group_of_matched_views():
    """The canonical view (0) matched only view 1, views 2-4 match each other: the reference
    is taken in the larger group (the temple ring 0-7 with NAS3R's canonical view 0 registered
    nothing before: only the canonical view's group of 2 was reconstructed)."""
    import rayzer.refine.matched_cameras as mc
    from rayzer.refine.pair_geometry import PairGeometry

    def pair(i, j, n):
        return PairGeometry(i, j, np.zeros((n, 2), np.int64), np.arange(n))

    kept = [pair(0, 1, 300), pair(2, 3, 50), pair(3, 4, 60), pair(2, 4, 40)]
    assert mc._choose_reference(kept, 0) == 3  # most inliers in the group {2, 3, 4}
    assert mc._choose_reference(kept, 4) == 4  # the anchor, in the largest group
    assert mc._choose_reference(kept[:1], 0) == 0


def test_the_evidence_verdicts_reach_the_output(walk):
    """The judge's verdicts are wired into the result: a weak registration is used with a
    warning naming the problem; one taken as wrong keeps the input cameras and says why. The
    thresholds are set below any share (-1) so the synthetic walk's clean registration (no pair
    dropped) triggers them."""
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))

    def run(**thresholds):
        cfg = MatchConfig(focal_search=False, ba_max_evals=5, **thresholds)
        return cameras_from_matches(photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), config=cfg)

    weak = run(max_dropped_share=-1.0)
    assert weak.registered.all() and not torch.equal(weak.c2w, c2w)
    assert weak.report["evidence"]["weak"] and weak.report["num_registered"] == len(photos)
    assert weak.report["warning"].startswith("weak evidence for the registration (0 of ")
    assert "the cameras may be wrong" in weak.report["warning"]

    wrong = run(max_dropped_share=-1.0, reject_dropped_share=-1.0)
    assert not wrong.registered.any() and wrong.report["num_registered"] == 0
    assert torch.equal(wrong.c2w, c2w) and torch.equal(wrong.K, K)
    assert wrong.report["warning"].startswith("the registration is likely wrong (0 of ")
    assert wrong.report["warning"].endswith("the model's cameras are kept")


def test_the_chosen_start_is_solved_again_with_every_track(walk):
    """The focal search's cheap reconstructions keep at most ``search_max_tracks`` tracks; the
    chosen start is then solved again with all of them, so the output rests on every track
    (its points outnumber the cap)."""
    pytest.importorskip("cv2")
    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    cfg = MatchConfig(focal_factors=(1.0,), search_max_tracks=30, ba_max_evals=5)
    res = cameras_from_matches(photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), config=cfg)
    assert res.registered.all()
    assert [t["chosen"] for t in res.report["focal_search"]] == [True]
    assert res.report["points"] > 3 * cfg.search_max_tracks, res.report["points"]


def _with_a_chain(monkeypatch, real: int, chain: list[int]):
    """``pair_poses`` keeps the true pairs among views ``0..real-1`` and adds a chain of pairs
    along ``chain`` whose matches share no keypoint from one pair to the next (each pair's
    tracks end there: no view beyond the first pair can be placed), with consistent rotations
    (none is dropped by the averaging)."""
    import rayzer.refine.matched_cameras as mc
    from rayzer.refine.pair_geometry import PairGeometry

    true_poses = mc.pair_poses

    def posed(feats, matched, K, threshold_px, min_matches):
        pairs = [p for p in true_poses(feats, matched, K, threshold_px, min_matches)]
        pairs = [p for p in pairs if p.j < real]
        n = 30
        for s, (i, j) in enumerate(itertools.pairwise(chain)):
            m = np.stack([np.arange(n) + n * s, np.arange(n) + n * (s + 1)], 1)
            assert m.max() < min(len(feats[i].uv), len(feats[j].uv))
            pairs.append(PairGeometry(i, j, m, np.arange(n), np.eye(3), np.array([1.0, 0, 0]), 5.0))
        return pairs

    monkeypatch.setattr(mc, "pair_poses", posed)


def test_a_larger_group_that_cannot_be_registered_gives_way_to_one_that_can(walk, monkeypatch):
    """Views 3-6 joined by a chain of pairs whose tracks do not carry on (lego 92-99's
    {0, 1, 6, 7} at some starting focals) outnumber views 0-2 that truly match: the larger
    group registers 2 views only, so the smaller one is registered instead. Before, only the
    largest group was tried and nothing was registered (so the focal search could not pick
    those starts: the NAS3R prior's lego 92-99 kept its own start, 2.54° off)."""
    pytest.importorskip("cv2")
    clip, photos = walk
    photos = [*photos, photos[5]]
    c2w, K = _prior(clip, 6)
    c2w, K = torch.cat([c2w, c2w[5:]]), torch.cat([K, K[5:]])
    _with_a_chain(monkeypatch, 3, [3, 4, 5, 6])
    # the walk's near-planar pairs are kept: the groups are the subject here, not that test
    cfg = MatchConfig(focal_search=False, ba_max_evals=5, max_homography_ratio=None)
    res = cameras_from_matches(photos, [BOX] * 7, c2w, K, (MODEL, MODEL), anchor=4, config=cfg)
    assert res.registered.tolist() == [True] * 3 + [False] * 4, res.report
    assert res.report["reference_view"] in (0, 1, 2)
    err = relative_pose_errors(res.c2w[:3].double(), clip.c2w[:3].double())
    assert err["rot_deg"].max() < 2.0


def test_the_dropped_share_counts_only_the_pairs_the_averaging_checked(walk, monkeypatch):
    """The averaging compares only the pairs of the registered group; a chain of two pairs
    among views 4-6, never compared with anything, is not in the evidence's denominator
    (before, it was: 'pairs considered' counted every matched pair, so another group's pairs
    diluted the share of dropped ones)."""
    pytest.importorskip("cv2")
    clip, photos = walk
    photos = [*photos, photos[5]]
    c2w, K = _prior(clip, 6)
    c2w, K = torch.cat([c2w, c2w[5:]]), torch.cat([K, K[5:]])
    _with_a_chain(monkeypatch, 4, [4, 5, 6])
    # the walk's near-planar pairs are kept: the groups are the subject here, not that test
    cfg = MatchConfig(focal_search=False, ba_max_evals=5, max_homography_ratio=None)
    res = cameras_from_matches(photos, [BOX] * 7, c2w, K, (MODEL, MODEL), anchor=1, config=cfg)
    rep = res.report
    assert res.registered.tolist() == [True] * 4 + [False] * 3, rep
    real = [
        k
        for k, n in rep["pair_inliers"].items()
        if n >= cfg.min_inliers and k not in rep["pairs_near_planar"] and int(k[-1]) < 4
    ]
    assert len(real) >= 3, rep["pair_inliers"]
    assert rep["evidence"]["pairs_considered"] == len(real)
    assert rep["pairs_kept"] == len(real) - len(rep["pairs_dropped_by_rotation_averaging"])


def _stub_pair(i: int, j: int, inliers: int = 30):
    """A kept pair ``(i, j)`` with ``inliers`` pose inliers and no geometry (stubbed solves)."""
    from rayzer.refine.pair_geometry import PairGeometry

    return PairGeometry(i, j, np.zeros((inliers, 2), np.int64), np.arange(inliers))


def _stub_solution(f: float, kept: list, score: float, v: int = 4):
    """A reconstruction at start ``f`` registering the views of ``kept`` (none dropped) with
    reprojection error ``score``."""
    import rayzer.refine.matched_cameras as mc

    s = mc._Solution(f, [], considered=len(kept), kept=kept, score_px=score)
    s.registered = np.array([k in {p.i for p in kept} | {p.j for p in kept} for k in range(v)])
    return s


@pytest.mark.parametrize("tree_start", [80.0, 40.0], ids=["another-start", "the-prior"])
def test_the_focal_search_prefers_checked_rotations_to_a_lower_error(monkeypatch, tree_start):
    """Two starts register 3 views: one on a loop of three pairs (its rotations checked) at
    0.28 px, one on a tree of two pairs (nothing checks them) at 0.19 px; a tree fits its
    tracks more easily, so its lower error does not make it better, whether the tree is another
    start or the prior's own (which otherwise stays unless beaten). Before, the lowest error
    won (temple ring 0-7 with the NAS3R prior: a start whose 3-view loop failed fell back to a
    tree of views 2-4 at 0.19 px and was chosen, 1.98° off against 0.99° on the loop)."""
    import rayzer.refine.matched_cameras as mc

    loop = [_stub_pair(1, 2), _stub_pair(2, 3), _stub_pair(1, 3)]
    tree = [_stub_pair(0, 1), _stub_pair(1, 2)]
    by_start = {
        20.0: _stub_solution(20.0, loop, 0.28),
        tree_start: _stub_solution(tree_start, tree, 0.19),
    }
    monkeypatch.setattr(mc, "pair_poses", lambda *a: [])
    monkeypatch.setattr(
        mc, "_solve", lambda feats, posed, f, *a: by_start.get(f, mc._Solution(f, []))
    )
    cfg = MatchConfig(focal_factors=(0.5, 1.0, 2.0))
    sol, tried = mc._search_focal([], [], 40.0, np.array([16.0, 16.0]), 4, 0, cfg)
    assert sol is by_start[20.0]
    assert [(t["factor"], t["checked"], t["chosen"]) for t in tried] == [
        (0.5, True, True),
        (1.0, False, False),
        (2.0, False, False),
    ]


def test_of_groups_registering_as_many_views_the_checked_one_is_kept(monkeypatch):
    """Two groups of views register 3 views each: views 0-2 joined by a tree of two strong
    pairs (ranked first: more inliers) and views 4-6 closing a loop of three weaker ones. The
    loop's rotations are checked, so it is kept, as in the focal search (:func:`_checked`)."""
    import rayzer.refine.matched_cameras as mc

    tree = [_stub_pair(0, 1, 100), _stub_pair(1, 2, 100)]
    loop = [_stub_pair(4, 5), _stub_pair(5, 6), _stub_pair(4, 6)]
    solved = []

    def solve_group(sol, pairs, ref, *args):
        solved.append(sorted({k for p in pairs for k in (p.i, p.j)}))
        return _stub_solution(sol.start_f, pairs, 0.19 if pairs[0].i == 0 else 0.28, v=7)

    monkeypatch.setattr(mc, "_solve_group", solve_group)
    cfg = MatchConfig(max_homography_ratio=None)
    sol = mc._solve([], [*tree, *loop], 40.0, np.array([16.0, 16.0]), 7, 0, cfg)
    assert solved == [[0, 1, 2], [4, 5, 6]]  # both tried, the tree's group first
    assert sol.registered.tolist() == [False] * 4 + [True] * 3


@pytest.mark.parametrize("checked", [1, 2], ids=["1-of-3", "2-of-3"])
def test_a_loop_that_closes_at_few_starting_focals_is_weak_evidence(walk, monkeypatch, checked):
    """The focal search ranks starts whose rotations close a loop first, so the chosen start's
    loop checks nothing when it closes at few of the starts registering as many views (lego
    31-38 with the E-RayZer prior: 1 of 3, 13° off at half the true focal, reported as sound).
    Fewer than half is weak evidence (a warning; the cameras are still used); half or more is
    not. The walk's own search is replaced by one start and the ``tried`` entries of three."""
    pytest.importorskip("cv2")
    import rayzer.refine.matched_cameras as mc

    clip, photos = walk
    c2w, K = _prior(clip, len(photos))
    search = mc._search_focal

    def three_starts(*args):
        sol, _ = search(*args)  # focal_search off: the prior's start only
        flags = [True] + [k < checked for k in range(1, 3)]
        return sol, [
            {"factor": a, "registered": len(photos), "checked": c, "chosen": a == 0.5}
            for a, c in zip((0.5, 1.0, 2.0), flags, strict=True)
        ] + [{"factor": 4.0, "registered": 0, "checked": False, "chosen": False}]

    monkeypatch.setattr(mc, "_search_focal", three_starts)
    cfg = MatchConfig(focal_search=False, ba_max_evals=5)
    res = cameras_from_matches(photos, [BOX] * len(photos), c2w, K, (MODEL, MODEL), config=cfg)
    assert res.registered.all() and res.report["evidence"]["triplets"] > 0
    assert res.report["evidence"]["starts_checked"] == (checked, 3)
    warning = res.report.get("warning", "")
    if checked == 1:
        assert res.report["evidence"]["weak"]
        assert "checked loop at only 1 of the 3 starting focals" in warning, warning
    else:
        assert not res.report["evidence"]["weak"] and "starting focals" not in warning, warning


class _Rec:
    """A reconstruction stand-in: only the focal its bundle adjustment reached."""

    def __init__(self, f: float) -> None:
        self.f = f


@pytest.mark.parametrize(
    ("start", "again_views", "expect"),
    [(50.0, 4, "again"), (78.0, 4, "untouched"), (50.0, 3, "first")],
    ids=["far-start-reposed", "near-start-untouched", "fewer-views-first-kept"],
)
def test_pairs_are_posed_again_at_the_focal_the_bundle_adjustment_reached(
    monkeypatch, start, again_views, expect
):
    """The pairs' essential matrices and near-planar test are made at the starting focal; when
    the bundle adjustment ends far from it (fox 20-27: a start at 50.5 px ending at 79.5, 4 wide
    pairs left out as near-planar at the start, 0.24° against 0.16° once posed again), the
    pairs are posed again at the reached focal and the reconstruction solved from them. Kept
    when it registers as many views (with its rotations checked); a start within
    ``repose_factor`` of the reached focal is left as it is."""
    import rayzer.refine.matched_cameras as mc

    loop4 = [_stub_pair(0, 1), _stub_pair(1, 2), _stub_pair(0, 2), _stub_pair(2, 3)]
    first = _stub_solution(start, loop4, 0.4)
    first.rec = _Rec(80.0)
    again = _stub_solution(80.0, loop4[: 3 if again_views == 3 else 4], 0.45)
    again.rec = _Rec(81.0)
    posed_at: list[float] = []

    def pair_poses(feats, matched, K, threshold_px, min_matches):
        posed_at.append(K[0])
        return []

    monkeypatch.setattr(mc, "pair_poses", pair_poses)
    monkeypatch.setattr(mc, "_solve", lambda feats, posed, f, *a: again)
    sol, info = mc._repose([], [], first, np.array([16.0, 16.0]), 4, 0, MatchConfig())
    if expect == "untouched":
        assert sol is first and info is None and posed_at == []
        return
    assert posed_at == [80.0]  # the focal the first bundle adjustment reached
    assert info["start_px"] == start and info["reached_px"] == 80.0
    assert info["kept"] == (expect == "again")
    assert sol is (again if expect == "again" else first)
    off, _ = mc._repose(
        [], [], first, np.array([16.0, 16.0]), 4, 0, MatchConfig(repose_factor=None)
    )
    assert off is first
    failed = _stub_solution(start, loop4, 0.4)  # a failure: fewer than min_views registered
    failed.rec, failed.registered[:] = _Rec(80.0), False
    assert mc._repose([], [], failed, np.array([16.0, 16.0]), 4, 0, MatchConfig()) == (failed, None)


@pytest.mark.parametrize(
    ("again_pairs", "kept"),
    [([(0, 1), (1, 2), (2, 3)], True), ([(0, 1), (1, 2)], False)],
    ids=["more-views-unchecked-kept", "as-many-views-unchecked-not-kept"],
)
def test_the_repose_is_kept_as_the_focal_search_ranks(monkeypatch, again_pairs, kept):
    """The re-posed reconstruction replaces the first unless the focal search would rank it
    lower (:func:`_rank`): more registered views first, then checked rotations. The first
    registers views 0-2 on a checked loop; a tree over 4 views is kept, a tree over the same 3
    is not."""
    import rayzer.refine.matched_cameras as mc

    first = _stub_solution(50.0, [_stub_pair(0, 1), _stub_pair(1, 2), _stub_pair(0, 2)], 0.4)
    first.rec = _Rec(80.0)
    again = _stub_solution(80.0, [_stub_pair(i, j) for i, j in again_pairs], 0.3)
    again.rec = _Rec(81.0)
    assert mc._checked(first, MatchConfig()) and not mc._checked(again, MatchConfig())
    monkeypatch.setattr(mc, "pair_poses", lambda *a: [])
    monkeypatch.setattr(mc, "_solve", lambda *a: again)
    sol, info = mc._repose([], [], first, np.array([16.0, 16.0]), 4, 0, MatchConfig())
    assert info["kept"] is kept and sol is (again if kept else first)


def _orbit_reconstruction(focal_factor: float, seed: int = 0):
    """8 views on a 20° arc around 400 points at depth ~6 (focal 360 px, 0.2 px noise), every
    point seen by every view, cameras exact, the focal ``focal_factor`` times the truth."""
    from types import SimpleNamespace

    from scipy.spatial.transform import Rotation

    import rayzer.refine.matched_cameras as mc
    from rayzer.refine.pair_geometry import ViewFeatures

    rng = np.random.default_rng(seed)
    n, v, f, c = 400, 8, 360.0, np.array([144.0, 256.0])
    X = rng.normal(size=(n, 3)) * [1.0, 1.0, 0.5] + [0.0, 0.0, 6.0]
    R, t, feats = [], [], []
    for k in range(v):
        a = np.radians(20.0 * (k / (v - 1) - 0.5))
        Rk = Rotation.from_rotvec([0.0, -a, 0.0]).as_matrix()
        tk = -Rk @ np.array([6 * np.sin(a), 0.0, 6 - 6 * np.cos(a)])
        Xc = X @ Rk.T + tk
        uv = f * Xc[:, :2] / Xc[:, 2:] + c + rng.normal(scale=0.2, size=(n, 2))
        R.append(Rk)
        t.append(tk)
        feats.append(ViewFeatures(uv=uv, desc=np.zeros((n, 128), np.float32)))

    tracks = SimpleNamespace(obs=[[(k, i) for k in range(v)] for i in range(n)])
    rec = mc._Reconstruction(feats, tracks, f * focal_factor, c, np.stack(R))
    rec.t = dict(enumerate(t))
    rec.triangulate(8.0)
    return rec, f


@pytest.mark.parametrize("tol", [None, 1e-10])
def test_the_bundle_adjustment_converges_with_tight_lsmr_solves(tol):
    """ba_lsmr_tol: SciPy's default LSMR tolerance (1e-6) makes inexact steps along the
    focal-depth direction, so where the focal ends depends on where it started (fox 20-27: 79.5
    -> 81.0 px and 81.5 -> 81.5); at 1e-10 the adjustment converges to one focal from either
    side. Measured here: default 0.9741 / 1.0210 of the truth from 0.95 / 1.05, tight 0.9880 /
    0.9880 (the minimum of this noisy problem)."""
    from dataclasses import replace

    import rayzer.refine.matched_cameras as mc

    cfg = replace(MatchConfig(), ba_lsmr_tol=tol, ba_max_evals=30)
    ends = []
    for start in (0.95, 1.05):
        rec, f = _orbit_reconstruction(start)
        mc._bundle_adjust(rec, 0, cfg, None)
        ends.append(rec.f / f)
    if tol is None:  # the crawl this option fixes: if it stops, the default may change
        assert ends[1] - ends[0] > 0.02, ends
    else:
        assert abs(ends[1] - ends[0]) < 1e-3, ends
        assert 0.97 < ends[0] < 1.03, ends
