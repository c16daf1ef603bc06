"""Trajectories: slerp, keyframe interpolation, orbit and spiral paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from rayzer.geometry import (
    axis_angle_to_matrix,
    interpolate_cameras,
    matrix_to_quaternion,
    orbit_path,
    project_points,
    quaternion_slerp,
    quaternion_to_matrix,
    random_rotation,
    rotation_angle,
    se3_inverse,
    slerp,
    spiral_path,
)


def angle_between(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return rotation_angle(A.transpose(-1, -2) @ B)


def test_slerp_endpoints_exact_and_constant_speed(gen):
    R0 = random_rotation(6, generator=gen, dtype=torch.float64)
    R1 = random_rotation(6, generator=gen, dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    Rt = slerp(R0, R1, t)
    assert Rt.shape == (6, 11, 3, 3)
    assert torch.equal(Rt[:, 0], R0) and torch.equal(Rt[:, -1], R1)
    total = angle_between(R0, R1)
    steps = angle_between(Rt[:, :-1], Rt[:, 1:])  # (6, 10): equal angle per equal time step
    torch.testing.assert_close(steps, (total / 10)[:, None].expand(6, 10), atol=1e-10, rtol=0)
    torch.testing.assert_close(
        angle_between(R0[:, None], Rt), total[:, None] * t, atol=1e-10, rtol=0
    )


def test_slerp_matches_scipy(gen):
    R0, R1 = random_rotation(2, generator=gen, dtype=torch.float64)
    t = torch.rand(7, generator=gen, dtype=torch.float64)
    ref = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack((R0.numpy(), R1.numpy()))))(t.numpy())
    np.testing.assert_allclose(slerp(R0, R1, t).numpy(), ref.as_matrix(), atol=1e-10)


def test_slerp_takes_the_short_way_for_large_angles():
    R0 = torch.eye(3, dtype=torch.float64)
    R1 = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.radians(170.0)], dtype=torch.float64))
    mid = slerp(R0, R1, [0.5])[0]
    expected = axis_angle_to_matrix(
        torch.tensor([0.0, 0.0, math.radians(85.0)], dtype=torch.float64)
    )
    torch.testing.assert_close(mid, expected)


def test_quaternion_slerp_handles_antipodal_sign(gen):
    q0 = matrix_to_quaternion(random_rotation(4, generator=gen, dtype=torch.float64))
    q1 = matrix_to_quaternion(random_rotation(4, generator=gen, dtype=torch.float64))
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    a, b = quaternion_slerp(q0, q1, t), quaternion_slerp(q0, -q1, t)
    # Same rotations whichever sign represents q1, and the geodesic (shortest) path.
    torch.testing.assert_close(quaternion_to_matrix(a), quaternion_to_matrix(b))
    R0, R1 = quaternion_to_matrix(q0), quaternion_to_matrix(q1)
    torch.testing.assert_close(quaternion_to_matrix(a), slerp(R0, R1, t))
    torch.testing.assert_close(quaternion_to_matrix(a[:, -1]), R1)


def key_cameras(random_c2w, V: int):
    c2w = random_c2w(V)
    K = (
        torch.tensor([100.0, 100.0, 32.0, 24.0], dtype=torch.float64)
        * (1 + torch.arange(V, dtype=torch.float64))[:, None]
    )
    return c2w, K


@pytest.mark.parametrize("closed", [False, True])
def test_interpolate_cameras_passes_through_keys(random_c2w, closed):
    V, m = 4, 5
    c2w, K = key_cameras(random_c2w, V)
    num = V * m if closed else (V - 1) * m + 1
    path, K_path = interpolate_cameras(c2w, K, num, closed=closed)
    assert path.shape == (num, 4, 4) and K_path.shape == (num, 4)
    torch.testing.assert_close(path[::m], c2w, atol=1e-12, rtol=0)
    torch.testing.assert_close(K_path[::m], K, atol=1e-12, rtol=0)
    R = path[:, :3, :3]
    torch.testing.assert_close(
        R.transpose(-1, -2) @ R, torch.eye(3, dtype=R.dtype).expand(num, 3, 3)
    )
    # Halfway between keys 0 and 1: slerp midpoint, mean centre, mean intrinsics.
    path2, K2 = interpolate_cameras(c2w, K, 2 * V if closed else 2 * V - 1, closed=closed)
    torch.testing.assert_close(path2[1, :3, :3], slerp(c2w[0, :3, :3], c2w[1, :3, :3], [0.5])[0])
    torch.testing.assert_close(path2[1, :3, 3], (c2w[0, :3, 3] + c2w[1, :3, 3]) / 2)
    torch.testing.assert_close(K2[1], (K[0] + K[1]) / 2)
    if closed:
        # The last samples head back towards camera 0.
        last = angle_between(path[-1, :3, :3], c2w[0, :3, :3])
        assert last < angle_between(c2w[-1, :3, :3], c2w[0, :3, :3])


def test_interpolate_cameras_edge_cases(random_c2w):
    c2w, K = key_cameras(random_c2w, 3)
    path, K_path = interpolate_cameras(c2w, None, 2)
    assert K_path is None
    torch.testing.assert_close(path, c2w[[0, 2]])
    single, _ = interpolate_cameras(c2w[:1], K[:1], 4)
    torch.testing.assert_close(single, c2w[:1].expand(4, 4, 4))
    with pytest.raises(ValueError, match="K"):
        interpolate_cameras(c2w, K[:2], 5)
    with pytest.raises(ValueError, match="num"):
        interpolate_cameras(c2w, K, 0)


def test_orbit_path_looks_at_centre():
    center = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
    cams = orbit_path(center, radius=3.0, elevation_deg=30.0, num=12)
    assert cams.shape == (12, 4, 4) and cams.dtype == torch.float64
    K = torch.tensor([100.0, 100.0, 32.0, 24.0], dtype=torch.float64)
    uv, z = project_points(center.expand(12, 1, 3), cams, K)
    torch.testing.assert_close(uv[:, 0], K[2:].expand(12, 2))
    torch.testing.assert_close(z[:, 0], torch.full((12,), 3.0, dtype=torch.float64))
    offset = cams[:, :3, 3] - center
    torch.testing.assert_close(
        offset[:, 2] / 3.0, torch.full((12,), 0.5, dtype=torch.float64)
    )  # sin 30°
    # Full circle: evenly spaced azimuths (30° apart), first at +x, no repeated camera.
    az = torch.rad2deg(torch.atan2(offset[:, 1], offset[:, 0]))
    torch.testing.assert_close(torch.remainder(az, 360), torch.arange(12, dtype=torch.float64) * 30)
    # Upright: the image up (-y) has a positive component along the world up.
    assert (-cams[:, 2, 1] > 0).all()
    # A partial arc includes both ends.
    arc = orbit_path([0.0, 0.0, 0.0], 1.0, 0.0, 5, start_azimuth_deg=10.0, arc_deg=90.0)
    az = torch.rad2deg(torch.atan2(arc[:, 1, 3], arc[:, 0, 3]))
    torch.testing.assert_close(az, torch.tensor([10.0, 32.5, 55.0, 77.5, 100.0]))


def test_spiral_path_looks_at_focus(random_c2w):
    ref = random_c2w(1)[0]
    cams = spiral_path(ref, radius=(0.3, 0.2, 0.1), num=16, rotations=2, focus_depth=4.0)
    assert cams.shape == (16, 4, 4)
    K = torch.tensor([100.0, 100.0, 32.0, 24.0], dtype=torch.float64)
    focus = ref[:3, 3] + 4.0 * ref[:3, 2]
    uv, _ = project_points(focus.expand(16, 1, 3), cams, K)
    torch.testing.assert_close(uv[:, 0], K[2:].expand(16, 2))
    in_ref = (se3_inverse(ref) @ cams)[:, :3, 3]
    torch.testing.assert_close(
        in_ref[0], torch.tensor([0.3, 0.0, 0.0], dtype=torch.float64), atol=1e-12, rtol=0
    )
    # Camera k is at angle a = 2 pi * rotations * k / num = k pi / 4: (rx cos a, ry sin a, rz sin(a / 2)).
    expected_2 = torch.tensor([0.0, 0.2, 0.1 * math.sin(math.pi / 4)], dtype=torch.float64)
    torch.testing.assert_close(in_ref[2], expected_2, atol=1e-12, rtol=0)
    expected_4 = torch.tensor([-0.3, 0.0, 0.1], dtype=torch.float64)
    torch.testing.assert_close(in_ref[4], expected_4, atol=1e-12, rtol=0)
    # Cameras stay roughly aligned with the reference orientation (image up matches).
    assert ((cams[:, :3, 1] * ref[:3, 1]).sum(-1) > 0.9).all()
