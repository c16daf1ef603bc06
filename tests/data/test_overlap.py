"""Per-scene overlap statistics: geometric co-visibility on constructed cameras, the label-free
image figure against it on synthetic clips, the curve and its cache file."""

import math

import pytest
import torch
from scipy.stats import spearmanr

from rayzer.data.overlap import (
    OVERLAP_FILE,
    OverlapCurve,
    curve_from_pairs,
    geometric_overlap,
    image_overlap,
    read_overlap_file,
    write_overlap_file,
)
from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import look_at

W = 32


def _plane_clip(offsets_x: list[float], z: float = 2.0):
    """Fronto-parallel plane at depth ``z`` seen by cameras translated along x; fx = W, so each
    view's footprint on the plane is ``W · z / fx = z`` units wide."""
    f = len(offsets_x)
    c2w = torch.eye(4).repeat(f, 1, 1)
    c2w[:, 0, 3] = torch.tensor(offsets_x)
    K = torch.tensor([W, W, W / 2, W / 2], dtype=torch.float32).repeat(f, 1)
    depth = torch.full((f, W, W), z)
    return depth, c2w, K


def test_static_camera_overlaps_fully():
    depth, c2w, K = _plane_clip([0.0, 0.0, 0.0])
    curve = geometric_overlap(depth, c2w, K)
    assert curve.overlap == pytest.approx((1.0, 1.0, 1.0))


def test_sideways_shift_of_half_a_footprint_overlaps_half():
    depth, c2w, K = _plane_clip([0.0, 1.0, 2.0])  # footprint 2 units: shifts of 1/2 and 1
    curve = geometric_overlap(depth, c2w, K)
    assert curve.overlap[1] == pytest.approx(0.5, abs=1 / W)
    assert curve.overlap[2] == pytest.approx(0.0, abs=1 / W)


def test_opposite_views_do_not_overlap():
    depth = torch.full((2, W, W), 2.0)
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # turned 180° about y
    K = torch.tensor([W, W, W / 2, W / 2], dtype=torch.float32).repeat(2, 1)
    assert geometric_overlap(depth, c2w, K).overlap[1] == pytest.approx(0.0)


def test_occluded_points_do_not_count():
    depth, c2w, K = _plane_clip([0.0, 0.0])
    seen = geometric_overlap(depth, c2w, K).overlap[1]
    depth[1, :, : W // 2] = 1.0  # an occluder in front of the left half of view 1
    hidden = geometric_overlap(depth, c2w, K).overlap[1]
    assert seen == pytest.approx(1.0)
    # view 0's left half is hidden from view 1; view 1's occluder pixels land in front of
    # view 0's plane, so they count as visible from view 0: mean of (0.5, 1.0)
    assert hidden == pytest.approx(0.75, abs=1 / W)


def test_empty_pixels_are_ignored():
    depth, c2w, K = _plane_clip([0.0, 0.0])
    depth[:, : W // 2] = math.inf  # sky
    assert geometric_overlap(depth, c2w, K).overlap[1] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def clips():
    return [
        render_clip(seed, SynthConfig(family=family, frames=16, height=64, width=64))
        for family, seed in (("orbit", 11), ("orbit", 12), ("walk", 11))
    ]


def test_synthetic_geometric_overlap_falls_with_the_gap(clips):
    for clip in clips:
        curve = geometric_overlap(clip.depth, clip.c2w, clip.K)
        assert curve.method == "geometric" and curve.num_frames == 16
        assert curve.overlap[0] == 1.0 and curve.overlap[1] > 0.6
        assert curve.overlap[-1] < curve.overlap[1] - 0.1  # the wide pairs see less


def test_label_free_overlap_ranks_pairs_like_geometry(clips):
    """Over the frame pairs of three held-out clips the image figure and the geometric one
    agree in rank (the settings were chosen on other seeds)."""
    image, geometric = [], []
    for clip in clips:
        g = geometric_overlap(clip.depth, clip.c2w, clip.K, max_gap=15)
        i = image_overlap(clip.images, max_gap=15)
        # per-gap curves of each clip: 15 comparable points per clip
        geometric += list(g.overlap[1:])
        image += list(i.overlap[1:])
        assert i.method == "image" and i.overlap[1] > i.overlap[-1]
    rho = spearmanr(image, geometric).statistic
    assert rho >= 0.7, rho


def test_curve_is_a_running_minimum_of_the_pair_means():
    pairs = torch.full((4, 4), float("nan"))
    for i, j, v in ((0, 1, 0.9), (1, 2, 0.7), (2, 3, 0.8), (0, 2, 0.8), (1, 3, 0.4), (0, 3, 0.5)):
        pairs[i, j] = pairs[j, i] = v
    curve = curve_from_pairs(pairs, "image")
    assert curve.overlap == pytest.approx((1.0, 0.8, 0.6, 0.5))  # gap 2: mean(0.8, 0.4)
    assert curve.widest_gap(0.75) == 1 and curve.widest_gap(0.5) == 3
    assert curve.widest_gap(0.99) == 0


def test_curve_validation_and_file_round_trip(tmp_path):
    curve = OverlapCurve((1.0, 0.8, 0.5), "geometric", 5)
    path = write_overlap_file(tmp_path, curve)
    assert path.name == OVERLAP_FILE
    assert read_overlap_file(tmp_path) == curve
    assert read_overlap_file(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="non-increasing"):
        OverlapCurve((1.0, 0.5, 0.8), "geometric", 5)
    with pytest.raises(ValueError, match="method"):
        OverlapCurve((1.0,), "magic", 5)
    (tmp_path / OVERLAP_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=OVERLAP_FILE):
        read_overlap_file(tmp_path)
    (tmp_path / OVERLAP_FILE).write_text(
        '{"overlap": [1.0, 2.0], "method": "image", "num_frames": 3}'
    )
    with pytest.raises(ValueError, match="overlap values"):
        read_overlap_file(tmp_path)


def test_look_at_orbit_pair_has_partial_overlap():
    """Two cameras on a circle looking at the centre of a plane: the overlap is between the
    static and the disjoint cases, and symmetric in the order of the frames."""
    eye0, eye1 = torch.tensor([0.0, 0.0, -2.0]), torch.tensor([1.0, 0.0, -1.8])
    c2w = torch.stack(
        [look_at(e, torch.zeros(3), torch.tensor([0.0, -1.0, 0.0])) for e in (eye0, eye1)]
    )
    K = torch.tensor([W, W, W / 2, W / 2], dtype=torch.float32).repeat(2, 1)
    # depth of the plane z_world = 0 seen from each camera, ray by ray
    from rayzer.geometry import camera_rays

    o, d = camera_rays(c2w, K, W, W, normalize_dirs=False)
    t = -o[..., 2] / d[..., 2]
    depth = t  # camera-frame z of the hit (d has unit camera-frame z)
    curve = geometric_overlap(depth, c2w, K)
    flipped = geometric_overlap(depth.flip(0), c2w.flip(0), K)
    assert 0.2 < curve.overlap[1] < 0.95
    assert curve.overlap[1] == pytest.approx(flipped.overlap[1], abs=1e-6)
