"""``rayzer infer --refine STEPS``: cameras refined on the model's depth, summary figures and
timings; refused before any work for models without depth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import tiny_data
from rayzer.config import load_config
from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.models import build_model

SIZE = 32


def _loaded(preset: str) -> LoadedModel:
    cfg = load_config(preset, tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


def _orbit_photos(folder: Path, views: int = 4) -> Path:
    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=SIZE, width=SIZE), list(range(views))
    )
    folder.mkdir(parents=True)
    for i, img in enumerate(clip.images):
        array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return folder


def test_refine_writes_figures_and_the_cameras_it_keeps(tmp_path: Path):
    photos = _orbit_photos(tmp_path / "photos")
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
    # what is written is what the refinement kept (the model's cameras when it stopped)
    assert report["stopped"] is None or "input cameras are kept" in report["stopped"]
    if report["stopped"] is None:
        assert report["reprojection_psnr_after"] >= report["reprojection_psnr_before"]
    assert torch.isfinite(result.cameras.c2w).all()


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
