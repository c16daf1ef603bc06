"""EWA projection against gsplat's PyTorch reference ``_fully_fused_projection`` (runs on CPU)."""

from __future__ import annotations

import pytest
import torch

from rayzer.geometry import intrinsics_matrix, se3_inverse
from rayzer.render import project_gaussians
from rayzer.render.projection import covariance_3d

torch_impl = pytest.importorskip(
    "gsplat.cuda._torch_impl",
    reason="gsplat not installed (pip install --no-deps gsplat): its PyTorch projection reference is the oracle here",
)


def test_projection_matches_gsplat(make_scene):
    s = make_scene(11, N=300, V=3, width=41, height=29, spread=1.5)
    W, H = s["width"], s["height"]
    ours = project_gaussians(s["means"], s["quats"], s["scales"], s["c2w"], s["K"], W, H)
    # gsplat: world-to-camera view matrices, 3x3 K, covariances; one camera batch per scene.
    viewmats = se3_inverse(s["c2w"])[0]
    Ks = intrinsics_matrix(s["K"])[0]
    covars = covariance_3d(s["quats"], s["scales"])[0]
    radii, means2d, depths, conics, _ = torch_impl._fully_fused_projection(
        s["means"][0], covars, viewmats, Ks, W, H, eps2d=0.3, near_plane=0.01
    )
    vis = (radii > 0).all(-1)
    assert int(vis.sum()) > 100 and int((~vis).sum()) > 10  # both visible and culled ones
    assert torch.equal(ours.radii[0], radii.to(torch.int32))
    assert torch.allclose(ours.means2d[0][vis], means2d[vis], atol=1e-9)
    assert torch.allclose(ours.conics[0][vis], conics[vis], rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours.depths[0], depths, atol=1e-12)


def test_behind_camera_and_near_plane_are_culled_with_finite_gradients():
    dtype = torch.float64
    means = torch.tensor(
        [[[0.0, 0.0, 2.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0], [0.1, 0.0, 0.005]]], dtype=dtype
    )
    means.requires_grad_()
    quats = torch.tensor([1.0, 0, 0, 0], dtype=dtype).expand(1, 4, 4)
    scales = torch.full((1, 4, 3), 0.1, dtype=dtype)
    c2w = torch.eye(4, dtype=dtype)[None, None]
    K = torch.tensor([[[20.0, 20.0, 8.0, 8.0]]], dtype=dtype, requires_grad=True)
    p = project_gaussians(means, quats, scales, c2w, K, 16, 16, near=0.01)
    assert p.radii[0, 0, 0].tolist() != [0, 0]
    assert p.radii[0, 0, 1:].abs().sum() == 0  # behind, at the camera centre, before near
    for t in (p.means2d, p.conics, p.cov2d):
        assert bool(torch.isfinite(t).all())
    (p.means2d.sum() + p.conics.sum()).backward()
    assert bool(torch.isfinite(means.grad).all()) and bool(torch.isfinite(K.grad).all())


def test_offscreen_gaussians_get_frustum_clamped_jacobian():
    """A Gaussian far to the side: its 2D covariance uses the clamped x/z (gsplat), so it stays
    bounded instead of growing with (x/z)²."""
    dtype = torch.float64
    means = torch.tensor([[[30.0, 0.0, 1.0]]], dtype=dtype)
    quats = torch.tensor([[[1.0, 0, 0, 0]]], dtype=dtype)
    scales = torch.full((1, 1, 3), 0.5, dtype=dtype)
    c2w = torch.eye(4, dtype=dtype)[None, None]
    K = torch.tensor([[[10.0, 10.0, 5.0, 5.0]]], dtype=dtype)
    p = project_gaussians(means, quats, scales, c2w, K, 10, 10)
    u_lim = (10 - 5) / 10 + 0.3 * 0.5 * 10 / 10  # (W - cx)/fx + 30 % of the half FOV
    expected_xx = (10 * 0.5) ** 2 + (10 * u_lim * 0.5) ** 2 + 0.3
    assert abs(float(p.cov2d[0, 0, 0, 0]) - expected_xx) < 1e-9
