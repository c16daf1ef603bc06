"""``rayzer infer --fit STEPS [--fit-cameras]``: the model's Gaussians fitted to the input views,
the outputs written from the fitted scene when its leave-one-out figure allows, the model's
scene otherwise; refused before any work for models without Gaussians."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import orbit_photos, tiny_data
from rayzer.config import load_config
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.models import build_model
from rayzer.render import load_ply

SIZE = 32


def _model(preset: str) -> tuple[object, torch.nn.Module]:
    cfg = load_config(preset, tiny_data(SIZE))
    torch.manual_seed(0)
    return cfg, build_model(cfg.model).eval()


def test_cli_fit_writes_the_figures_and_outputs_of_the_scene_it_keeps(
    cli, erayzer_ckpt: Path, tmp_path: Path
):
    photos = orbit_photos(tmp_path / "photos", SIZE)
    out = tmp_path / "out"
    code, stdout, _ = cli(
        "infer", "--images", photos, "--ckpt", erayzer_ckpt, "--out", out, "--fit", "4",
        "--fit-cameras", "--path-frames", "2", "--spiral-frames", "0", "--threads", "1",
        "--quiet",
    )  # fmt: skip
    assert code == 0, stdout
    assert "fit: input views" in stdout and "left-out view" in stdout
    summary = json.loads((out / "summary.json").read_text())
    fit = summary["fit"]
    assert fit["steps"] == 4 and fit["cameras_fitted"] is True
    assert fit["scene"] in ("fitted", "input")
    for key in ("train_psnr_before", "train_psnr_after", "seconds", "total_seconds"):
        assert fit[key] is not None, key
    assert {"psnr_before", "psnr_after", "view", "seconds"} <= set(fit["held_out"])
    # the headline: the left-out camera fitted to its image; the placed figure beside it
    held = fit["held_out"]
    assert held["headline"] == "camera fitted" and "its camera fitted to it" in stdout
    assert held["camera_fitted"]["after"]["psnr_after"] == held["psnr_after"]
    assert held["placed"]["psnr_after"] == held["camera_fitted"]["after"]["psnr_before"]
    assert summary["timings_s"]["fit"] > 0
    for name in ("gaussians.ply", "points.ply", "novel_views.mp4", "renders", "depth"):
        assert (out / name).exists(), name
    assert load_ply(out / "gaussians.ply").means.shape[0] == 4 * SIZE * SIZE


@pytest.mark.parametrize("verdict", ["kept", "rejected"])
def test_the_written_scene_is_the_one_the_held_out_figure_allows(
    tmp_path: Path, monkeypatch, verdict: str
):
    import rayzer.refine.splat as splat

    real = splat.held_out_fit_psnr

    def judged(*args, **kwargs):
        fig = real(*args, **kwargs)
        # the verdict under test: the held-out PSNR rose (kept) or fell (rejected)
        fig.psnr_after = fig.psnr_before + (1.0 if verdict == "kept" else -1.0)
        return fig

    monkeypatch.setattr(splat, "held_out_fit_psnr", judged)
    _, module = _model("erayzer-tiny-cpu")
    model = LoadedModel.from_module(module, SIZE)
    photos = orbit_photos(tmp_path / "photos", SIZE)
    plain = run_inference(photos, model=model, out=tmp_path / "plain", path_frames=2,
                          spiral_frames=0)  # fmt: skip
    fitted = run_inference(photos, model=model, out=tmp_path / "fitted", path_frames=2,
                           spiral_frames=0, fit=30)  # fmt: skip
    report = fitted.summary["fit"]
    assert report["stopped"] is None
    assert report["train_psnr_after"] > report["train_psnr_before"]
    plain_psnr = plain.summary["reconstruction_psnr_db"]["mean"]
    fitted_psnr = fitted.summary["reconstruction_psnr_db"]["mean"]
    assert report["train_psnr_before"] <= plain_psnr + 0.05
    plain_ply = load_ply(plain.out / "gaussians.ply")
    fitted_ply = load_ply(fitted.out / "gaussians.ply")
    if verdict == "kept":
        assert report["scene"] == "fitted" and report["rejected"] is None
        # renders/ and the reconstruction PSNR come from the fitted scene (the summary's is the
        # mean of the views' PSNRs, the fit's that of their pooled error: never below it)
        assert fitted_psnr > plain_psnr + 1.0
        assert fitted_psnr >= report["train_psnr_after"] - 0.05
        assert not np.allclose(fitted_ply.opacities, plain_ply.opacities)
    else:
        assert report["scene"] == "input" and "leave-one-out PSNR" in report["rejected"]
        assert fitted_psnr == pytest.approx(plain_psnr, abs=1e-4)
        np.testing.assert_allclose(fitted_ply.opacities, plain_ply.opacities)


def test_fit_is_refused_for_a_model_without_gaussians(tmp_path: Path, helpers, monkeypatch):
    import rayzer.infer.pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the cameras were predicted before --fit was checked")

    monkeypatch.setattr(pipeline, "_predict", no_work)
    photos = tmp_path / "photos"
    helpers.write_images(photos, 3)
    _, module = _model("tiny-cpu")
    with pytest.raises(ValueError, match="--fit needs a model with 3D Gaussians"):
        run_inference(
            photos, model=LoadedModel.from_module(module, SIZE), out=tmp_path / "out", fit=5
        )
    helpers.no_output(tmp_path / "out")


def test_bad_fit_options_are_refused(cli, tiny_ckpt: Path, tmp_path: Path, helpers):
    photos = tmp_path / "photos"
    helpers.write_images(photos, 3)
    with pytest.raises(ValueError, match="--fit must be a number of steps >= 0"):
        run_inference(photos, ckpt=tiny_ckpt, out=tmp_path / "out", fit=-1)
    code, _, err = cli("infer", "--images", photos, "--out", tmp_path / "o2", "--fit-cameras")
    assert code != 0 and "--fit-cameras needs --fit" in err
    helpers.no_output(tmp_path / "out")


def test_with_two_views_the_fit_says_there_is_no_left_out_view(
    cli, erayzer_ckpt: Path, tmp_path: Path
):
    photos = orbit_photos(tmp_path / "photos", SIZE, views=2)
    out = tmp_path / "out"
    code, stdout, _ = cli(
        "infer", "--images", photos, "--ckpt", erayzer_ckpt, "--out", out, "--fit", "2",
        "--path-frames", "2", "--spiral-frames", "0", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert code == 0, stdout
    assert "held_out" not in json.loads((out / "summary.json").read_text())["fit"]
    assert "None" not in stdout and "no left-out check (needs 3 views)" in stdout


def test_fitted_cameras_keep_the_canonical_view_at_the_identity(tmp_path: Path, monkeypatch):
    """NAS3R's canonical view is view 0 (E-RayZer's the middle one): the camera fit holds that
    view, so cameras.json's canonical camera is still the identity."""
    import rayzer.refine.splat as splat

    real = splat.held_out_fit_psnr
    real_fit = splat.fit_scene
    anchors: list[int | None] = []

    def kept(*args, **kwargs):
        fig = real(*args, **kwargs)
        fig.psnr_after = fig.psnr_before + 1.0  # this test is about the cameras written
        return fig

    def recording_fit(*args, **kwargs):  # the leave-one-out fit calls the module's fit_scene
        anchors.append(kwargs.get("anchor"))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(splat, "fit_scene", recording_fit)

    monkeypatch.setattr(splat, "held_out_fit_psnr", kept)
    _, module = _model("nas3r-tiny-cpu")
    photos = orbit_photos(tmp_path / "photos", SIZE)
    result = run_inference(photos, model=LoadedModel.from_module(module, SIZE),
                           out=tmp_path / "out", path_frames=2, spiral_frames=0, fit=6,
                           fit_cameras=True)  # fmt: skip
    assert result.summary["fit"]["scene"] == "fitted"
    cams = result.cameras
    assert cams.canonical == 0
    torch.testing.assert_close(cams.c2w[cams.canonical], torch.eye(4), atol=1e-5, rtol=0)
    moved = (cams.c2w - cams.c2w[cams.canonical]).abs().amax(dim=(1, 2))
    assert float(moved[1:].min()) > 0  # the other cameras were fitted
    # the fit holds view 0, and so does its leave-one-out fit (index 0 of the other views;
    # it held the middle view before)
    assert anchors == [0, 0], anchors


def test_a_stopped_leave_one_out_fit_does_not_vouch_for_the_fitted_scene(
    tmp_path: Path, monkeypatch
):
    """When the fit of the other views stops, the held-out view's PSNR 'after' is its PSNR
    'before' (nothing was fitted): no evidence for the fitted scene, so the model's is kept."""
    import rayzer.refine.splat as splat

    real = splat.held_out_fit_psnr

    def stopped(*args, **kwargs):
        fig = real(*args, **kwargs)
        fig.result.stopped = "the Gaussian fit stopped: (test); the input scene is kept"
        fig.psnr_after = fig.psnr_before
        return fig

    monkeypatch.setattr(splat, "held_out_fit_psnr", stopped)
    _, module = _model("erayzer-tiny-cpu")
    photos = orbit_photos(tmp_path / "photos", SIZE)
    result = run_inference(photos, model=LoadedModel.from_module(module, SIZE),
                           out=tmp_path / "out", path_frames=2, spiral_frames=0, fit=4)  # fmt: skip
    report = result.summary["fit"]
    assert report["stopped"] is None
    assert report["scene"] == "input"
    assert "(test)" in report["rejected"] and "leave-one-out" in report["rejected"]
