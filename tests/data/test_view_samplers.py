"""NAS3R's frame-gap and E-RayZer's visual-overlap curricula as view samplers."""

import pytest
import torch

from rayzer.data.overlap import OverlapCurve
from rayzer.data.view_samplers import (
    FrameGapCurriculum,
    OverlapCurriculum,
    sample_views_between,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("vi", "vt"), [(2, 1), (2, 3), (3, 2), (4, 4)])
def test_targets_lie_between_the_context_ends(vi, vt):
    gen = _gen()
    for _ in range(50):
        s = sample_views_between(40, vi, vt, 12, gen)
        frames = s.frames.tolist()
        assert frames == sorted(set(frames)) and len(frames) == vi + vt
        assert frames[-1] - frames[0] == 11 and s.window == (frames[0], frames[-1])
        inputs, targets = s.input_index.tolist(), s.target_index.tolist()
        assert sorted(inputs + targets) == list(range(vi + vt))
        assert 0 in inputs and vi + vt - 1 in inputs  # both ends are context
        assert all(0 < t < vi + vt - 1 for t in targets)


def test_between_rejects_impossible_samples():
    with pytest.raises(ValueError, match=">= 2 inputs"):
        sample_views_between(10, 1, 2, 5, _gen())
    with pytest.raises(ValueError, match="span"):
        sample_views_between(10, 2, 3, 4, _gen())
    with pytest.raises(ValueError, match="span"):
        sample_views_between(10, 2, 1, 11, _gen())


def test_frame_gap_schedule_widens_from_the_start_gap():
    cur = FrameGapCurriculum(gap_start=10, gap_end_min=25, gap_end_max=90, curriculum_steps=100)
    assert cur.gap_range(0) == (10, 10)
    assert cur.gap_range(50) == (18, 50)
    assert cur.gap_range(100) == cur.gap_range(10_000) == (25, 90)
    gen = _gen(1)
    early = [cur.sample(200, 2, 1, 0, gen) for _ in range(20)]
    assert {s.window[1] - s.window[0] for s in early} == {10}
    late = [cur.sample(200, 2, 1, 100, gen).window for _ in range(200)]
    gaps = [b - a for a, b in late]
    assert min(gaps) >= 25 and max(gaps) <= 90 and max(gaps) - min(gaps) > 40
    # a short clip caps the gap; the views still fit
    short = cur.sample(8, 2, 3, 100, gen)
    assert short.window[1] - short.window[0] == 7


def test_frame_gap_validation():
    with pytest.raises(ValueError, match="frame-gap"):
        FrameGapCurriculum(gap_start=0)
    with pytest.raises(ValueError, match="frame-gap"):
        FrameGapCurriculum(gap_start=10, gap_end_min=50, gap_end_max=40)


CURVE = OverlapCurve((1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4), "geometric", 8)


def test_overlap_schedule_and_the_window_it_picks():
    cur = OverlapCurriculum(lo_start=1.0, lo_end=0.5, curriculum_steps=100)
    assert cur.low(0) == 1.0 and cur.low(50) == pytest.approx(0.75) and cur.low(500) == 0.5
    # less overlap → a wider window, never narrower than the sample's views
    assert cur.span_for(CURVE, 0.95, 2) == 2 and cur.span_for(CURVE, 0.95, 4) == 4
    assert cur.span_for(CURVE, 0.7, 2) == 4
    assert cur.span_for(CURVE, 0.5, 2) == 6
    assert cur.span_for(CURVE, 0.4, 2) == 8
    # a clip whose widest window overlaps more than asked (+ tolerance) cannot make the sample
    assert cur.span_for(CURVE, 0.3, 2) is None
    assert cur.span_for(CURVE, 0.36, 2) == 8  # within the tolerance


def test_overlap_samples_follow_the_schedule_and_are_reproducible():
    cur = OverlapCurriculum(lo_start=1.0, lo_end=0.5, curriculum_steps=100)
    early = [cur.sample(CURVE, 2, 2, 0, _gen(i)) for i in range(20)]
    assert all(s is not None and s.window[1] - s.window[0] == 3 for s in early)  # V = 4
    late = [cur.sample(CURVE, 2, 2, 100, _gen(i)) for i in range(200)]
    widths = [s.window[1] - s.window[0] + 1 for s in late if s is not None]
    # overlap in [0.5, 1]: a target in [0.5, 0.6) picks gap 4 (overlap 0.6), so windows of 4–5
    assert max(widths) == 5 and min(widths) == 4
    a, b = cur.sample(CURVE, 2, 2, 60, _gen(7)), cur.sample(CURVE, 2, 2, 60, _gen(7))
    assert torch.equal(a.frames, b.frames) and torch.equal(a.input_index, b.input_index)
    flat = OverlapCurve((1.0, 0.99, 0.98), "image", 3)  # a static clip: no low-overlap sample
    draws = [cur.sample(flat, 1, 1, 100, _gen(i)) for i in range(40)]
    assert sum(d is None for d in draws) > 20  # every target below 0.93 is skipped


def test_overlap_validation():
    with pytest.raises(ValueError, match="overlap bounds"):
        OverlapCurriculum(lo_end=1.5)
