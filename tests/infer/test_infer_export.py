"""Camera exports read back through the project's own readers give the same cameras: the scene
folder, the COLMAP text model (read by pycolmap) and nerfstudio transforms.json; plus the
conventions checked independently of the readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rayzer.data.formats.colmap import read_colmap
from rayzer.data.formats.export import write_colmap_text, write_transforms_json
from rayzer.data.formats.nerfstudio import read_transforms
from rayzer.data.scene_folder import read_scene_folder
from rayzer.geometry import look_at, quaternion_to_matrix
from rayzer.infer.outputs import write_exports
from rayzer.infer.predict import Cameras
from rayzer.utils.atomic import staged_output
from rayzer.utils.paths import OUTPUT_MARKER

V, H, W = 5, 24, 40


def _cameras() -> Cameras:
    """Cameras on an arc looking at a point, fx != fy and an off-centre principal point."""
    g = torch.Generator().manual_seed(3)
    eye = torch.randn(V, 3, generator=g, dtype=torch.float64) * 0.5 + torch.tensor([0, 0, -3.0])
    c2w = look_at(eye, torch.zeros(V, 3, dtype=torch.float64), (0.0, -1.0, 0.0))
    K = torch.tensor([30.0, 33.0, 19.0, 12.5]).expand(V, 4).clone()
    return Cameras(c2w.float(), K, H, W, canonical=2)


def _images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (V, H, W, 3), dtype=np.uint8)


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, Cameras, np.ndarray]:
    cams, images = _cameras(), _images()
    out = tmp_path / "export"
    with staged_output(out) as tmp:
        write_exports(tmp, images, [f"{i:03d}_view" for i in range(V)], cams, scene="export")
    return out, cams, images


def test_scene_folder_round_trip(exported) -> None:
    out, cams, images = exported
    scene = read_scene_folder(out)
    assert scene.scene == "export"
    torch.testing.assert_close(scene.c2w, cams.c2w, atol=1e-6, rtol=0)
    torch.testing.assert_close(scene.K, cams.K)
    assert np.array_equal((scene.images * 255).round().byte().permute(0, 2, 3, 1).numpy(), images)


def test_colmap_round_trip_through_pycolmap(exported) -> None:
    pytest.importorskip("pycolmap")
    out, cams, _ = exported
    (scene,) = read_colmap(out)  # finds sparse/0 and images/
    assert [f.name for f in scene.frames] == [f"{i:03d}_view.png" for i in range(V)]
    c2w = np.stack([f.c2w for f in scene.frames])
    np.testing.assert_allclose(c2w, cams.c2w.double().numpy(), atol=1e-6)
    for f in scene.frames:
        assert f.intrinsics_size == (W, H)
        np.testing.assert_allclose(f.K, cams.K[0].tolist(), rtol=1e-7)
    assert len((out / "sparse/0/cameras.txt").read_text().strip().splitlines()[-1:]) == 1


def test_colmap_pose_convention_independently(exported) -> None:
    """images.txt holds world-to-camera (qvec w-first, tvec): it maps a world point to the same
    camera-frame point as the inverse of our c2w does."""
    out, cams, _ = exported
    lines = [
        ln for ln in (out / "sparse/0/images.txt").read_text().splitlines() if ln and ln[0] != "#"
    ]
    point = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    for i, line in enumerate(lines):
        vals = line.split()
        R = quaternion_to_matrix(torch.tensor([float(v) for v in vals[1:5]], dtype=torch.float64))
        t = torch.tensor([float(v) for v in vals[5:8]], dtype=torch.float64)
        p_cam = R @ point + t
        ours = cams.c2w[i].double()
        p_ours = ours[:3, :3].T @ (point - ours[:3, 3])
        torch.testing.assert_close(p_cam, p_ours, atol=1e-6, rtol=0)
        assert p_cam[2] > 0  # in front of the camera
        assert vals[8] == "1" and vals[9] == f"{i:03d}_view.png"


def test_transforms_round_trip_and_opengl_axes(exported) -> None:
    out, cams, _ = exported
    (scene,) = read_transforms(out)
    c2w = np.stack([f.c2w for f in scene.frames])
    np.testing.assert_allclose(c2w, cams.c2w.double().numpy(), atol=1e-7)
    for f in scene.frames:
        np.testing.assert_allclose(f.K, cams.K[0].tolist(), rtol=1e-7)
        assert f.intrinsics_size == (W, H)
    doc = json.loads((out / "transforms.json").read_text())
    gl = np.array(doc["frames"][0]["transform_matrix"])
    cv = cams.c2w[0].double().numpy()
    # OpenGL camera: x right (same), y up (= -y down), z backward (= -z forward); same centre
    np.testing.assert_allclose(gl[:3, 0], cv[:3, 0], atol=1e-7)
    np.testing.assert_allclose(gl[:3, 1], -cv[:3, 1], atol=1e-7)
    np.testing.assert_allclose(gl[:3, 2], -cv[:3, 2], atol=1e-7)
    np.testing.assert_allclose(gl[:3, 3], cv[:3, 3], atol=1e-7)


def test_per_frame_intrinsics_and_sizes(tmp_path: Path) -> None:
    cams = _cameras()
    K = cams.K.clone()
    K[1, 0] = 50.0
    sizes = [(W, H)] * V
    write_transforms_json(
        tmp_path / "t.json", [f"images/{i}.png" for i in range(V)], cams.c2w, K, sizes
    )
    doc = json.loads((tmp_path / "t.json").read_text())
    assert (
        "fl_x" not in doc and doc["frames"][1]["fl_x"] == 50.0 and doc["frames"][0]["fl_x"] == 30.0
    )
    write_colmap_text(tmp_path / "m", [f"{i}.png" for i in range(V)], cams.c2w, K, (W, H))
    cam_lines = [
        ln for ln in (tmp_path / "m/cameras.txt").read_text().splitlines() if ln and ln[0] != "#"
    ]
    assert len(cam_lines) == 2  # identical cameras are shared


def test_writers_refuse_bad_cameras(tmp_path: Path) -> None:
    cams = _cameras()
    bad = cams.c2w.clone()
    bad[0, :3, :3] *= 2.0  # not a rotation
    with pytest.raises(ValueError, match=r"camera a\.png: c2w rotation is not rigid"):
        write_colmap_text(
            tmp_path, ["a.png", *[f"{i}.png" for i in range(1, V)]], bad, cams.K, (W, H)
        )
    with pytest.raises(ValueError, match="without spaces"):
        write_colmap_text(
            tmp_path, ["a b.png", *[f"{i}.png" for i in range(1, V)]], cams.c2w, cams.K, (W, H)
        )
    K = cams.K.clone()
    K[2, 0] = -1
    with pytest.raises(ValueError, match="invalid intrinsics"):
        write_transforms_json(
            tmp_path / "t.json", [f"{i}.png" for i in range(V)], cams.c2w, K, (W, H)
        )


def test_staged_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"), staged_output(out) as tmp:
        tmp.mkdir()
        (tmp / "cameras.json").write_text("{}")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    out.mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"), staged_output(out):
        pass
    with staged_output(out, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, "new.txt"])
    with staged_output(out, overwrite=True) as tmp:  # our own output may be replaced again
        tmp.mkdir()
        (tmp / "newer.txt").write_text("newer")
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, "newer.txt"])
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
