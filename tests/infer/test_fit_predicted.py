"""``rayzer.infer.fit_predicted.fit_predicted_scene`` with stand-in fits: where the fit runs
and what it hands back (the fits themselves are tested in tests/refine/test_splat_fit.py)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from rayzer.infer.fit_predicted import fit_predicted_scene
from rayzer.infer.predict import Cameras
from rayzer.models.gaussians import GaussianScene

VIEWS, SIZE = 3, 4


def _scene(device: str) -> GaussianScene:
    """A one-Gaussian-per-pixel scene of ``VIEWS`` views of ``SIZE`` px (values unused)."""
    n = VIEWS * SIZE * SIZE

    def t(*shape: int) -> torch.Tensor:
        return torch.zeros(*shape, device=device)

    return GaussianScene(
        means=t(1, n, 3),
        quats=t(1, n, 4),
        scales=t(1, n, 3),
        opacities=t(1, n),
        sh=t(1, n, 1, 3),
        sh_degree=0,
        input_depth=t(1, VIEWS, 1, SIZE, SIZE),
        c2w=t(1, VIEWS, 4, 4),
        K_norm=t(1, VIEWS, 4),
    )


def _cameras() -> Cameras:
    K = torch.tensor([SIZE, SIZE, SIZE / 2, SIZE / 2]).expand(VIEWS, 4)
    return Cameras(torch.eye(4).expand(VIEWS, 4, 4), K, SIZE, SIZE, canonical=1)


def _model() -> SimpleNamespace:
    """What the fit reads of a loaded model: its background and near plane."""
    return SimpleNamespace(
        model=SimpleNamespace(cfg=SimpleNamespace(background=None, near_plane=0.1))
    )


def test_the_fit_runs_on_the_device_of_the_model_scene(monkeypatch):
    """The fit and its leave-one-out fit are asked to run where the model's scene is (the
    model's device: CUDA for a model on CUDA), not on the CPU. No GPU here, so the scene is on
    the ``meta`` device as a stand-in and both fits are recorded (the stand-ins hand the
    cameras back on the CPU: a meta tensor cannot be copied anywhere). The fitted scene comes
    back on the scene's device, the cameras on the input cameras' device."""
    import rayzer.refine.splat as splat

    asked: list[tuple[str, torch.device]] = []

    def fit(images, scene, **kwargs):
        asked.append(("fit", scene.means.device))
        cams = _cameras()
        return splat.SplatFitResult(
            scene, cams.c2w, cams.K, 10.0, 12.0, reached_c2w=cams.c2w, reached_K=cams.K
        )

    def held_out(images, scene, view, **kwargs):
        asked.append(("held_out", scene.means.device))
        return splat.SplatHeldOut(view, 9.0, 9.5, fit(images, scene))

    monkeypatch.setattr(splat, "fit_scene", fit)
    monkeypatch.setattr(splat, "held_out_fit_psnr", held_out)
    images = torch.rand(VIEWS, 3, SIZE, SIZE)
    scene, cams, report = fit_predicted_scene(_model(), images, _scene("meta"), _cameras(), 5)
    meta = torch.device("meta")
    assert asked == [("fit", meta), ("held_out", meta), ("fit", meta)]
    assert report["scene"] == "fitted"
    assert scene.means.device == meta
    assert cams.c2w.device == cams.K.device == torch.device("cpu")


def _turned(degrees: float) -> torch.Tensor:
    """``(VIEWS, 4, 4)`` identity cameras, the last turned by ``degrees`` about y and moved."""
    c2w = torch.eye(4).repeat(VIEWS, 1, 1)
    a = torch.tensor(degrees).deg2rad()
    c2w[-1, 0, 0], c2w[-1, 0, 2], c2w[-1, 2, 0], c2w[-1, 2, 2] = a.cos(), a.sin(), -a.sin(), a.cos()
    c2w[-1, :3, 3] = torch.tensor([0.3, 0.0, 0.4])
    return c2w


def test_a_rejected_fit_hands_back_the_cameras_it_reached(monkeypatch):
    """When the leave-one-out check rejects the fit, the model's scene and cameras are
    returned, and the cameras the fit reached go to ``on_reached`` (for the benchmark to
    score) and into the report (how far they moved: for summary.json)."""
    import rayzer.refine.splat as splat

    def fit(images, scene, **kwargs):
        K = _cameras().K * torch.tensor([1.1, 1.1, 1.0, 1.0])
        c2w = _turned(12.0)
        return splat.SplatFitResult(scene, c2w, K, 10.0, 12.0, reached_c2w=c2w, reached_K=K)

    def held_out(images, scene, view, **kwargs):
        return splat.SplatHeldOut(view, 9.0, 8.0, fit(images, scene))  # the left-out view fell

    monkeypatch.setattr(splat, "fit_scene", fit)
    monkeypatch.setattr(splat, "held_out_fit_psnr", held_out)
    reached: list[Cameras] = []
    scene = _scene("cpu")
    out_scene, cams, report = fit_predicted_scene(
        _model(), torch.rand(VIEWS, 3, SIZE, SIZE), scene, _cameras(), 5, fit_cameras=True,
        on_reached=reached.append,
    )  # fmt: skip
    assert report["scene"] == "input" and "leave-one-out PSNR" in report["rejected"]
    assert out_scene is scene and torch.equal(cams.c2w, _cameras().c2w)
    assert len(reached) == 1
    torch.testing.assert_close(reached[0].c2w, _turned(12.0))
    assert reached[0].canonical == 1 and (reached[0].height, reached[0].width) == (SIZE, SIZE)
    change = report["camera_change"]
    assert change["max_rotation_deg"] == pytest.approx(12.0, abs=1e-3)
    assert change["max_centre_shift"] == pytest.approx(0.5, abs=1e-4)
    assert change["focal_scale"] == pytest.approx(1.1, abs=1e-4)


@pytest.mark.parametrize("finite", [True, False])
def test_a_stopped_fit_hands_on_where_its_cameras_were(monkeypatch, finite: bool):
    """A stopped fit returns the model's cameras; where its own cameras were when the guard
    fired goes to ``on_reached`` and, when finite, into the report (``summary.json`` cannot
    hold a NaN)."""
    import rayzer.refine.splat as splat

    reached_c2w = _turned(25.0) * (1.0 if finite else math.nan)

    def fit(images, scene, **kwargs):
        cams = _cameras()
        result = splat.SplatFitResult(scene, cams.c2w, cams.K, psnr_before=10.0)
        result.stopped = "the Gaussian fit stopped: (test); the input scene is kept"
        result.reached_c2w, result.reached_K = reached_c2w, cams.K
        return result

    monkeypatch.setattr(splat, "fit_scene", fit)
    reached: list[Cameras] = []
    _, cams, report = fit_predicted_scene(
        _model(), torch.rand(VIEWS, 3, SIZE, SIZE), _scene("cpu"), _cameras(), 5,
        fit_cameras=True, held_out=False, on_reached=reached.append,
    )  # fmt: skip
    assert report["scene"] == "input" and "(test)" in report["stopped"]
    assert torch.equal(cams.c2w, _cameras().c2w)
    assert len(reached) == 1
    torch.testing.assert_close(reached[0].c2w, reached_c2w, equal_nan=True)
    if finite:
        assert report["camera_change"]["max_rotation_deg"] == pytest.approx(25.0, abs=1e-3)
    else:
        assert "camera_change" not in report
        json.dumps(report, allow_nan=False)
