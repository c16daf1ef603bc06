"""Umeyama similarity estimation and camera-trajectory alignment."""

from __future__ import annotations

import pytest
import torch

from rayzer.geometry import (
    align_cameras,
    axis_angle_to_matrix,
    make_c2w,
    project_to_so3,
    random_rotation,
    umeyama,
)


def random_similarity(gen: torch.Generator, batch: int, dtype=torch.float64):
    s = 0.2 + 3 * torch.rand(batch, generator=gen, dtype=dtype)
    R = random_rotation(batch, generator=gen, dtype=dtype)
    t = torch.randn(batch, 3, generator=gen, dtype=dtype) * 2
    return s, R, t


def apply_similarity(s, R, t, x):
    return s[..., None, None] * x @ R.transpose(-1, -2) + t[..., None, :]


def pred_from_gt(gt_c2w, s, R, t):
    """Cameras in a gauge such that the similarity (s, R, t) maps them onto gt_c2w."""
    Rp = R.transpose(-1, -2)[:, None] @ gt_c2w[..., :3, :3]
    cp = ((gt_c2w[..., :3, 3] - t[:, None]) @ R) / s[:, None, None]
    return make_c2w(Rp, cp)


def test_umeyama_recovers_similarity_exactly(gen):
    s, R, t = random_similarity(gen, 4)
    src = torch.randn(4, 10, 3, generator=gen, dtype=torch.float64)
    dst = apply_similarity(s, R, t, src)
    s_hat, R_hat, t_hat = umeyama(src, dst)
    torch.testing.assert_close(s_hat, s, atol=1e-12, rtol=0)
    torch.testing.assert_close(R_hat, R, atol=1e-12, rtol=0)
    torch.testing.assert_close(t_hat, t, atol=1e-12, rtol=0)


def test_umeyama_rigid_and_float32(gen):
    _, R, t = random_similarity(gen, 3)
    src = torch.randn(3, 8, 3, generator=gen, dtype=torch.float64)
    dst = apply_similarity(torch.ones(3, dtype=src.dtype), R, t, src)
    s_hat, R_hat, t_hat = umeyama(src.float(), dst.float(), with_scale=False)
    assert s_hat.dtype == R_hat.dtype == t_hat.dtype == torch.float32
    torch.testing.assert_close(s_hat, torch.ones(3))
    torch.testing.assert_close(R_hat, R.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(t_hat, t.float(), atol=1e-5, rtol=0)


def test_umeyama_is_least_squares_optimal_with_noise(gen):
    s, R, t = random_similarity(gen, 1)
    src = torch.randn(1, 20, 3, generator=gen, dtype=torch.float64)
    dst = apply_similarity(s, R, t, src) + 0.05 * torch.randn(
        1, 20, 3, generator=gen, dtype=torch.float64
    )
    s_hat, R_hat, t_hat = umeyama(src, dst)

    def cost(s_, R_, t_):
        return (dst - apply_similarity(s_, R_, t_, src)).square().sum()

    best = cost(s_hat, R_hat, t_hat)
    for _ in range(20):
        dR = axis_angle_to_matrix(1e-3 * torch.randn(1, 3, generator=gen, dtype=torch.float64))
        ds = 1e-3 * torch.randn(1, generator=gen, dtype=torch.float64)
        dt = 1e-3 * torch.randn(1, 3, generator=gen, dtype=torch.float64)
        assert cost(s_hat + ds, dR @ R_hat, t_hat + dt) >= best


def test_umeyama_never_returns_a_reflection(gen):
    src = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    dst = src * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # mirror image
    _, R, _ = umeyama(src, dst)
    torch.testing.assert_close(torch.linalg.det(R), torch.tensor(1.0, dtype=torch.float64))


def test_align_cameras_recovers_similarity(random_c2w, gen):
    gt = random_c2w(3, 6)
    s, R, t = random_similarity(gen, 3)
    pred = pred_from_gt(gt, s, R, t)
    aligned, s_hat, R_hat, t_hat = align_cameras(pred, gt)
    torch.testing.assert_close(s_hat, s, atol=1e-10, rtol=0)
    torch.testing.assert_close(R_hat, R, atol=1e-10, rtol=0)
    torch.testing.assert_close(t_hat, t, atol=1e-10, rtol=0)
    torch.testing.assert_close(aligned, gt, atol=1e-10, rtol=0)
    aligned32, *_ = align_cameras(pred.float(), gt.float())
    assert aligned32.dtype == torch.float32
    torch.testing.assert_close(aligned32, gt.float(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("num_views", [2, 5])
def test_align_cameras_collinear_centres(random_c2w, gen, num_views):
    # V = 2, or cameras on a straight line: the centres do not fix the rotation about the line;
    # the camera orientations do.
    gt = random_c2w(1, num_views)
    direction = torch.randn(3, generator=gen, dtype=torch.float64)
    gt[..., :3, 3] = (
        torch.linspace(-1, 2, num_views, dtype=torch.float64)[:, None] * direction + 0.3
    )
    s, R, t = random_similarity(gen, 1)
    aligned, s_hat, R_hat, _ = align_cameras(pred_from_gt(gt, s, R, t), gt)
    torch.testing.assert_close(R_hat, R, atol=1e-10, rtol=0)
    torch.testing.assert_close(s_hat, s, atol=1e-10, rtol=0)
    torch.testing.assert_close(aligned, gt, atol=1e-10, rtol=0)


def test_align_cameras_degenerate_centres_fall_back_to_rotation(random_c2w, gen):
    # A rotating camera that does not move (all centres equal): rotation-only alignment.
    gt = random_c2w(1, 4)
    gt[..., :3, 3] = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    _, R, _ = random_similarity(gen, 1)
    pred = pred_from_gt(
        gt, torch.ones(1, dtype=torch.float64), R, torch.zeros(1, 3, dtype=torch.float64)
    )
    aligned, s_hat, R_hat, _ = align_cameras(pred, gt)
    assert torch.isfinite(aligned).all()
    torch.testing.assert_close(s_hat, torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(R_hat, R, atol=1e-10, rtol=0)
    torch.testing.assert_close(aligned, gt, atol=1e-10, rtol=0)


def test_project_to_so3(gen):
    R = random_rotation(5, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(project_to_so3(3.0 * R), R)
    noisy = R + 0.01 * torch.randn(5, 3, 3, generator=gen, dtype=torch.float64)
    P = project_to_so3(noisy)
    torch.testing.assert_close(torch.linalg.det(P), torch.ones(5, dtype=torch.float64))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="src/dst"):
        umeyama(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="pred_c2w/gt_c2w"):
        align_cameras(torch.eye(4).expand(3, 4, 4), torch.eye(4).expand(2, 4, 4))
