"""The Python API agrees with the model it wraps: cameras are the model's, denormalised to
pixels; renders are the model's reconstruct + render; exports read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer import api
from rayzer.data.scene_folder import read_scene_folder


@pytest.fixture
def model(tiny_ckpt: Path) -> api.LoadedModel:
    return api.load_model(tiny_ckpt, device="cpu")


def test_predict_cameras_from_paths_matches_the_model(model, tmp_path: Path, helpers) -> None:
    paths = helpers.write_images(tmp_path / "photos", 5, size=(64, 48))
    views = api.load_views(tmp_path / "photos", model)
    assert views.images.shape == (5, 32, 32, 3)
    cams = api.predict_cameras(model, [str(p) for p in paths])
    x = torch.from_numpy(views.images).permute(0, 3, 1, 2).float()[None] / 255
    with torch.no_grad():
        ref = model.model.predict_cameras(x)
    torch.testing.assert_close(cams.c2w, ref.c2w[0])
    torch.testing.assert_close(cams.K_norm, ref.K_norm[0])
    assert cams.canonical == 2 and torch.equal(cams.c2w[2], torch.eye(4))
    fx, fy, cx, cy = cams.K[0].tolist()
    assert fx == pytest.approx(fy) and (cx, cy) == (16.0, 16.0)
    torch.testing.assert_close(api.predict_cameras(model, views).c2w, cams.c2w)


def test_render_views_matches_reconstruct_and_render(model, tmp_path: Path, helpers) -> None:
    helpers.write_images(tmp_path, 4)
    views = api.load_views(tmp_path, model)
    cams = api.predict_cameras(model, views)
    targets = api.path_through(cams, 7)
    out = api.render_views(model, views, cams, targets=targets, chunk=3)
    assert out.shape == (7, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    x = torch.from_numpy(views.images).permute(0, 3, 1, 2).float()[None] / 255
    with torch.no_grad():
        scene = model.model.reconstruct(x, cams.c2w[None], cams.K_norm[None])
        ref = model.model.render(scene, targets.c2w[None], targets.K_norm[None], 32, 32).rgb[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    back = api.render_views(model, views, cams)
    torch.testing.assert_close(back[[0, -1]], out[[0, -1]], atol=1e-5, rtol=1e-5)  # path ends


def test_export_round_trip_and_mismatch(model, tmp_path: Path, helpers) -> None:
    helpers.write_images(tmp_path / "photos", 3)
    views = api.load_views(tmp_path / "photos", model)
    cams = api.predict_cameras(model, views)
    out = api.export(tmp_path / "out", views, cams)
    scene = read_scene_folder(out)
    torch.testing.assert_close(scene.c2w, cams.c2w)
    torch.testing.assert_close(scene.K, cams.K)
    got = (scene.images * 255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(got, views.images)
    assert (out / "sparse/0/images.txt").is_file() and (out / "transforms.json").is_file()
    with pytest.raises(ValueError, match="do not match"):
        api.export(tmp_path / "out2", views, api.path_through(cams, 5))
    assert not (tmp_path / "out2").exists()


def test_bad_tensors_are_refused(model) -> None:
    with pytest.raises(ValueError, match=r"shape \(V, 3, H, W\)"):
        api.predict_cameras(model, torch.rand(4, 32, 32))
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        api.predict_cameras(model, torch.rand(3, 3, 30, 32))
    with pytest.raises(ValueError, match="at least 2 views"):
        api.predict_cameras(model, torch.rand(1, 3, 32, 32))
