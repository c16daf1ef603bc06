"""``rayzer infer --fit`` refuses a fit that would not fit in memory with a clear error: before
the model runs (from the Gaussian count and the fit size), and after the prediction, before the
fit (from the predicted Gaussians' footprints at the fit size)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _tiny import orbit_photos, tiny_data
from rayzer.config import load_config
from rayzer.infer.fit_memory import check_fit_memory, fit_bytes
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.models import build_model

SIZE = 32
FIT = 64
_MIB = 2**20


def _loaded() -> LoadedModel:
    cfg = load_config("erayzer-tiny-cpu", tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


def _free(monkeypatch, *answers: int) -> None:
    """The memory free at each check, in turn."""
    import rayzer.infer.fit_memory as fit_memory

    left = list(answers)
    monkeypatch.setattr(fit_memory, "available_memory_bytes", lambda device: left.pop(0))


def _never(monkeypatch, module, name: str) -> None:
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} ran although the fit was refused")

    monkeypatch.setattr(module, name, fail)


def _refused(tmp_path: Path, helpers, match: str) -> None:
    """``rayzer infer --size 32 --fit 2 --fit-size 64`` fails with ``match`` and writes nothing."""
    photos = orbit_photos(tmp_path / "photos", 96)
    with pytest.raises(ValueError, match=match):
        run_inference(photos, model=_loaded(), out=tmp_path / "out", size=SIZE, fit=2,
                      fit_size=FIT)  # fmt: skip
    helpers.no_output(tmp_path / "out")


def test_a_fit_too_large_for_memory_is_refused_before_the_model_runs(
    tmp_path: Path, monkeypatch, helpers
):
    import rayzer.infer.pipeline as pipeline

    _free(monkeypatch, 1 * _MIB)
    _never(monkeypatch, pipeline, "_predict")
    _refused(tmp_path, helpers, r"--fit at 64x64: fitting 4,096 Gaussians .* needs about")


def test_the_predicted_footprints_are_checked_before_the_fit(tmp_path: Path, monkeypatch, helpers):
    import rayzer.refine.splat as splat

    _free(monkeypatch, 2**40, 1 * _MIB)  # enough for check 1, not for the scene's footprints
    _never(monkeypatch, splat, "fit_scene")
    _refused(tmp_path, helpers, r"the predicted 4,096 Gaussians \(.* million Gauss")


def test_a_fit_that_fits_records_its_estimate(tmp_path: Path):
    photos = orbit_photos(tmp_path / "photos", 96)
    result = run_inference(photos, model=_loaded(), out=tmp_path / "out", size=SIZE, fit=2,
                           fit_size=FIT, path_frames=2, spiral_frames=0)  # fmt: skip
    assert result.summary["fit"]["estimated_memory_mb"] > 0


def test_the_estimate_counts_the_capped_footprints_of_the_steps():
    """A larger σ cap means more Gaussian-tile intersections per step, so more bytes; without a
    cap the steps cost as much as the PSNR renders of the predicted scene."""
    from rayzer.geometry import unproject_depth
    from rayzer.models.gaussians import GaussianScene

    v, n = 2, 16
    c2w = torch.eye(4).repeat(v, 1, 1)
    c2w[1, 0, 3] = 0.2
    K_norm = torch.tensor([1.0, 1.0, 0.5, 0.5]).expand(v, 4)
    depth = torch.full((v, n, n), 3.0)
    means = unproject_depth(depth, c2w, K_norm, normalized_intrinsics=True).reshape(1, -1, 3)
    count = v * n * n
    scene = GaussianScene(
        means=means,
        quats=torch.tensor([1.0, 0, 0, 0]).expand(1, count, 4),
        scales=torch.full((1, count, 3), 8 * 3.0 / n),  # σ of 8 px of its own view
        opacities=torch.full((1, count), 0.5),
        sh=torch.rand(1, count, 1, 3),
        sh_degree=0,
        input_depth=depth[None, :, None],
        c2w=c2w[None],
        K_norm=K_norm[None],
    )
    small = check_fit_memory(scene, (64, 64), max_scale_px=1.0, views_per_step=2)
    large = check_fit_memory(scene, (64, 64), max_scale_px=4.0, views_per_step=2)
    none = check_fit_memory(scene, (64, 64), max_scale_px=None, views_per_step=2)
    assert 0 < small["step_intersections"] < large["step_intersections"]
    assert small["estimated_bytes"] < large["estimated_bytes"] <= none["estimated_bytes"]
    assert fit_bytes(100, 1, 4, (64, 64), 10**6) > fit_bytes(100, 1, 4, (64, 64), 10**3)
