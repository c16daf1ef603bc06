"""``points.ply``: depth maps unprojected through the cameras, coloured, with normals from the
depth map; a standard binary ply that a reader written from the PLY spec (not ours) opens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from _tiny import tiny_data
from rayzer.config import load_config
from rayzer.infer.model import LoadedModel
from rayzer.infer.pipeline import run_inference
from rayzer.infer.point_cloud import depth_to_points, save_point_cloud
from rayzer.models import build_model
from rayzer.render import load_ply

_PLY_TYPES = {"float": "<f4", "uchar": "u1"}


def read_vertex_ply(path: Path) -> np.ndarray:
    """A minimal independent PLY reader (binary little-endian, one vertex element, scalar
    properties): the vertices as a numpy structured array."""
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    lines = raw[:end].decode("ascii").splitlines()
    assert lines[0] == "ply" and lines[1] == "format binary_little_endian 1.0"
    elements = [line.split() for line in lines if line.startswith("element")]
    assert len(elements) == 1 and elements[0][1] == "vertex"
    props = [line.split()[1:] for line in lines if line.startswith("property")]
    dtype = np.dtype([(name, _PLY_TYPES[t]) for t, name in props])
    count = int(elements[0][2])
    assert len(raw) - end == count * dtype.itemsize  # nothing missing, nothing extra
    return np.frombuffer(raw, dtype=dtype, count=count, offset=end)


def _plane_views():
    """Two 6 x 8 views of the plane z = 2 (camera 1 shifted along x), one pixel empty."""
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, 0, 3] = 1.0
    K = torch.tensor([[10.0, 10.0, 4.0, 3.0]] * 2)
    depth = torch.full((2, 1, 6, 8), 2.0)
    depth[0, 0, 0, 0] = 0.0  # nothing seen there: no point
    images = torch.rand(2, 3, 6, 8, generator=torch.Generator().manual_seed(0))
    return depth, c2w, K, images


def test_points_lie_on_the_pixel_rays_with_the_pixel_colours():
    depth, c2w, K, images = _plane_views()
    cloud = depth_to_points(depth, c2w, K, images)
    assert len(cloud) == 2 * 6 * 8 - 1
    assert np.allclose(cloud.xyz[:, 2], 2.0)
    # view 0, pixel (row 2, col 5): x = (5.5 - cx) / fx * z, y = (2.5 - cy) / fy * z
    i = 2 * 8 + 5 - 1  # row-major, minus the empty pixel
    assert np.allclose(cloud.xyz[i], [(5.5 - 4) / 10 * 2, (2.5 - 3) / 10 * 2, 2.0], atol=1e-6)
    assert cloud.rgb[i].tolist() == (images[0, :, 2, 5] * 255 + 0.5).to(torch.uint8).tolist()
    j = 48 - 1 + 2 * 8 + 5  # the same pixel in view 1: shifted by the camera
    assert np.allclose(cloud.xyz[j], cloud.xyz[i] + [1.0, 0.0, 0.0], atol=1e-6)
    assert cloud.view.tolist() == [0] * 47 + [1] * 48


def test_normals_face_the_camera_and_are_zero_where_undefined():
    depth, c2w, K, images = _plane_views()
    depth[1, 0, 3, 4] = 10.0  # a depth jump: neither it nor its neighbours get a normal
    cloud = depth_to_points(depth, c2w, K, images)
    n = cloud.normals.reshape(-1, 3)
    defined = np.abs(n).sum(1) > 0
    assert np.allclose(n[defined], [0.0, 0.0, -1.0], atol=1e-6)  # towards the cameras (-z)
    view0 = defined[:47].reshape(-1)
    assert view0.sum() == 4 * 6  # interior pixels only (the border has no central difference)
    jump_neighbours = {(3, 4), (2, 4), (4, 4), (3, 3), (3, 5)}
    v1 = defined[47:].reshape(6, 8)
    assert not any(v1[r, c] for r, c in jump_neighbours)
    assert v1.sum() == 4 * 6 - len(jump_neighbours)

    # A plane receding to the right, z = 2 + x (x in world units): its normal facing the camera
    # is (1, 0, -1) / sqrt(2).
    u = (torch.arange(8.0) + 0.5 - 4.0) / 10.0  # x / z of each column's ray
    tilted = (2.0 / (1.0 - u)).expand(1, 1, 6, 8)  # z = 2 + x on the ray x = u z
    t = depth_to_points(tilted, c2w[:1], K[:1], images[:1])
    assert np.allclose(t.xyz[:, 2], 2.0 + t.xyz[:, 0], atol=1e-5)
    normal = t.normals.reshape(6, 8, 3)[3, 4]
    assert np.allclose(normal, np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0), atol=1e-5)


def test_file_opens_in_an_independent_reader_and_load_ply_refuses_it(tmp_path: Path):
    depth, c2w, K, images = _plane_views()
    cloud = depth_to_points(depth, c2w, K, images)
    path = save_point_cloud(tmp_path / "points.ply", cloud)
    v = read_vertex_ply(path)
    assert list(v.dtype.names) == ["x", "y", "z", "nx", "ny", "nz", "red", "green", "blue"]
    assert np.array_equal(np.stack([v["x"], v["y"], v["z"]], 1), cloud.xyz)
    assert np.array_equal(np.stack([v["nx"], v["ny"], v["nz"]], 1), cloud.normals)
    assert np.array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), cloud.rgb)
    with pytest.raises(ValueError, match=r"points\.ply.*'f_dc_0'"):
        load_ply(path)  # a point cloud is not a 3DGS file: the reader says what is missing


def test_images_must_match_the_depth():
    depth, c2w, K, images = _plane_views()
    with pytest.raises(ValueError, match="images: expected 2 views of 6x8"):
        depth_to_points(depth, c2w, K, images[:, :, :5])


def test_infer_writes_points_from_its_depth_and_cameras(tmp_path: Path):
    cfg = load_config("erayzer-tiny-cpu", tiny_data(32))
    torch.manual_seed(0)
    model = LoadedModel.from_module(build_model(cfg.model).eval(), 32)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    result = run_inference(
        photos, model=model, out=tmp_path / "out", path_frames=1, spiral_frames=0
    )
    out = result.out
    assert "points.ply" in result.summary["outputs"]
    v = read_vertex_ply(out / "points.ply")
    depth_files = sorted((out / "depth").glob("*.npy"))
    depths = [np.load(d) for d in depth_files]
    assert len(v) == sum(int((d > 0).sum()) for d in depths)
    # The first valid pixel of view 0, unprojected by hand from depth/ and cameras.json.
    frame = json.loads((out / "cameras.json").read_text())["frames"][0]
    d0 = depths[0]
    r, c = np.argwhere(d0 > 0)[0]
    z = float(d0[r, c])
    cam = np.array(
        [(c + 0.5 - frame["cx"]) / frame["fx"] * z, (r + 0.5 - frame["cy"]) / frame["fy"] * z, z]
    )
    c2w = np.array(frame["c2w"])
    expected = c2w[:3, :3] @ cam + c2w[:3, 3]
    assert np.allclose([v["x"][0], v["y"][0], v["z"][0]], expected, atol=1e-4)
    image = np.asarray(Image.open(sorted((out / "images").glob("*.png"))[0]).convert("RGB"))
    assert [v["red"][0], v["green"][0], v["blue"][0]] == image[r, c].tolist()


def test_demo_writes_points_of_its_input_views(tmp_path: Path):
    from rayzer.infer import demo
    from rayzer.train.checkpoint import save_checkpoint

    cfg = load_config("erayzer-tiny-cpu", tiny_data(32))
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "run", 1, build_model(cfg.model).eval(), {}, cfg)
    result = demo.run_demo(tmp_path / "demo", ckpt=ckpt, frames=2, device="cpu")
    assert "points.ply" in result.summary["outputs"]
    v = read_vertex_ply(result.out / "points.ply")
    depths = [np.load(d) for d in sorted((result.out / "depth").glob("*.npy"))]
    assert len(depths) == cfg.data.num_input_views
    assert len(v) == sum(int((d > 0).sum()) for d in depths)
