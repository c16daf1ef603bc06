"""``--render-size``: novel views of a Gaussian scene at another resolution (same cameras, same
field of view), refused for latent models and, with a clear message before the work, when the
frames or the rasterizer would not fit in memory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import tiny_data
from rayzer.config import load_config
from rayzer.infer import pipeline, render_size
from rayzer.infer.model import LoadedModel, load_model
from rayzer.infer.pipeline import run_inference
from rayzer.infer.predict import Cameras
from rayzer.models import build_model
from rayzer.render.budget import (
    BYTES_PER_INTERSECTION,
    BYTES_PER_PIXEL,
    count_intersections,
    render_bytes,
)

SIZE = 32


@pytest.fixture(scope="module")
def erayzer() -> LoadedModel:
    cfg = load_config("erayzer-tiny-cpu", tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


def test_dims_keep_the_aspect_and_cameras_keep_their_field_of_view():
    assert render_size.render_dims(32, 48, None) == (32, 48)
    assert render_size.render_dims(32, 48, 100) == (100, 150)
    assert render_size.render_dims(48, 32, 64) == (96, 64)
    assert render_size.render_dims(32, 56, 18) == (18, 32)  # 31.5 rounds to an even side
    cams = Cameras(torch.eye(4)[None], torch.tensor([[40.0, 41.0, 24.0, 16.0]]), 32, 48)
    big = render_size.at_size(cams, 100, 150)
    assert (big.height, big.width) == (100, 150)
    assert torch.allclose(big.K_norm, cams.K_norm)
    assert torch.equal(big.c2w, cams.c2w)


@pytest.mark.parametrize("bad", [15, 17, 8194, 0, -64, True, 64.5])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError, match="--render-size must be"):
        render_size.check_render_size(bad)


def test_infer_renders_novel_views_at_the_size_and_the_rest_at_the_input_size(
    erayzer, tmp_path: Path, helpers
):
    photos = helpers.write_images(tmp_path / "photos", 3)
    result = run_inference(
        tmp_path / "photos",
        model=erayzer,
        out=tmp_path / "out",
        path_frames=2,
        spiral_frames=1,
        render_size=48,
    )
    out = result.out
    assert len(photos) == 3
    gif = Image.open(out / "novel_views.gif")
    assert gif.size == (48, 48) and gif.n_frames == 3
    novel = json.loads((out / "novel_cameras.json").read_text())["frames"]
    views = json.loads((out / "cameras.json").read_text())["frames"]
    assert {(f["width"], f["height"]) for f in novel} == {(48, 48)}
    assert novel[0]["fx"] == pytest.approx(views[0]["fx"] * 48 / SIZE, rel=1e-5)  # same FOV
    assert Image.open(next((out / "renders").glob("*.png"))).size == (SIZE, SIZE)
    assert np.load(next((out / "depth").glob("*.npy"))).shape == (SIZE, SIZE)
    assert result.summary["novel_views"]["width"] == 48


def test_a_latent_model_is_refused_before_any_work(tiny_ckpt, tmp_path: Path, helpers):
    helpers.write_images(tmp_path / "photos", 3)
    with pytest.raises(ValueError, match=r"renders only at its input size \(32x32\).*--size"):
        run_inference(
            tmp_path / "photos", ckpt=tiny_ckpt, out=tmp_path / "out", render_size=64, device="cpu"
        )
    helpers.no_output(tmp_path / "out")
    rayzer = load_model(tiny_ckpt, "cpu")  # its own input size is fine
    run_inference(
        tmp_path / "photos", model=rayzer, out=tmp_path / "ok", path_frames=1, spiral_frames=0,
        render_size=SIZE,
    )  # fmt: skip


def _no_prediction(*args, **kwargs):
    raise AssertionError("the memory check should come before any prediction")


def test_frames_too_large_for_memory_are_refused_before_any_prediction(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    helpers.write_images(tmp_path / "photos", 3)
    monkeypatch.setattr(render_size, "available_memory_bytes", lambda device="cpu": 2**30)
    monkeypatch.setattr(pipeline, "predict_cameras", _no_prediction)
    with pytest.raises(ValueError, match=r"120 novel-view frames of 2048x2048 need about .* GiB"):
        run_inference(tmp_path / "photos", model=erayzer, out=tmp_path / "out", render_size=2048)
    helpers.no_output(tmp_path / "out")


def test_rasterizer_memory_is_checked_from_the_gaussians_before_rendering(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    helpers.write_images(tmp_path / "photos", 3)
    free = 1 << 20  # the frames fit (about 0.2 MB), one view's 3072+ intersections do not
    _refused_before_rendering(
        erayzer, tmp_path, helpers, monkeypatch, free,
        r"rasterizing one 64x64 frame needs about .*intersect",
    )  # fmt: skip


def _refused_before_rendering(
    model: LoadedModel, tmp_path: Path, helpers, monkeypatch, free: int, match: str
) -> None:
    """With ``free`` bytes, inferring ``tmp_path / "photos"`` at --render-size 64 is refused
    with ``match`` before any view is rendered, and leaves no output."""
    monkeypatch.setattr(render_size, "available_memory_bytes", lambda device="cpu": free)
    rendered = []
    for name in ("render_scene", "render_scene_depth_alpha"):
        real = getattr(pipeline, name)
        monkeypatch.setattr(
            pipeline, name, lambda *a, _real=real, **k: rendered.append(1) or _real(*a, **k)
        )
    with pytest.raises(ValueError, match=match):
        run_inference(
            tmp_path / "photos", model=model, out=tmp_path / "out", path_frames=2,
            spiral_frames=0, render_size=64,
        )  # fmt: skip
    assert not rendered  # refused before any view was rendered
    helpers.no_output(tmp_path / "out")


def test_views_per_pass_shrinks_to_what_fits(erayzer, tmp_path: Path, helpers, monkeypatch):
    photos = helpers.write_images(tmp_path / "photos", 3)
    x = pipeline.as_images(photos, erayzer)
    cams = pipeline.predict_cameras(erayzer, x)
    scene = pipeline.build_scene(erayzer, x, cams)
    big = render_size.at_size(cams, 64, 64)
    assert render_size.views_per_pass(erayzer, scene, big, 8, None) == 8  # no --render-size
    g = erayzer.model.gaussians(scene)
    from rayzer.render.budget import count_intersections

    counts = count_intersections(
        g["means"], g["quats"], g["scales"], g["opacities"], big.c2w, big.K, 64, 64,
        near=erayzer.model.cfg.near_plane,
    )  # fmt: skip
    one = render_bytes(int(counts.max()), 64 * 64)
    free = int(2.5 * one / render_size.MEMORY_FRACTION)  # room for two views per pass
    monkeypatch.setattr(render_size, "available_memory_bytes", lambda device="cpu": free)
    assert render_size.views_per_pass(erayzer, scene, big, 8, 64) == 2


def test_views_per_pass_plans_for_the_backend_that_renders(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    """On CUDA the plan uses gsplat's bytes per intersection (and the GPU's free memory): the
    same free memory fits more views per pass than with the torch backend's figure."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    x = pipeline.as_images(photos, erayzer)
    cams = pipeline.predict_cameras(erayzer, x)
    scene = pipeline.build_scene(erayzer, x, cams)
    big = render_size.at_size(cams, 64, 64)
    g = erayzer.model.gaussians(scene)
    from rayzer.render.budget import count_intersections

    counts = count_intersections(
        g["means"], g["quats"], g["scales"], g["opacities"], big.c2w, big.K, 64, 64,
        near=erayzer.model.cfg.near_plane,
    )  # fmt: skip
    free = int(2.5 * render_bytes(int(counts.max()), 64 * 64) / render_size.MEMORY_FRACTION)
    asked = []
    monkeypatch.setattr(
        render_size, "available_memory_bytes", lambda device="cpu": asked.append(device) or free
    )
    assert render_size.views_per_pass(erayzer, scene, big, 8, 64) == 2  # torch on the CPU
    monkeypatch.setattr(render_size, "resolve_backend", lambda name, device: "gsplat")
    assert render_size.views_per_pass(erayzer, scene, big, 8, 64) > 2
    assert asked == [erayzer.device, erayzer.device]  # the free memory of the rendering device


def _largest_count(model: LoadedModel, scene, cams: Cameras) -> int:
    g = model.model.gaussians(scene)
    counts = count_intersections(
        g["means"], g["quats"], g["scales"], g["opacities"], cams.c2w, cams.K, cams.width,
        cams.height, near=model.model.cfg.near_plane,
    )  # fmt: skip
    return int(counts.max())


def test_views_per_pass_counts_the_blocks_of_every_compositing_thread(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    """Two views per pass fit with one compositing thread; with two threads (each with its own
    block temporaries) the same memory fits one."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    x = pipeline.as_images(photos, erayzer)
    cams = pipeline.predict_cameras(erayzer, x)
    scene = pipeline.build_scene(erayzer, x, cams)
    big = render_size.at_size(cams, 64, 64)
    most = _largest_count(erayzer, scene, big)
    two_views_one_thread = render_bytes(2 * most, 2 * 64 * 64, workers=1)
    two_views_two_threads = render_bytes(2 * most, 2 * 64 * 64, workers=2)
    assert two_views_two_threads > two_views_one_thread
    budget = (two_views_one_thread + two_views_two_threads) / 2
    free = int(budget / render_size.MEMORY_FRACTION)
    monkeypatch.setattr(render_size, "available_memory_bytes", lambda device="cpu": free)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert render_size.views_per_pass(erayzer, scene, big, 8, 64) == 2
        torch.set_num_threads(2)
        assert render_size.views_per_pass(erayzer, scene, big, 8, 64) == 1
    finally:
        torch.set_num_threads(threads)


def test_views_per_pass_counts_the_pixels_of_whole_tiles(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    """The renderer composites whole tiles of TILE_SIZE (4) pixels: a 66 x 66 frame is a
    68 x 68 tile image, and the plan counts its pixels (it counted 66 x 66)."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    x = pipeline.as_images(photos, erayzer)
    cams = pipeline.predict_cameras(erayzer, x)
    scene = pipeline.build_scene(erayzer, x, cams)
    asked: list[int] = []
    real = render_size.render_bytes

    def recording(intersections, pixels, *args):
        asked.append(pixels)
        return real(intersections, pixels, *args)

    monkeypatch.setattr(render_size, "render_bytes", recording)
    render_size.views_per_pass(erayzer, scene, render_size.at_size(cams, 66, 66), 1, 66)
    assert asked == [68 * 68]


def test_a_frame_whose_compositing_blocks_do_not_fit_is_refused_before_rendering(
    erayzer, tmp_path: Path, helpers, monkeypatch
):
    """Room for one frame's intersections and pixels twice over, not for its compositing
    blocks: refused with the message, before any view is rendered (the plan once counted
    only the intersections and pixels)."""
    photos = helpers.write_images(tmp_path / "photos", 3)
    x = pipeline.as_images(photos, erayzer)
    cams = pipeline.predict_cameras(erayzer, x)
    scene = pipeline.build_scene(erayzer, x, cams)
    most = _largest_count(erayzer, scene, render_size.at_size(cams, 64, 64))
    without_blocks = most * BYTES_PER_INTERSECTION + 64 * 64 * BYTES_PER_PIXEL
    free = int(2 * without_blocks / render_size.MEMORY_FRACTION)
    assert render_bytes(most, 64 * 64) > render_size.MEMORY_FRACTION * free
    _refused_before_rendering(
        erayzer, tmp_path, helpers, monkeypatch, free,
        r"one 64x64 frame needs about .* compositing blocks",
    )  # fmt: skip
