"""Rays: pixel centres, Plücker coordinates, unprojection and projection."""

from __future__ import annotations

import pytest
import torch

from rayzer.geometry import (
    camera_rays,
    normalize_intrinsics,
    pixel_centers,
    plucker_rays,
    project_points,
    unproject_depth,
)

H, W = 6, 8
K = torch.tensor(
    [7.0, 6.5, 3.5, 2.5], dtype=torch.float64
)  # principal point at pixel (row 2, col 3)


def test_pixel_centers():
    uv = pixel_centers(2, 3, dtype=torch.float64)
    assert uv.shape == (2, 3, 2)
    torch.testing.assert_close(uv[1, 2], torch.tensor([2.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(uv[0, 0], torch.tensor([0.5, 0.5], dtype=torch.float64))


def test_plucker_orthogonality_unit_direction_and_moment_invariance(random_c2w, gen):
    c2w = random_c2w(2, 3)
    pl = plucker_rays(c2w, K, H, W)
    assert pl.shape == (2, 3, 6, H, W)
    d, m = pl[..., :3, :, :], pl[..., 3:, :, :]
    torch.testing.assert_close(
        (d * m).sum(-3), torch.zeros(2, 3, H, W, dtype=d.dtype), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(d.norm(dim=-3), torch.ones(2, 3, H, W, dtype=d.dtype))
    # The moment is the same for any point o + s d on the ray.
    o = c2w[..., :3, 3, None, None]
    s = torch.randn(2, 3, 1, H, W, generator=gen, dtype=d.dtype) * 5
    p = o + s * d
    torch.testing.assert_close(torch.linalg.cross(p, d, dim=-3), m, atol=1e-12, rtol=0)


def test_principal_point_ray_is_camera_z_axis(random_c2w):
    c2w = random_c2w(4)
    origins, dirs = camera_rays(c2w, K, H, W)
    torch.testing.assert_close(dirs[:, 2, 3], c2w[:, :3, 2])
    torch.testing.assert_close(origins[:, 2, 3], c2w[:, :3, 3])
    identity_dirs = camera_rays(torch.eye(4, dtype=K.dtype), K, H, W)[1]
    torch.testing.assert_close(identity_dirs[2, 3], torch.tensor([0.0, 0.0, 1.0], dtype=K.dtype))
    pl = plucker_rays(c2w, K, H, W)
    torch.testing.assert_close(pl[:, :3, 2, 3], c2w[:, :3, 2])


def test_unnormalized_dirs_have_unit_camera_depth(random_c2w):
    c2w = random_c2w(3)
    _, dirs = camera_rays(c2w, K, H, W, normalize_dirs=False)
    z_cam = (dirs * c2w[:, None, None, :3, 2]).sum(-1)
    torch.testing.assert_close(z_cam, torch.ones(3, H, W, dtype=K.dtype))


def test_unproject_project_round_trip(random_c2w, gen):
    c2w = random_c2w(2, 2)
    Ks = torch.stack((K, K * torch.tensor([1.3, 0.9, 1.1, 0.8], dtype=K.dtype)))[
        :, None
    ]  # (2, 1, 4)
    depth = 0.5 + 3 * torch.rand(2, 2, H, W, generator=gen, dtype=K.dtype)
    pts = unproject_depth(depth, c2w, Ks)
    assert pts.shape == (2, 2, H, W, 3)
    uv, z = project_points(pts.reshape(2, 2, H * W, 3), c2w, Ks)
    torch.testing.assert_close(
        uv, pixel_centers(H, W, dtype=K.dtype).reshape(H * W, 2).expand(2, 2, -1, -1)
    )
    torch.testing.assert_close(z, depth.reshape(2, 2, H * W))


def test_projected_point_lies_on_the_ray_of_its_pixel(random_c2w, gen):
    c2w = random_c2w(1)[0]
    depth = 0.5 + 3 * torch.rand(H, W, generator=gen, dtype=K.dtype)
    pts = unproject_depth(depth, c2w, K).reshape(-1, 3)
    uv, z = project_points(pts, c2w, K)
    assert (z > 0).all()
    col, row = uv.floor().long().unbind(-1)
    origins, dirs = camera_rays(c2w, K, H, W)
    o, d = origins[row, col], dirs[row, col]
    # Zero perpendicular distance from each point to its pixel's ray, and positive ray depth.
    torch.testing.assert_close(
        torch.linalg.cross(pts - o, d, dim=-1), torch.zeros_like(pts), atol=1e-12, rtol=0
    )
    assert (((pts - o) * d).sum(-1) > 0).all()


def test_project_points_of_arbitrary_world_points_matches_manual(random_c2w, gen):
    c2w = random_c2w(1)[0]
    pts = torch.randn(30, 3, generator=gen, dtype=K.dtype)
    uv, z = project_points(pts, c2w, K)
    p_cam = (torch.linalg.inv(c2w) @ torch.cat((pts, torch.ones(30, 1, dtype=K.dtype)), -1).T).T[
        :, :3
    ]
    torch.testing.assert_close(z, p_cam[:, 2])
    front = p_cam[:, 2].abs() > 1e-3
    torch.testing.assert_close(uv[front], p_cam[front, :2] / p_cam[front, 2:] * K[:2] + K[2:])
    # Points on the camera plane give finite output.
    uv0, _ = project_points(c2w[None, :3, 3] + c2w[None, :3, 0], c2w, K)
    assert torch.isfinite(uv0).all()


def test_normalized_intrinsics_flag_is_equivalent(random_c2w):
    c2w = random_c2w(2)
    K_n = normalize_intrinsics(K, H, W)
    torch.testing.assert_close(
        plucker_rays(c2w, K_n, H, W, normalized_intrinsics=True), plucker_rays(c2w, K, H, W)
    )


def test_float32_and_broadcast_shapes(random_c2w):
    c2w = random_c2w(2, 3, dtype=torch.float32)
    pl = plucker_rays(c2w, K.float(), H, W)
    assert pl.dtype == torch.float32 and pl.shape == (2, 3, 6, H, W)
    Kb = K.float().expand(3, 4)
    assert plucker_rays(c2w[0, 0], Kb, H, W).shape == (3, 6, H, W)


def test_plucker_rays_gradcheck(random_c2w):
    c2w = random_c2w(1)[0].requires_grad_(True)
    k = K.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, kk: plucker_rays(c, kk, 2, 3), (c2w, k))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="c2w"):
        plucker_rays(torch.eye(3), K, H, W)
    with pytest.raises(ValueError, match="K_px"):
        camera_rays(torch.eye(4), torch.ones(3), H, W)
    with pytest.raises(ValueError, match="height"):
        pixel_centers(0, 3)
