"""refine_with_report keeps the input cameras when the leave-one-out PSNR falls, even though
the reprojection PSNR (the objective) rose, and says so in the report and a warning."""

from __future__ import annotations

import json
import logging

import pytest
import torch

import rayzer.refine.report as report_module
from rayzer.refine import HeldOutFigure, RefineResult, refine_with_report

V, H, W = 4, 8, 8


def _inputs() -> tuple[torch.Tensor, ...]:
    images = torch.rand(V, 3, H, W, generator=torch.Generator().manual_seed(0))
    c2w = torch.eye(4).repeat(V, 1, 1)
    c2w[:, 0, 3] = torch.arange(V) * 0.1
    K = torch.tensor([[8.0, 8.0, 4.0, 4.0]]).repeat(V, 1)
    return images, c2w, K, torch.full((V, H, W), 2.0)


@pytest.fixture
def refined_by(monkeypatch):
    """Stub the refinement (cameras shifted, reprojection 25.09 -> 25.59 dB) and the
    leave-one-out figure (given per test); returns the refined cameras."""
    _, c2w, K, _ = _inputs()
    new_c2w = c2w.clone()
    new_c2w[:, 1, 3] += 0.05
    new_K = K * 1.02

    def refine(images, c2w, K, depth, *, config=None, anchor=None, held=None):
        result = RefineResult(new_c2w, new_K, depth, 25.09, 25.59, 0.9, 0.9)
        result.reached_c2w, result.reached_K = new_c2w, new_K
        return result

    def set_held_out(before: float, after: float) -> None:
        def held_out(images, c2w, K, depth, view, *, config=None, anchor=None):
            return HeldOutFigure(view, before, after, 0.9, 0.9, refine(images, c2w, K, depth))

        monkeypatch.setattr(report_module, "held_out_psnr", held_out)

    monkeypatch.setattr(report_module, "refine_cameras", refine)
    return new_c2w, new_K, set_held_out


def test_a_falling_leave_one_out_psnr_keeps_the_input_cameras(refined_by, caplog):
    images, c2w, K, depth = _inputs()
    _, _, set_held_out = refined_by
    set_held_out(23.468, 23.318)
    with caplog.at_level(logging.WARNING, logger="rayzer.refine"):
        got_c2w, got_K, report = refine_with_report(images, c2w, K, depth, 5)
    torch.testing.assert_close(got_c2w, c2w)
    torch.testing.assert_close(got_K, K)
    assert report["cameras"] == "input"
    assert report["stopped"] is None  # the refinement itself did not diverge
    assert "leave-one-out PSNR of view 3 fell (23.468 -> 23.318 dB)" in report["rejected"]
    assert "input cameras are kept" in report["rejected"]
    assert any("leave-one-out PSNR" in r.getMessage() for r in caplog.records)
    json.dumps(report, allow_nan=False)


def test_on_reached_gets_the_rejected_refinements_cameras(refined_by):
    """The rejected refinement's own cameras reach ``on_reached`` (so the benchmark can score
    what the leave-one-out check threw away) while the input ones are returned."""
    images, c2w, K, depth = _inputs()
    new_c2w, new_K, set_held_out = refined_by
    set_held_out(23.468, 23.318)
    seen = []
    got_c2w, _, report = refine_with_report(
        images, c2w, K, depth, 5, on_reached=lambda a, b: seen.append((a, b))
    )
    assert report["cameras"] == "input" and torch.equal(got_c2w, c2w)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0][0], new_c2w)
    torch.testing.assert_close(seen[0][1], new_K)


def test_a_rising_leave_one_out_psnr_keeps_the_refined_cameras(refined_by):
    images, c2w, K, depth = _inputs()
    new_c2w, new_K, set_held_out = refined_by
    set_held_out(23.318, 23.468)
    got_c2w, got_K, report = refine_with_report(images, c2w, K, depth, 5)
    torch.testing.assert_close(got_c2w, new_c2w)
    torch.testing.assert_close(got_K, new_K)
    assert report["cameras"] == "refined" and report["rejected"] is None


def test_without_the_leave_one_out_figure_the_refined_cameras_are_kept(refined_by):
    images, c2w, K, depth = _inputs()
    new_c2w, _, _ = refined_by
    got_c2w, _, report = refine_with_report(images, c2w, K, depth, 5, held_out=False)
    torch.testing.assert_close(got_c2w, new_c2w)
    assert report["cameras"] == "refined" and "held_out" not in report


def test_no_usable_depth_keeps_the_input_cameras_instead_of_failing(caplog):
    """Every pixel without a usable depth (e.g. all nearly transparent, masked to 0, or NaN):
    the refinement cannot start; the input cameras are returned and the report says why,
    instead of an error that would lose the caller's whole run."""
    images, c2w, K, depth = _inputs()
    for unusable in (torch.zeros_like(depth), torch.full_like(depth, float("nan"))):
        with caplog.at_level(logging.WARNING, logger=report_module.log.name):
            new_c2w, new_K, report = refine_with_report(images, c2w, K, unusable, 5)
        assert torch.equal(new_c2w, c2w) and torch.equal(new_K, K)
        assert report["cameras"] == "input"
        assert "no pixel has a usable depth" in report["stopped"]
        assert "no pixel has a usable depth" in caplog.text
        json.dumps(report)
    seen = []  # nothing ran, so nothing was reached
    refine_with_report(images, c2w, K, depth * 0, 5, on_reached=lambda *a: seen.append(a))
    assert seen == []


def test_no_pixel_that_reprojects_has_no_psnr_instead_of_100_db():
    """Views that see nothing of each other (every point behind its neighbours): the
    reprojection PSNR is undefined; the report says None (the serve page "n/a"), not a perfect
    100 dB, and the input cameras are kept."""
    images, c2w, K, depth = _inputs()
    turned = c2w.clone()
    turned[1::2, :3, :3] = torch.diag(
        torch.tensor([-1.0, 1.0, -1.0])
    )  # every other view faces back
    turned[:, 2, 3] = torch.arange(V) * 10.0  # far apart along z: nothing in front of the others
    new_c2w, _, report = refine_with_report(images, turned, K, depth, 3, held_out=False)
    assert report["valid_fraction_before"] == 0.0
    assert report["reprojection_psnr_before"] is None
    assert report["cameras"] == "input" and torch.equal(new_c2w, turned)
    json.dumps(report, allow_nan=False)
