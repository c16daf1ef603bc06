"""Intrinsics: normalisation, matrices, resize / crop consistency with projection, FoV."""

from __future__ import annotations

import math

import pytest
import torch

from rayzer.geometry import (
    camera_rays,
    crop_intrinsics,
    denormalize_intrinsics,
    focal_from_fov,
    fov_from_focal,
    intrinsics_from_matrix,
    intrinsics_matrix,
    normalize_intrinsics,
    project_points,
    resize_intrinsics,
)

K_PX = torch.tensor([[120.0, 110.0, 40.5, 30.0], [90.0, 95.0, 32.0, 23.25]], dtype=torch.float64)
H, W = 48, 64


def points_in_front(gen: torch.Generator, n: int = 50) -> torch.Tensor:
    xy = torch.randn(n, 2, generator=gen, dtype=torch.float64) * 0.3
    z = 1.0 + 4.0 * torch.rand(n, 1, generator=gen, dtype=torch.float64)
    return torch.cat((xy * z, z), dim=-1)


def test_normalize_denormalize_round_trip_and_values():
    K_n = normalize_intrinsics(K_PX, H, W)
    torch.testing.assert_close(
        K_n[0], torch.tensor([120 / W, 110 / H, 40.5 / W, 30 / H], dtype=K_PX.dtype)
    )
    torch.testing.assert_close(denormalize_intrinsics(K_n, H, W), K_PX)
    # A centred principal point normalises to (0.5, 0.5) at any resolution.
    centred = torch.tensor([50.0, 50.0, W / 2, H / 2])
    torch.testing.assert_close(normalize_intrinsics(centred, H, W)[2:], torch.tensor([0.5, 0.5]))
    # Per-sample sizes as tensors broadcast over the batch.
    hs, ws = torch.tensor([48.0, 96.0]), torch.tensor([64.0, 128.0])
    K_n2 = normalize_intrinsics(K_PX, hs, ws)
    torch.testing.assert_close(
        K_n2[1], K_PX[1] / torch.tensor([128.0, 96.0, 128.0, 96.0], dtype=K_PX.dtype)
    )
    torch.testing.assert_close(denormalize_intrinsics(K_n2, hs, ws), K_PX)


def test_intrinsics_matrix_projects_like_compact_form(gen):
    Kmat = intrinsics_matrix(K_PX)
    assert Kmat.shape == (2, 3, 3)
    torch.testing.assert_close(intrinsics_from_matrix(Kmat), K_PX)
    p = points_in_front(gen)
    uv, _ = project_points(p, torch.eye(4, dtype=p.dtype), K_PX[0])
    hom = p @ Kmat[0].T
    torch.testing.assert_close(hom[:, :2] / hom[:, 2:], uv)


@pytest.mark.parametrize("new_hw", [(24, 32), (96, 128), (30, 50)])
def test_resize_intrinsics_moves_projections_with_the_image(gen, new_hw):
    p = points_in_front(gen)
    c2w = torch.eye(4, dtype=p.dtype)
    K_new = resize_intrinsics(K_PX, (H, W), new_hw)
    uv, _ = project_points(p, c2w, K_PX[0])
    uv_new, _ = project_points(p, c2w, K_new[0])
    scale = torch.tensor([new_hw[1] / W, new_hw[0] / H], dtype=p.dtype)
    torch.testing.assert_close(uv_new, uv * scale)
    torch.testing.assert_close(resize_intrinsics(K_new, new_hw, (H, W)), K_PX)


def test_resize_by_two_matches_average_pooling_of_pixel_centres():
    # 2x downsampling with average pooling: new pixel (i, j) covers old pixels 2i..2i+1, 2j..2j+1.
    # Points on the z = 1 plane are affine in (u, v), so the new pixel's ray hits the mean of
    # the four old rays' hits.
    c2w = torch.eye(4, dtype=torch.float64)
    _, d_old = camera_rays(c2w, K_PX[0], H, W, normalize_dirs=False)
    _, d_new = camera_rays(
        c2w,
        resize_intrinsics(K_PX[0], (H, W), (H // 2, W // 2)),
        H // 2,
        W // 2,
        normalize_dirs=False,
    )
    pooled = torch.nn.functional.avg_pool2d(d_old.permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)
    torch.testing.assert_close(d_new, pooled)


def test_crop_intrinsics_shifts_projections_and_rays(gen):
    p = points_in_front(gen)
    c2w = torch.eye(4, dtype=p.dtype)
    top, left = 7, 12
    K_c = crop_intrinsics(K_PX, top, left)
    torch.testing.assert_close(K_c[:, :2], K_PX[:, :2])
    uv, _ = project_points(p, c2w, K_PX[0])
    uv_c, _ = project_points(p, c2w, K_c[0])
    torch.testing.assert_close(uv_c, uv - torch.tensor([left, top], dtype=p.dtype))
    # The rays of the crop are the corresponding block of the full image's rays.
    _, d_full = camera_rays(c2w, K_PX[0], H, W)
    _, d_crop = camera_rays(c2w, K_c[0], 20, 30)
    torch.testing.assert_close(d_crop, d_full[top : top + 20, left : left + 30])
    # Per-sample tensor offsets.
    K_b = crop_intrinsics(K_PX, torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0]))
    torch.testing.assert_close(
        K_b[:, 2:], K_PX[:, 2:] - torch.tensor([[3.0, 1.0], [4.0, 2.0]], dtype=K_PX.dtype)
    )


def test_focal_fov_round_trip():
    assert focal_from_fov(math.pi / 2, 64) == pytest.approx(32.0)
    assert fov_from_focal(32.0, 64) == pytest.approx(math.pi / 2)
    fov = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    f = focal_from_fov(fov, 256)
    assert isinstance(f, torch.Tensor)
    torch.testing.assert_close(fov_from_focal(f, 256), fov)
    with pytest.raises(ValueError, match="fov_rad"):
        focal_from_fov(4.0, 64)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="K_px"):
        normalize_intrinsics(torch.zeros(3), H, W)
    with pytest.raises(ValueError, match="height"):
        normalize_intrinsics(K_PX, 0, W)
    with pytest.raises(ValueError, match="K_px"):
        resize_intrinsics(torch.zeros(2, 4, dtype=torch.long), (H, W), (H, W))
