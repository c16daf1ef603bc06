"""``rayzer infer --init-cameras matches``: cameras from feature matches of the photos at their
own resolution before refinement; unmatched photos keep the model's cameras (exit 0 with a
warning); a missing OpenCV or a video input is refused before any work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer.geometry import relative_pose_errors

SIZE = 192  # the photos; the tiny checkpoint's input is 32 px


def _walk_photos(folder: Path, views: int = 6):
    from PIL import Image

    from rayzer.data.synthetic.clip import SynthConfig, render_clip

    clip = render_clip(0, SynthConfig(family="walk", frames=views, height=SIZE, width=SIZE))
    folder.mkdir(parents=True)
    for i, img in enumerate(clip.images):
        array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return clip


@pytest.fixture
def one_focal(monkeypatch):
    """The matches from one starting focal (the model's) instead of 13: the focal search has its
    own tests (tests/refine/test_matched_cameras.py) and costs 3x the time."""
    import functools

    import rayzer.refine.matched_cameras as mc

    monkeypatch.setattr(mc, "MatchConfig", functools.partial(mc.MatchConfig, focal_factors=(1.0,)))


def test_cli_init_cameras_from_matches(one_focal, tmp_path: Path, tiny_ckpt: Path, cli):
    pytest.importorskip("cv2")
    clip = _walk_photos(tmp_path / "photos")
    code, out, err = cli(
        "infer", "--images", tmp_path / "photos", "--ckpt", tiny_ckpt, "--out",
        tmp_path / "out", "--init-cameras", "matches", "--path-frames", "2",
        "--spiral-frames", "0", "--threads", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "cameras from matches: 6/6 views registered" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    init = summary["init_cameras"]
    assert init["num_registered"] == 6 and init["registered"] == [True] * 6
    assert init["reprojection_after_ba"]["median_px"] < 1.0
    assert summary["timings_s"]["init_cameras"] > 0
    assert "matched" in init["rebuilt"]["note"] and "refined" not in init["rebuilt"]["note"]
    # the written cameras are the matched ones
    frames = json.loads((tmp_path / "out" / "cameras.json").read_text())["frames"]
    c2w = torch.tensor([f["c2w"] for f in frames], dtype=torch.float64)
    err_deg = relative_pose_errors(c2w, clip.c2w.double())["rot_deg"]
    assert err_deg.max() < 2.0  # tests/refine/test_matched_cameras.py: 0.55° measured


def test_cli_unmatched_photos_keep_the_model_cameras_with_a_warning(
    tmp_path: Path, tiny_ckpt: Path, cli, helpers
):
    pytest.importorskip("cv2")
    helpers.write_images(tmp_path / "photos", 3)  # random noise: nothing matches
    code, out, err = cli(
        "infer", "--images", tmp_path / "photos", "--ckpt", tiny_ckpt, "--out",
        tmp_path / "out", "--init-cameras", "matches", "--path-frames", "2",
        "--spiral-frames", "0",
    )  # fmt: skip
    assert code == 0, err
    assert "the model's cameras are kept" in err and "Traceback" not in err
    assert "cameras from matches: 0/3 views registered" in out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["init_cameras"]["num_registered"] == 0


def test_cli_refuses_matches_without_opencv_or_with_a_video(
    tmp_path: Path, tiny_ckpt: Path, cli, helpers, monkeypatch
):
    helpers.write_images(tmp_path / "photos", 3)
    video = helpers.write_video(tmp_path / "clip.mp4")
    args = ("--ckpt", tiny_ckpt, "--out", tmp_path / "out", "--init-cameras", "matches")
    if importlib.util.find_spec("cv2") is not None:
        code, _, err = cli("infer", "--video", video, *args)
        assert code == 2 and "--init-cameras matches needs --images" in err
    monkeypatch.setitem(__import__("sys").modules, "cv2", None)  # import cv2 -> ImportError
    code, _, err = cli("infer", "--images", tmp_path / "photos", *args)
    assert code == 2
    assert "--init-cameras matches" in err and "pip install 'rayzer[undistort]'" in err
    assert "Traceback" not in err
    helpers.no_output(tmp_path / "out")


def test_refine_after_the_matches_holds_the_registered_views(
    one_focal, tmp_path: Path, monkeypatch
):
    """The refinement after the matches made the matched cameras worse on real photos (the
    real-cameras benchmark): --refine holds the views the matches registered bit for bit and
    refines only the others; summary.json names the held views (view 5 made unregistered here;
    tiny untrained E-RayZer, which has depth)."""
    pytest.importorskip("cv2")
    import rayzer.infer.pipeline as pipeline
    import rayzer.refine
    from _tiny import tiny_data
    from rayzer.config import load_config
    from rayzer.infer.model import LoadedModel
    from rayzer.models import build_model

    _walk_photos(tmp_path / "photos")
    torch.manual_seed(0)
    model = build_model(load_config("erayzer-tiny-cpu", tiny_data(32)).model).eval()
    real_init, real_refine = pipeline.init_from_matches, rayzer.refine.refine_with_report
    seen: dict = {}

    def five_of_six(photos, boxes, cams, depth, alpha):
        cams, report = real_init(photos, boxes, cams, depth, alpha)
        report["registered"][5], report["num_registered"] = False, 5
        return cams, report

    def spy(images, c2w, K, depth, steps, **kwargs):
        seen["c2w"], seen["K"], seen["held"] = c2w.clone(), K.clone(), kwargs.get("held")
        return real_refine(images, c2w, K, depth, steps, **kwargs)

    monkeypatch.setattr(pipeline, "init_from_matches", five_of_six)
    monkeypatch.setattr(rayzer.refine, "refine_with_report", spy)
    result = pipeline.run_inference(
        tmp_path / "photos",
        model=LoadedModel.from_module(model, 32),
        out=tmp_path / "out",
        path_frames=2,
        spiral_frames=0,
        refine=3,
        init_cameras="matches",
    )
    assert seen["held"] == [0, 1, 2, 3, 4]
    assert result.summary["refine"]["held"] == [0, 1, 2, 3, 4]
    assert torch.equal(result.cameras.c2w[:5], seen["c2w"][:5].to(result.cameras.c2w))
    assert torch.equal(result.cameras.K[:5], seen["K"][:5].to(result.cameras.K))
