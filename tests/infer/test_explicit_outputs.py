"""Models with depth and Gaussians (E-RayZer, NAS3R) in ``rayzer demo`` and ``rayzer infer``:
depth maps (array + picture) and a standard 3DGS ``.ply`` beside the usual outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import tiny_data
from rayzer.config import load_config
from rayzer.infer import demo
from rayzer.infer.model import LoadedModel
from rayzer.infer.outputs import depth_to_rgb
from rayzer.infer.pipeline import run_inference
from rayzer.models import build_model
from rayzer.render import load_ply
from rayzer.train.checkpoint import save_checkpoint

SIZE = 32


def _model(preset: str):
    cfg = load_config(preset, tiny_data(SIZE))
    torch.manual_seed(0)
    return cfg, build_model(cfg.model).eval()


def test_depth_picture_colours_near_and_far_apart_and_blanks_empty_pixels():
    depth = torch.full((1, 1, 4, 4), 4.0)
    depth[0, 0, 0, 0] = 1.0  # near
    depth[0, 0, 3, 3] = 0.0  # nothing there
    rgb = depth_to_rgb(depth)
    assert rgb.shape == (1, 4, 4, 3) and rgb.dtype == np.uint8
    near, far = rgb[0, 0, 0].astype(int), rgb[0, 1, 1].astype(int)
    assert near[0] > near[2] and far[2] > far[0]  # turbo: near red, far blue
    assert (rgb[0, 3, 3] == 0).all()


@pytest.mark.parametrize("preset", ["erayzer-tiny-cpu", "nas3r-tiny-cpu"])
def test_demo_writes_depth_and_gaussians(preset, tmp_path: Path):
    cfg, model = _model(preset)
    ckpt = save_checkpoint(tmp_path / "run", 1, model, {}, cfg)
    result = demo.run_demo(tmp_path / "demo", ckpt=ckpt, frames=2, device="cpu")
    out = result.out
    vi = cfg.data.num_input_views
    assert len(list((out / "depth").glob("*.npy"))) == vi
    assert len(list((out / "depth").glob("*.png"))) == vi
    assert np.load(next((out / "depth").glob("*.npy"))).shape == (SIZE, SIZE)
    ply = load_ply(out / "gaussians.ply")
    assert ply.means.shape == (vi * SIZE * SIZE, 3)  # one Gaussian per input pixel
    assert torch.isfinite(ply.means).all()
    assert {"depth/", "gaussians.ply"} <= set(result.summary["outputs"])
    title = model.title()
    assert result.summary["model"]["title"] == title
    assert result.summary["model"]["outputs_depth"] and result.summary["model"]["outputs_gaussians"]
    note = result.summary["notes"]["depth_gaussians"]
    assert (
        note == f"{title} writes depth/ (input views' z-depth) and points.ply and gaussians.ply "
        "(3DGS layout); contact_sheet.png shows the depth"
    )
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height > 6 * SIZE  # the depth row is there (inputs, depth, targets, …)
    json.dumps(result.summary, allow_nan=False)


def test_infer_writes_depth_and_gaussians(tmp_path: Path):
    _, model = _model("erayzer-tiny-cpu")
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    loaded = LoadedModel.from_module(model, SIZE)
    result = run_inference(
        photos, model=loaded, out=tmp_path / "out", path_frames=2, spiral_frames=0
    )
    depth = sorted((result.out / "depth").glob("*.npy"))
    assert len(depth) == 3 and all(np.isfinite(np.load(d)).all() for d in depth)
    ply = load_ply(result.out / "gaussians.ply")
    h, w = np.load(depth[0]).shape
    assert ply.means.shape == (3 * h * w, 3)


def _turbo_positions(rgb: np.ndarray) -> np.ndarray:
    """The turbo colour-map position (0-255) nearest to each pixel's colour."""
    from matplotlib import colormaps

    lut = (colormaps["turbo"](np.linspace(0, 1, 256))[:, :3] * 255).astype(float)
    px = rgb.reshape(-1, 3).astype(float)
    return ((px[:, None] - lut[None]) ** 2).sum(-1).argmin(1)


def test_a_flat_depth_map_does_not_fill_the_colour_map():
    """The bundled NAS3R's depth is nearly constant (98th / 2nd percentile ratio ~1.03 at most)
    and used to be stretched over the whole colour map like a structured scene."""
    flat = torch.linspace(9.9, 10.2, 2 * 32 * 32).reshape(2, 1, 32, 32)  # ratio 1.03
    pos = _turbo_positions(depth_to_rgb(flat))
    assert pos.max() - pos.min() < 0.1 * 255  # measured 105-124 of 0-255 (0-255 before)
    from rayzer.infer.outputs import MIN_DEPTH_DISPLAY_RATIO, depth_display_range

    near, far = depth_display_range(flat)
    assert far / near == pytest.approx(MIN_DEPTH_DISPLAY_RATIO)
    assert near < 9.9 and far > 10.2
    # real structure (ratio 4, like the synthetic scenes' exact depths) keeps its full range
    deep = torch.linspace(1.0, 4.0, 2 * 32 * 32).reshape(2, 1, 32, 32)
    pos = _turbo_positions(depth_to_rgb(deep))
    assert pos.max() - pos.min() > 0.95 * 255
    near, far = depth_display_range(deep)
    assert near == pytest.approx(torch.quantile(deep, 0.02).item())
    assert far == pytest.approx(torch.quantile(deep, 0.98).item())


def test_depth_pngs_state_their_colour_range(tmp_path: Path):
    from rayzer.infer.outputs import write_depth

    flat = torch.linspace(9.9, 10.2, 2 * 8 * 8).reshape(2, 1, 8, 8)
    write_depth(tmp_path, flat, ["a", "b"])
    text = Image.open(tmp_path / "a.png").text["rayzer:depth_colours"]
    assert text.startswith("turbo colours linear in 1/depth: red = depth 8.")
    assert "blue = depth 12.3" in text


def test_the_flattest_synthetic_scene_keeps_its_own_colour_range():
    """The floor must not touch real structure: the exact depth of the flattest synthetic test
    scene (the walk ``even`` set's synth_walk_1000005, input views: far / near 1.574, the
    lowest of the 64 orbit and walk scenes) keeps its percentile range and full colour map."""
    from rayzer.data.synthetic import SynthConfig, render_clip
    from rayzer.infer.outputs import depth_display_range

    clip = render_clip(1000005, SynthConfig("walk", frames=24, height=64, width=64), [0, 7, 16, 23])
    depth = clip.depth[:, None]  # (4, 1, 64, 64)
    near, far = depth_display_range(depth)
    assert far / near == pytest.approx(1.574, abs=1e-3)
    assert near == pytest.approx(torch.quantile(depth.flatten(), 0.02).item())
    pos = _turbo_positions(depth_to_rgb(depth))
    assert pos.max() - pos.min() > 0.95 * 255
