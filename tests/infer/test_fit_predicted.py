"""``rayzer.infer.fit_predicted.fit_predicted_scene`` with stand-in fits: where the fit runs
and what it hands back (the fits themselves are tested in tests/refine/test_splat_fit.py)."""

from __future__ import annotations

from types import SimpleNamespace

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
        return splat.SplatFitResult(scene, cams.c2w, cams.K, psnr_before=10.0, psnr_after=12.0)

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
