"""``rayzer infer --refine STEPS``: cameras refined on the model's depth, summary figures and
timings; refused before any work for models without depth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from _tiny import orbit_photos, tiny_data
from rayzer.config import load_config
from rayzer.data.formats.nerfstudio import read_transforms
from rayzer.data.scene_folder import read_scene_folder
from rayzer.geometry import axis_angle_to_matrix, make_c2w
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.models import build_model

SIZE = 32


def _loaded(preset: str) -> LoadedModel:
    cfg = load_config(preset, tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


def test_refine_writes_figures_and_the_cameras_it_keeps(tmp_path: Path):
    photos = orbit_photos(tmp_path / "photos", SIZE)
    result = run_inference(
        photos,
        model=_loaded("erayzer-tiny-cpu"),
        out=tmp_path / "out",
        path_frames=2,
        spiral_frames=0,
        refine=6,
    )
    summary = json.loads((result.out / "summary.json").read_text())
    report = summary["refine"]
    assert report["steps"] == 6
    for key in ("reprojection_psnr_before", "reprojection_psnr_after", "seconds", "held_out"):
        assert key in report
    assert {"psnr_before", "psnr_after", "view"} <= set(report["held_out"])
    assert summary["timings_s"]["refine"] > 0
    if report["stopped"] is None:
        assert report["reprojection_psnr_after"] >= report["reprojection_psnr_before"]
    else:
        assert "cameras are kept" in report["stopped"]
    # what is written is what the refinement kept (the returned cameras)
    assert torch.isfinite(result.cameras.c2w).all()
    _assert_written(result.out, result.cameras.c2w, result.cameras.K)


def test_refine_is_refused_for_a_model_without_depth(tmp_path: Path, helpers):
    photos = tmp_path / "photos"
    helpers.write_images(photos, 3)
    with pytest.raises(ValueError, match="--refine needs a model that outputs depth"):
        run_inference(
            photos, model=_loaded("tiny-cpu"), out=tmp_path / "out", path_frames=2, refine=5
        )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("preset", ["tiny-cpu", "erayzer-tiny-cpu"])
def test_a_negative_refine_is_refused_before_any_work(tmp_path: Path, helpers, monkeypatch, preset):
    import rayzer.infer.pipeline as pipeline

    def no_work(*args, **kwargs):
        raise AssertionError("the views were loaded before --refine was checked")

    monkeypatch.setattr(pipeline, "_load_views", no_work)
    photos = tmp_path / "photos"
    helpers.write_images(photos, 3)
    with pytest.raises(ValueError, match=r"--refine must be a number of iterations >= 0.*-2"):
        run_inference(photos, model=_loaded(preset), out=tmp_path / "out", refine=-2)
    assert not (tmp_path / "out").exists()


def test_refinement_gets_no_depth_where_the_render_is_nearly_transparent(
    tmp_path: Path, monkeypatch
):
    """As refine_scene (render_depth's min_alpha): depth only where the opacity is >= 0.5."""
    import rayzer.infer.pipeline as pipeline
    import rayzer.refine

    real_render = pipeline.render_scene_depth_alpha
    rendered = {}

    def half_transparent(*args, **kwargs):
        rgb, depth, alpha = real_render(*args, **kwargs)
        alpha = alpha.clone()
        alpha[..., : alpha.shape[-1] // 2] = 0.2  # left half: mostly background
        alpha[..., 0, -1] = 1e-5  # one pixel barely drawn
        rendered.update(depth=depth[:, 0].clone(), alpha=alpha[:, 0].clone())
        return rgb, depth, alpha

    seen = {}

    def fake_refine(images, c2w, K, depth, steps, **kwargs):
        seen["depth"] = depth.clone()
        return c2w, K, {"steps": steps, "stopped": None}

    monkeypatch.setattr(pipeline, "render_scene_depth_alpha", half_transparent)
    monkeypatch.setattr(rayzer.refine, "refine_with_report", fake_refine)
    run_inference(
        orbit_photos(tmp_path / "photos", SIZE, views=3),
        model=_loaded("erayzer-tiny-cpu"),
        out=tmp_path / "out",
        path_frames=0,
        spiral_frames=0,
        refine=3,
    )
    opaque = rendered["alpha"] >= 0.5
    assert opaque.any() and (~opaque).any()
    assert (rendered["depth"][~opaque] > 0).any()  # the model did draw depth there
    assert (seen["depth"][~opaque] == 0).all()
    assert torch.equal(seen["depth"][opaque], rendered["depth"][opaque])


def _written_cameras(out: Path) -> dict[str, np.ndarray]:
    """The cameras of cameras.json and transforms.json (both OpenCV c2w, pixel K)."""
    scene = read_scene_folder(out, load_depth=False)
    (ns,) = read_transforms(out)
    return {
        "c2w": scene.c2w.double().numpy(),
        "K": scene.K.double().numpy(),
        "ns_c2w": np.stack([f.c2w for f in ns.frames]),
        "ns_K": np.array([f.K for f in ns.frames], dtype=np.float64),
    }


def _assert_written(out: Path, c2w: torch.Tensor, K: torch.Tensor) -> None:
    got = _written_cameras(out)
    for key in ("c2w", "ns_c2w"):
        np.testing.assert_allclose(got[key], c2w.double().numpy(), atol=1e-5, err_msg=key)
    for key in ("K", "ns_K"):
        np.testing.assert_allclose(got[key], K.double().numpy(), rtol=1e-5, err_msg=key)


def _refined_run(tmp_path: Path):
    """``rayzer infer --refine 3`` of 3 orbit views with the tiny E-RayZer, no novel views."""
    return run_inference(
        orbit_photos(tmp_path / "photos", SIZE, views=3),
        model=_loaded("erayzer-tiny-cpu"),
        out=tmp_path / "out",
        path_frames=0,
        spiral_frames=0,
        refine=3,
    )


def test_the_refined_cameras_are_the_ones_written(tmp_path: Path, monkeypatch):
    import rayzer.refine

    known = {}

    def fake_refine(images, c2w, K, depth, steps, **kwargs):
        v = c2w.shape[0]
        rot = axis_angle_to_matrix(torch.tensor([[0.0, 0.05, 0.0]]).expand(v, 3))
        known["model"] = (c2w.clone(), K.clone())
        known["c2w"] = c2w @ make_c2w(rot, torch.tensor([[0.1, -0.05, 0.02]]).expand(v, 3))
        known["K"] = torch.cat((K[:, :2] * 1.1, K[:, 2:]), dim=-1)
        return known["c2w"], known["K"], {"steps": steps, "stopped": None}

    monkeypatch.setattr(rayzer.refine, "refine_with_report", fake_refine)
    result = _refined_run(tmp_path)
    assert not torch.allclose(known["c2w"], known["model"][0], atol=1e-3)  # a real change
    _assert_written(result.out, known["c2w"], known["K"])
    torch.testing.assert_close(result.cameras.c2w, known["c2w"])


def test_the_model_cameras_are_written_when_the_refinement_stops(tmp_path: Path, monkeypatch):
    """The real refine_with_report with a refinement that gives up (its divergence guard)."""
    import rayzer.refine.report as report
    from rayzer.refine import HeldOutFigure, RefineResult

    model_cams = {}

    def giving_up(images, c2w, K, depth, *, config=None, anchor=None, held=None):
        model_cams.update(c2w=c2w.clone(), K=K.clone())
        why = "refinement stopped: a camera rotated by 25.0° > 20.0°; the input cameras are kept"
        figures = {"psnr_before": 20.0, "psnr_after": 20.0, "valid_before": 0.9, "valid_after": 0.9}
        return RefineResult(c2w, K, depth, **figures, stopped=why)

    def no_held_out(images, c2w, K, depth, view, *, config=None, anchor=None):
        return HeldOutFigure(view, 20.0, 20.0, 0.9, 0.9, giving_up(images, c2w, K, depth))

    monkeypatch.setattr(report, "refine_cameras", giving_up)
    monkeypatch.setattr(report, "held_out_psnr", no_held_out)
    result = _refined_run(tmp_path)
    summary = json.loads((result.out / "summary.json").read_text())
    assert "a camera rotated by 25.0°" in summary["refine"]["stopped"]
    _assert_written(result.out, model_cams["c2w"], model_cams["K"])


def test_the_model_cameras_are_written_when_the_leave_one_out_psnr_falls(
    tmp_path: Path, monkeypatch
):
    """Reprojection up, leave-one-out down (25.09 -> 25.59 / 23.468 -> 23.318
    dB, as measured on a real run): the model's cameras are written and summary.json says why."""
    import rayzer.refine.report as report
    from rayzer.refine import HeldOutFigure, RefineResult

    model_cams = {}

    def improving(images, c2w, K, depth, *, config=None, anchor=None, held=None):
        model_cams.update(c2w=c2w.clone(), K=K.clone())
        moved = c2w.clone()
        moved[:, :3, 3] += 0.1
        return RefineResult(moved, K * 1.05, depth, 25.09, 25.59, 0.9, 0.9)

    def falling(images, c2w, K, depth, view, *, config=None, anchor=None):
        return HeldOutFigure(view, 23.468, 23.318, 0.9, 0.9, improving(images, c2w, K, depth))

    monkeypatch.setattr(report, "refine_cameras", improving)
    monkeypatch.setattr(report, "held_out_psnr", falling)
    result = _refined_run(tmp_path)
    summary = json.loads((result.out / "summary.json").read_text())["refine"]
    assert summary["cameras"] == "input"
    assert "leave-one-out PSNR of view 2 fell (23.468 -> 23.318 dB)" in summary["rejected"]
    _assert_written(result.out, model_cams["c2w"], model_cams["K"])
