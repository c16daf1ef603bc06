"""The leave-one-out figure compares like with like (the same pixels before and after), and the
refinement reports its progress through a callback."""

from __future__ import annotations

import json
import math

import pytest
import torch

import rayzer.refine.held_out as held_out_module
from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.refine import RefineConfig, RefineResult, held_out_psnr, refine_cameras
from rayzer.refine.held_out import HELD_OUT_NOTE
from rayzer.refine.report import HELD_OUT_STAGE, REFINE_STAGE, refine_with_report

V, H, W = 3, 8, 8


def _inputs() -> tuple[torch.Tensor, ...]:
    images = torch.rand(V, 3, H, W, generator=torch.Generator().manual_seed(0)) * 0.4
    c2w = torch.eye(4).repeat(V, 1, 1)
    c2w[:, 0, 3] = torch.arange(V) * 0.1
    K = torch.tensor([[8.0, 8.0, 4.0, 4.0]]).repeat(V, 1)
    return images, c2w, K, torch.full((V, H, W), 2.0)


@pytest.fixture
def renders(monkeypatch):
    """Stub the refinements (the cameras stay) and the held-out renders: the first (starting
    cameras) covers the left half, 0.1 off everywhere; the second (refined) covers everything,
    0.05 off on the left half and 0.5 off on the right half, which the first did not reach."""
    images, *_ = _inputs()

    def stay(images, c2w, K, depth, *, config=None, anchor=None, held=None, on_step=None):
        return RefineResult(c2w.clone(), K.clone(), depth)

    calls: list[int] = []

    def render(images_o, depth_o, c2w_o, K_o, target_c2w, target_K):
        target = images[1]
        alpha = torch.ones(H, W)
        if not calls:
            rgb = target + 0.1
            alpha[:, W // 2 :] = 0.0
        else:
            rgb = target + 0.05
            rgb[:, :, W // 2 :] = target[:, :, W // 2 :] + 0.5
        calls.append(1)
        return rgb, alpha

    monkeypatch.setattr(held_out_module, "refine_cameras", stay)
    monkeypatch.setattr(held_out_module, "render_from_pixels", render)
    return calls


def test_before_and_after_are_measured_over_the_same_pixels(renders):
    """Over the pixels both renders cover the refined cameras are better (26.02 vs 20 dB).
    Each PSNR over its own covered pixels (as before the fix) gave 20 -> 8.99 dB: the right
    half, which only the second render reaches, decided the comparison."""
    images, c2w, K, depth = _inputs()
    fig = held_out_psnr(images, c2w, K, depth, view=1, config=RefineConfig(steps=2))
    assert len(renders) == 2
    assert fig.psnr_before == pytest.approx(20.0, abs=1e-4)
    assert fig.psnr_after == pytest.approx(-10 * math.log10(0.05**2), abs=1e-4)
    assert fig.covered_before == 0.5 and fig.covered_after == 1.0 and fig.compared == 0.5
    assert fig.summary()["compared"] == 0.5


def test_the_summary_says_the_figure_starts_from_the_photos_pixels(renders):
    """summary.json's held-out figure of --refine names its baseline (the photos' pixels
    reprojected, not the model's render, which --fit's figure starts from), so the two figures
    are not read as one: on 8 fox photos at 128 px a tiny E-RayZer's start 22.1 vs 18.7 dB."""
    images, c2w, K, depth = _inputs()
    summary = held_out_psnr(images, c2w, K, depth, view=1, config=RefineConfig(steps=2)).summary()
    assert summary["note"] == HELD_OUT_NOTE
    assert "photo pixels" in summary["note"] and "not the model's render" in summary["note"]


def _improving_refinement(monkeypatch, render) -> None:
    """Stub every refinement with one that keeps the cameras and reports a reprojection PSNR
    rise (20 -> 21 dB), and the held-out renders with ``render``."""

    def stay(images, c2w, K, depth, *, config=None, anchor=None, held=None, on_step=None):
        return RefineResult(c2w.clone(), K.clone(), depth, 20.0, 21.0, 0.9, 0.9)

    monkeypatch.setattr(held_out_module, "refine_cameras", stay)
    monkeypatch.setattr(held_out_module, "render_from_pixels", render)
    monkeypatch.setattr("rayzer.refine.report.refine_cameras", stay)


def test_no_pixel_covered_by_both_renders_gives_no_figure(monkeypatch, caplog):
    images, c2w, K, depth = _inputs()
    sides = iter((slice(0, W // 2), slice(W // 2, W)))

    def render(images_o, depth_o, c2w_o, K_o, target_c2w, target_K):
        alpha = torch.zeros(H, W)
        alpha[:, next(sides)] = 1.0
        return images[1].clone(), alpha

    _improving_refinement(monkeypatch, render)
    fig = held_out_psnr(images, c2w, K, depth, view=1, config=RefineConfig(steps=2))
    assert math.isnan(fig.psnr_before) and math.isnan(fig.psnr_after) and fig.compared == 0.0
    sides = iter((slice(0, W // 2), slice(W // 2, W)))
    _, _, report = refine_with_report(images, c2w, K, depth, 2)
    json.dumps(report, allow_nan=False)  # summary.json-ready: None, not NaN
    assert report["held_out"]["psnr_before"] is None and report["held_out"]["compared"] == 0.0
    assert report["rejected"] is None and report["cameras"] == "refined"
    assert "cannot judge" in caplog.text


def test_refine_cameras_reports_every_step(monkeypatch):
    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=16, width=16), frames=[0, 3, 6]
    )
    seen: list[tuple[int, int]] = []
    refine_cameras(
        clip.images,
        clip.c2w,
        clip.K * torch.tensor([1.05, 1.05, 1.0, 1.0]),
        clip.depth,
        config=RefineConfig(steps=6, levels=(8,)),
        on_step=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (6, 6)
    assert all(total == 6 for _, total in seen)
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[0] == 1 and len(seen) >= 2


def test_refine_with_report_counts_all_its_refinements_as_one(monkeypatch):
    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=16, width=16), frames=[0, 3, 6, 9]
    )
    seen: list[tuple[int, int, str]] = []
    refine_with_report(
        clip.images,
        clip.c2w,
        clip.K * torch.tensor([1.05, 1.05, 1.0, 1.0]),
        clip.depth,
        3,
        progress=lambda done, total, stage: seen.append((done, total, stage)),
    )
    assert {total for _, total, _ in seen} == {12}  # 3 steps, then 3 x 3 for leave-one-out
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and seen[-1][0] == 12
    stages = [s for _, _, s in seen]
    first_held = stages.index(HELD_OUT_STAGE)
    assert set(stages[:first_held]) == {REFINE_STAGE} and set(stages[first_held:]) == {
        HELD_OUT_STAGE
    }
    assert max(d for d, _, s in seen if s == REFINE_STAGE) == 3


def test_refined_cameras_that_lose_the_held_out_view_are_rejected(monkeypatch):
    """The starting cameras' render covers half of the held-out view, the refined ones' none:
    no pixel to compare, but that is the refinement failing to predict the view at all, not a
    figure that cannot judge (before the fix the refined cameras were kept)."""
    images, c2w, K, depth = _inputs()
    covers = iter((slice(0, W // 2), slice(0, 0)))

    def render(images_o, depth_o, c2w_o, K_o, target_c2w, target_K):
        alpha = torch.zeros(H, W)
        alpha[:, next(covers)] = 1.0
        return images[1].clone(), alpha

    _improving_refinement(monkeypatch, render)
    _, _, report = refine_with_report(images, c2w, K, depth, 2)
    json.dumps(report, allow_nan=False)
    assert report["held_out"]["covered_before"] == 0.5
    assert report["held_out"]["covered_after"] == 0.0
    assert report["cameras"] == "input"
    assert "no pixel of the other views reaches view 2" in report["rejected"]


def test_a_non_finite_held_out_render_after_refinement_rejects_it(monkeypatch):
    """Both renders cover the view but the refined cameras' one is NaN: a diverged figure
    rejects the refinement (before the fix it read as 'cannot judge' and the cameras were
    kept)."""
    images, c2w, K, depth = _inputs()
    values = iter((images[2] + 0.1, torch.full_like(images[2], math.nan)))  # view 2 is held

    def render(images_o, depth_o, c2w_o, K_o, target_c2w, target_K):
        return next(values), torch.ones(H, W)

    _improving_refinement(monkeypatch, render)
    _, _, report = refine_with_report(images, c2w, K, depth, 2)
    json.dumps(report, allow_nan=False)
    assert report["held_out"]["psnr_before"] == pytest.approx(20.0, abs=1e-3)
    assert report["held_out"]["psnr_after"] is None
    assert report["cameras"] == "input" and "not finite" in report["rejected"]
