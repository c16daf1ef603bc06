"""Coloured point clouds from depth maps: ``points.ply`` of ``rayzer infer`` / ``rayzer demo``.

Every pixel of every input view with a valid depth becomes one point: unprojected along its ray
through the view's camera to the depth map's camera z-depth (the same ``depth/*.npy`` and
``cameras.json`` the outputs hold, so the cloud is in the cameras' frame and the model's scale),
coloured by the input pixel. Normals come from the depth map: the cross product of the point
map's central differences along the image axes, turned to face the camera. A normal is
*defined* only where the pixel and its four neighbours have valid depth and no neighbour's depth
differs from the pixel's by more than a surface tilted :data:`MAX_SURFACE_ANGLE_DEG` away from
the image plane would make it (across a depth edge the cross product would describe the jump,
not a surface); elsewhere it is written as ``(0, 0, 0)``, the usual "no normal" of point-cloud
tools.

File layout (binary little-endian, one ``vertex`` element, what MeshLab, CloudCompare, Open3D
and plyfile read): ``x y z nx ny nz`` float32, ``red green blue`` uchar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rayzer.geometry import camera_rays

__all__ = ["MAX_SURFACE_ANGLE_DEG", "PointCloud", "depth_to_points", "save_point_cloud"]

#: Steepest surface (angle between it and the image plane) whose normal is kept. Such a surface
#: changes depth by a factor of up to ``1 + tan(angle) / f`` per pixel (focal ``f`` in pixels);
#: a larger step between neighbours is taken as a depth edge.
MAX_SURFACE_ANGLE_DEG = 80.0

_VERTEX_DTYPE = np.dtype(
    [(name, "<f4") for name in ("x", "y", "z", "nx", "ny", "nz")]
    + [(name, "u1") for name in ("red", "green", "blue")]
)


@dataclass
class PointCloud:
    """Points, one per valid pixel, views in order and pixels row-major.

    Attributes:
        xyz: ``(P, 3)`` float32 world positions; normals: ``(P, 3)`` float32 unit vectors facing
        the camera that saw the point, or zeros where undefined (see the module doc);
        rgb: ``(P, 3)`` uint8 colours; view: ``(P,)`` int64 index of the view of each point.
    """

    xyz: np.ndarray
    normals: np.ndarray
    rgb: np.ndarray
    view: np.ndarray

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def _point_normals(points: Tensor, depth: Tensor, centre: Tensor, fx: float, fy: float) -> Tensor:
    """Normals ``(H, W, 3)`` of one view's point map ``points (H, W, 3)`` with z-depth
    ``depth (H, W)`` (<= 0 or non-finite: invalid), camera centre ``(3,)`` and focal lengths in
    pixels; zeros where undefined (see the module doc)."""
    h, w = depth.shape
    normals = torch.zeros_like(points)
    if h < 3 or w < 3:
        return normals
    valid = torch.isfinite(depth) & (depth > 0)
    d = torch.where(valid, depth, torch.ones_like(depth))
    c = d[1:-1, 1:-1]
    ok = valid[1:-1, 1:-1].clone()
    tan = math.tan(math.radians(MAX_SURFACE_ANGLE_DEG))
    for nb, nb_valid, focal in (
        (d[1:-1, 2:], valid[1:-1, 2:], fx),
        (d[1:-1, :-2], valid[1:-1, :-2], fx),
        (d[2:, 1:-1], valid[2:, 1:-1], fy),
        (d[:-2, 1:-1], valid[:-2, 1:-1], fy),
    ):
        ratio = torch.maximum(nb / c, c / nb)
        ok &= nb_valid & (ratio <= 1.0 + tan / max(focal, 1e-6))
    du = points[1:-1, 2:] - points[1:-1, :-2]  # along +x (image right)
    dv = points[2:, 1:-1] - points[:-2, 1:-1]  # along +y (image down)
    n = torch.linalg.cross(du, dv, dim=-1)
    length = n.norm(dim=-1, keepdim=True)
    ok &= length[..., 0] > 1e-12
    n = n / length.clamp_min(1e-12)
    to_camera = centre - points[1:-1, 1:-1]
    n = torch.where(((n * to_camera).sum(-1, keepdim=True) < 0), -n, n)
    normals[1:-1, 1:-1] = torch.where(ok[..., None], n, torch.zeros_like(n))
    return normals


def depth_to_points(depth: Tensor, c2w: Tensor, K: Tensor, images: Tensor) -> PointCloud:
    """Unproject depth maps into one coloured point cloud.

    Args:
        depth: ``(V, 1, H, W)`` or ``(V, H, W)`` camera z-depth; pixels with depth <= 0 or not
            finite (nothing seen there) are left out.
        c2w: ``(V, 4, 4)`` OpenCV camera-to-world; K: ``(V, 4)`` pixel intrinsics
            ``(fx, fy, cx, cy)`` of ``H x W`` images.
        images: ``(V, 3, H, W)`` float in [0, 1] or ``(V, H, W, 3)`` uint8: the colours.
    Returns:
        :class:`PointCloud` (float32 / uint8 numpy arrays, on the CPU).
    """
    depth = depth.detach().float().cpu()
    if depth.ndim == 4:
        depth = depth[:, 0]
    v, h, w = depth.shape
    if isinstance(images, np.ndarray):
        rgb = torch.from_numpy(np.ascontiguousarray(images))
    else:
        rgb = images.detach().float().cpu().clamp(0, 1).mul(255).add(0.5).to(torch.uint8)
        rgb = rgb.permute(0, 2, 3, 1)
    if tuple(rgb.shape) != (v, h, w, 3):
        raise ValueError(f"images: expected {v} views of {h}x{w}, got {tuple(rgb.shape)}")
    c2w = c2w.detach().double().cpu()
    origins, dirs = camera_rays(c2w, K.detach().double().cpu(), h, w, normalize_dirs=False)
    xyz_maps = origins + depth.double()[..., None] * dirs  # (V, H, W, 3): dirs have camera z = 1
    xyz, normals, colours, view = [], [], [], []
    for i in range(v):
        keep = torch.isfinite(depth[i]) & (depth[i] > 0)
        fx, fy = float(K[i, 0]), float(K[i, 1])
        n = _point_normals(xyz_maps[i], depth[i].double(), c2w[i, :3, 3], fx, fy)
        xyz.append(xyz_maps[i][keep].float())
        normals.append(n[keep].float())
        colours.append(rgb[i][keep])
        view.append(torch.full((int(keep.sum()),), i, dtype=torch.int64))
    return PointCloud(
        xyz=torch.cat(xyz).numpy(),
        normals=torch.cat(normals).numpy(),
        rgb=torch.cat(colours).numpy(),
        view=torch.cat(view).numpy(),
    )


def save_point_cloud(path: str | Path, cloud: PointCloud) -> Path:
    """Write ``cloud`` as a binary little-endian ``.ply`` (layout in the module doc)."""
    data = np.empty(len(cloud), dtype=_VERTEX_DTYPE)
    for i, axis in enumerate("xyz"):
        data[axis] = cloud.xyz[:, i]
        data[f"n{axis}"] = cloud.normals[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        data[channel] = cloud.rgb[:, i]
    header = ["ply", "format binary_little_endian 1.0", "comment rayzer point cloud"]
    header.append(f"element vertex {len(cloud)}")
    types = {"<f4": "float", "|u1": "uchar"}
    header += [f"property {types[data.dtype[n].str]} {n}" for n in data.dtype.names or ()]
    path = Path(path)
    with open(path, "wb") as f:
        f.write(("\n".join([*header, "end_header"]) + "\n").encode("ascii"))
        f.write(data.tobytes())
    return path
