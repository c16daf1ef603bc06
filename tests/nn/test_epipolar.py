import math

import pytest
import torch

from rayzer.geometry import make_c2w, project_points, rot6d_to_matrix
from rayzer.nn import Transformer
from rayzer.nn.epipolar import project_ray_samples

FLOOR = math.log(1e-2)


def _random_cameras(b: int, v: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    R = rot6d_to_matrix(torch.eye(3)[:2].reshape(6) + 0.2 * torch.randn(b, v, 6, generator=g))
    c2w = make_c2w(R, 0.3 * torch.randn(b, v, 3, generator=g))
    K = torch.tensor([1.1, 1.0, 0.5, 0.5]) + 0.05 * torch.randn(b, v, 4, generator=g)
    return c2w, K


def test_transformer_takes_one_mask_per_block():
    t = Transformer(dim=16, depth=2, num_heads=2)
    x = torch.randn(1, 5, 16)
    zero = torch.zeros(1, 2, 5, 5)
    torch.testing.assert_close(t(x, [zero, zero]), t(x))
    with pytest.raises(ValueError, match="3 attention masks for 2 blocks"):
        t(x, [zero, zero, zero])


def test_projected_ray_samples_match_projecting_the_3d_points():
    # project_ray_samples works with homogeneous samples and relative rotations; check it
    # against geometry.project_points on the explicit 3-D points, with rotated, off-centre
    # cameras (the point at infinity is excluded: it has no finite 3-D point).
    torch.manual_seed(0)
    q_c2w, _ = _random_cameras(2, 2, seed=5)
    k_c2w, k_K = _random_cameras(2, 3, seed=6)
    dirs = torch.cat((torch.randn(2, 2, 7, 2) * 0.3, torch.ones(2, 2, 7, 1)), dim=-1)  # z = 1
    inv = torch.tensor([2.0, 0.7, 0.25])
    smp = project_ray_samples(q_c2w, dirs, k_c2w, k_K, inv)
    assert smp.u.shape == smp.z.shape == (2, 3, 2, 7, 3)
    world_dirs = dirs @ q_c2w[..., None, :3, :3].squeeze(2).transpose(-1, -2)  # (2, 2, 7, 3)
    pts = q_c2w[:, :, None, None, :3, 3] + world_dirs[..., None, :] / inv[:, None]  # (2,2,7,3,3)
    for k in range(3):
        # normalised intrinsics as "pixels": uv comes out as fractions of the image size
        uv, z = project_points(pts.reshape(2, -1, 3), k_c2w[:, k], k_K[:, k])
        uv, z = uv.reshape(2, 2, 7, 3, 2), z.reshape(2, 2, 7, 3)
        torch.testing.assert_close(smp.z[:, k], z * inv, atol=1e-5, rtol=1e-5)  # homogeneous
        front = z > 0.1
        torch.testing.assert_close(smp.u[:, k][front], uv[..., 0][front], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(smp.v[:, k][front], uv[..., 1][front], atol=1e-4, rtol=1e-4)
