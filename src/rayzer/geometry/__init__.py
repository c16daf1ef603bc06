"""Camera geometry for rayzer: rotations, SE(3), intrinsics, rays, alignment, pose metrics,
trajectories.

Conventions (:mod:`rayzer`): OpenCV camera axes (x right, y down, z forward); camera-to-world 4x4
matrices; intrinsics ``(..., 4) = (fx, fy, cx, cy)`` in pixels at the boundary (principal point
from the image corner, pixel centres at ``+0.5``) and normalised by the image size inside models;
6-D rotations (first two columns of ``R``) with Gram-Schmidt; quaternions ``(w, x, y, z)`` at I/O.
Every function is pure torch, batched over leading dims, differentiable and device/dtype agnostic;
``tests/geometry`` pins the contract (round trips, invariances, agreement with references).
"""

from rayzer.geometry.alignment import align_cameras, project_to_so3, umeyama
from rayzer.geometry.intrinsics import (
    crop_intrinsics,
    denormalize_intrinsics,
    focal_from_fov,
    fov_from_focal,
    intrinsics_from_matrix,
    intrinsics_matrix,
    normalize_intrinsics,
    resize_intrinsics,
)
from rayzer.geometry.pose_metrics import (
    accuracy_at,
    pair_indices,
    pose_auc,
    relative_pose_errors,
    rotation_error_deg,
    translation_direction_error_deg,
)
from rayzer.geometry.rays import (
    camera_rays,
    pixel_centers,
    plucker_rays,
    project_points,
    unproject_depth,
)
from rayzer.geometry.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rot6d,
    quaternion_multiply,
    quaternion_to_matrix,
    random_rotation,
    rot6d_to_matrix,
    rotation_angle,
)
from rayzer.geometry.se3 import (
    look_at,
    make_c2w,
    normalize_scene_scale,
    relative_to_canonical,
    se3_compose,
    se3_inverse,
)
from rayzer.geometry.trajectory import (
    interpolate_cameras,
    orbit_path,
    quaternion_slerp,
    slerp,
    spiral_path,
)

__all__ = [
    "accuracy_at",
    "align_cameras",
    "axis_angle_to_matrix",
    "camera_rays",
    "crop_intrinsics",
    "denormalize_intrinsics",
    "focal_from_fov",
    "fov_from_focal",
    "interpolate_cameras",
    "intrinsics_from_matrix",
    "intrinsics_matrix",
    "look_at",
    "make_c2w",
    "matrix_to_axis_angle",
    "matrix_to_quaternion",
    "matrix_to_rot6d",
    "normalize_intrinsics",
    "normalize_scene_scale",
    "orbit_path",
    "pair_indices",
    "pixel_centers",
    "plucker_rays",
    "pose_auc",
    "project_points",
    "project_to_so3",
    "quaternion_multiply",
    "quaternion_slerp",
    "quaternion_to_matrix",
    "random_rotation",
    "relative_pose_errors",
    "relative_to_canonical",
    "resize_intrinsics",
    "rot6d_to_matrix",
    "rotation_angle",
    "rotation_error_deg",
    "se3_compose",
    "se3_inverse",
    "slerp",
    "spiral_path",
    "translation_direction_error_deg",
    "umeyama",
    "unproject_depth",
]
