"""The public API promised in notes/GEOMETRY_API.md: names, parameters, dtype preservation."""

from __future__ import annotations

import inspect

import pytest
import torch

import rayzer.geometry as geo

# Function -> leading positional parameters fixed by the contract (other engineers call these).
CONTRACT = {
    "rot6d_to_matrix": ["x"],
    "matrix_to_rot6d": ["R"],
    "quaternion_to_matrix": ["q"],
    "matrix_to_quaternion": ["R"],
    "rotation_angle": ["R"],
    "random_rotation": ["n", "generator", "dtype", "device"],
    "make_c2w": ["R", "t"],
    "se3_inverse": ["T"],
    "se3_compose": ["A", "B"],
    "relative_to_canonical": ["c2w", "index"],
    "look_at": ["eye", "target", "up"],
    "normalize_intrinsics": ["K_px", "height", "width"],
    "denormalize_intrinsics": ["K_norm", "height", "width"],
    "intrinsics_matrix": ["K"],
    "resize_intrinsics": ["K_px", "old_hw", "new_hw"],
    "crop_intrinsics": ["K_px", "top", "left"],
    "focal_from_fov": ["fov_rad", "size"],
    "fov_from_focal": ["f", "size"],
    "pixel_centers": ["height", "width", "device", "dtype"],
    "camera_rays": ["c2w", "K_px", "height", "width", "normalize_dirs"],
    "plucker_rays": ["c2w", "K_px", "height", "width"],
    "unproject_depth": ["depth", "c2w", "K_px"],
    "project_points": ["points_world", "c2w", "K_px"],
    "umeyama": ["src", "dst", "with_scale"],
    "align_cameras": ["pred_c2w", "gt_c2w"],
    "rotation_error_deg": ["R_pred", "R_gt"],
    "translation_direction_error_deg": ["t_pred", "t_gt"],
    "relative_pose_errors": ["pred_c2w", "gt_c2w"],
    "pose_auc": ["errors_deg", "thresholds"],
    "accuracy_at": ["errors", "thresholds"],
    "slerp": ["R0", "R1", "t"],
    "interpolate_cameras": ["c2w", "K", "num", "closed"],
    "orbit_path": [
        "center",
        "radius",
        "elevation_deg",
        "num",
        "up",
        "start_azimuth_deg",
        "arc_deg",
    ],
    "spiral_path": ["c2w_ref", "radius", "num", "rotations", "focus_depth"],
}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_contract_function_exported_with_parameters(name):
    assert name in geo.__all__
    params = list(inspect.signature(getattr(geo, name)).parameters)
    assert params[: len(CONTRACT[name])] == CONTRACT[name]


def test_all_names_exist():
    for name in geo.__all__:
        assert callable(getattr(geo, name)), name


def test_float32_in_float32_out():
    x = torch.randn(2, 6)
    R = geo.rot6d_to_matrix(x)
    c2w = geo.make_c2w(R, torch.randn(2, 3))
    K = torch.tensor([10.0, 10.0, 2.0, 2.0])
    outputs = [
        R,
        geo.matrix_to_quaternion(R),
        geo.rotation_angle(R),
        geo.se3_inverse(c2w),
        geo.relative_to_canonical(c2w, 0),
        geo.plucker_rays(c2w, K, 4, 4),
        geo.unproject_depth(torch.ones(2, 4, 4), c2w, K),
        geo.project_points(torch.randn(2, 5, 3), c2w, K)[0],
        geo.align_cameras(c2w[None], c2w[None])[0],
        geo.slerp(R[0], R[1], torch.linspace(0, 1, 3)),
        geo.relative_pose_errors(c2w, c2w)["rot_deg"],
    ]
    for out in outputs:
        assert out.dtype == torch.float32
