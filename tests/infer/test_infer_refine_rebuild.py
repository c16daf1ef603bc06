"""When ``rayzer infer --refine`` keeps the refined cameras, the Gaussians, renders, depth, points
and novel views are rebuilt at them: every Gaussian re-lifted along its pixel's ray through the
refined camera at the model's depth (:func:`rayzer.models.gaussians.relift_scene`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import tiny_data
from rayzer.config import load_config
from rayzer.data.scene_folder import read_scene_folder
from rayzer.data.synthetic.clip import SynthConfig, render_clip
from rayzer.geometry import (
    axis_angle_to_matrix,
    make_c2w,
    normalize_intrinsics,
    project_points,
    quaternion_to_matrix,
)
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.infer.predict import build_scene, predict_cameras
from rayzer.models import build_model
from rayzer.models.gaussians import relift_scene
from rayzer.render import load_ply

SIZE = 32
VIEWS = 3


def _loaded(preset: str) -> LoadedModel:
    cfg = load_config(preset, tiny_data(SIZE))
    torch.manual_seed(0)
    return LoadedModel.from_module(build_model(cfg.model).eval(), SIZE)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("orbit")
    clip = render_clip(
        21, SynthConfig(family="orbit", frames=24, height=SIZE, width=SIZE), list(range(VIEWS))
    )
    for i, img in enumerate(clip.images):
        array = (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(array).save(folder / f"{i:03d}.png")
    return folder


def _moved(c2w: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cameras as a refinement could leave them: each turned by 3°, moved, focal 5 % longer;
    the middle view (the anchor) kept."""
    v = c2w.shape[0]
    g = torch.Generator().manual_seed(3)
    rot = torch.nn.functional.normalize(torch.randn(v, 3, generator=g), dim=-1) * 0.05
    shift = torch.randn(v, 3, generator=g) * 0.05
    rot[v // 2], shift[v // 2] = 0.0, 0.0
    return c2w @ make_c2w(axis_angle_to_matrix(rot), shift), torch.cat(
        (K[:, :2] * 1.05, K[:, 2:]), dim=-1
    )


def _pixel_centres(h: int, w: int) -> torch.Tensor:
    """(H·W, 2) pixel centres (u, v) in row-major order, corner convention."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack((j + 0.5, i + 0.5), dim=-1).reshape(-1, 2).double()


@pytest.mark.parametrize("preset", ["erayzer-tiny-cpu", "nas3r-tiny-cpu"])
def test_relifted_centres_sit_on_their_pixels_at_the_new_cameras(preset, photos):
    model = _loaded(preset)
    x = torch.stack(
        [
            torch.from_numpy(np.array(Image.open(p))).permute(2, 0, 1).float() / 255
            for p in sorted(photos.glob("*.png"))
        ]
    )
    cams = predict_cameras(model, x)
    scene = build_scene(model, x, cams)
    c2w, K = _moved(cams.c2w, cams.K)
    moved = relift_scene(scene, c2w[None], normalize_intrinsics(K, SIZE, SIZE)[None])

    means = moved.means[0].reshape(VIEWS, SIZE * SIZE, 3).double()
    uv, z = project_points(means, c2w.double(), K.double())
    centres = _pixel_centres(SIZE, SIZE)
    for v in range(VIEWS):
        torch.testing.assert_close(uv[v], centres, atol=2e-3, rtol=0)
    torch.testing.assert_close(
        z.float(), scene.input_depth[0, :, 0].reshape(VIEWS, -1), atol=1e-4, rtol=1e-4
    )
    # rotations turned with the camera: the same shape relative to it as before
    turn = c2w[:, :3, :3] @ cams.c2w[:, :3, :3].transpose(-1, -2)
    r_old = quaternion_to_matrix(scene.quats[0]).reshape(VIEWS, -1, 3, 3)
    r_new = quaternion_to_matrix(moved.quats[0]).reshape(VIEWS, -1, 3, 3)
    torch.testing.assert_close(r_new, turn[:, None] @ r_old, atol=1e-5, rtol=0)
    assert not torch.allclose(moved.means, scene.means, atol=1e-3)  # a real move
    for name in ("scales", "opacities", "sh", "input_depth"):
        assert torch.equal(getattr(moved, name), getattr(scene, name)), name

    same = relift_scene(scene, scene.c2w, scene.K_norm)
    torch.testing.assert_close(same.means, scene.means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(same.quats, scene.quats, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"relift_scene: expected cameras c2w \(1, 3, 4, 4\)"):
        relift_scene(scene, c2w[None, :2], normalize_intrinsics(K, SIZE, SIZE)[None, :2])


def _run(photos: Path, out: Path, monkeypatch, cameras=None):
    """``rayzer infer`` (tiny E-RayZer, 2 path frames); with ``cameras(c2w, K)``, a refinement
    whose kept ("refined") cameras are ``cameras`` of the model's."""
    import rayzer.refine

    if cameras is not None:

        def fake_refine(images, c2w, K, depth, steps, **kwargs):
            c2w_r, K_r = cameras(c2w, K)
            return c2w_r, K_r, {"steps": steps, "stopped": None, "cameras": "refined"}

        monkeypatch.setattr(rayzer.refine, "refine_with_report", fake_refine)
    return run_inference(
        photos,
        model=_loaded("erayzer-tiny-cpu"),
        out=out,
        path_frames=2,
        spiral_frames=0,
        refine=3 if cameras is not None else 0,
    )


def test_kept_refined_cameras_rebuild_the_gaussians_and_renders(photos, tmp_path, monkeypatch):
    plain = _run(photos, tmp_path / "plain", monkeypatch)
    refined = _run(photos, tmp_path / "refined", monkeypatch, _moved)
    written = read_scene_folder(refined.out, load_depth=False)
    c2w, K = written.c2w.double(), written.K.double()
    model_c2w, model_K = _moved(plain.cameras.c2w, plain.cameras.K)
    torch.testing.assert_close(c2w.float(), model_c2w, atol=1e-5, rtol=0)
    torch.testing.assert_close(K.float(), model_K, atol=1e-4, rtol=1e-5)

    # gaussians.ply: each Gaussian on its pixel at the refined (written) cameras
    means = load_ply(refined.out / "gaussians.ply").means.reshape(VIEWS, SIZE * SIZE, 3)
    uv, _ = project_points(means.double(), c2w, K)
    for v in range(VIEWS):
        torch.testing.assert_close(uv[v], _pixel_centres(SIZE, SIZE), atol=2e-3, rtol=0)
    before = load_ply(plain.out / "gaussians.ply").means
    assert not torch.allclose(means.reshape(-1, 3), before, atol=1e-3)

    summary = json.loads((refined.out / "summary.json").read_text())
    assert "gaussians.ply" in summary["refine"]["rebuilt"]["outputs"]
    assert summary["timings_s"]["rebuild"] > 0
    # the novel views follow the refined cameras (the path starts at the first view)
    novel = json.loads((refined.out / "novel_cameras.json").read_text())["frames"]
    np.testing.assert_allclose(novel[0]["c2w"], c2w[0].numpy(), atol=1e-5)
    # the input views rendered from the moved Gaussians at the moved cameras: the model's
    # renders again, up to what the focal change and the unrotated view-dependent colour alter
    psnr = summary["reconstruction_psnr_db"]["mean"]
    plain_psnr = plain.summary["reconstruction_psnr_db"]["mean"]
    assert abs(psnr - plain_psnr) < 3.0, (psnr, plain_psnr)


def test_an_identity_refinement_changes_nothing(photos, tmp_path, monkeypatch):
    plain = _run(photos, tmp_path / "plain", monkeypatch)
    same = _run(photos, tmp_path / "same", monkeypatch, lambda c2w, K: (c2w.clone(), K.clone()))
    assert json.loads((same.out / "summary.json").read_text())["refine"]["rebuilt"]["outputs"]
    a, b = load_ply(plain.out / "gaussians.ply"), load_ply(same.out / "gaussians.ply")
    torch.testing.assert_close(b.means, a.means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b.quats, a.quats, atol=1e-6, rtol=0)
    for name in ("log_scales", "opacity_logits", "sh"):
        assert torch.equal(getattr(b, name), getattr(a, name)), name
    for folder in ("renders", "depth"):
        for p in sorted((plain.out / folder).glob("*")):
            q = same.out / folder / p.name
            if p.suffix == ".npy":
                np.testing.assert_allclose(np.load(q), np.load(p), atol=1e-4, rtol=1e-5)
            else:  # 8-bit pictures: at most one level of rounding apart
                diff = np.abs(np.asarray(Image.open(q), int) - np.asarray(Image.open(p), int))
                assert diff.max() <= 1, (folder, p.name, diff.max())
    assert json.loads((same.out / "novel_cameras.json").read_text()) == json.loads(
        (plain.out / "novel_cameras.json").read_text()
    )
