"""camera_rays / plucker_rays rotate with one product per camera: the same rays, moments and
gradients as the per-pixel definition (R d per pixel, o × d by the cross product)."""

import torch

from rayzer.geometry import camera_rays, make_c2w, plucker_rays, rot6d_to_matrix
from rayzer.geometry.rays import pixel_centers


def per_pixel_plucker(c2w, K, h, w):
    uv = pixel_centers(h, w, dtype=K.dtype)
    xy = (uv - K[..., None, None, 2:]) / K[..., None, None, :2]
    d_cam = torch.cat((xy, torch.ones_like(xy[..., :1])), dim=-1)
    d = torch.nn.functional.normalize(
        (c2w[..., None, None, :3, :3] @ d_cam[..., None])[..., 0], dim=-1
    )
    o = c2w[..., None, None, :3, 3].expand_as(d)
    return torch.cat((d, torch.linalg.cross(o, d, dim=-1)), dim=-1).movedim(-1, -3)


def test_plucker_rays_match_the_per_pixel_definition_with_gradients():
    g = torch.Generator().manual_seed(0)
    r6 = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    c2w = make_c2w(rot6d_to_matrix(r6), torch.randn(2, 3, 3, generator=g, dtype=torch.float64))
    K = torch.tensor([9.0, 11.0, 4.0, 3.5], dtype=torch.float64).expand(2, 3, 4)
    c2w.requires_grad_()
    K = K.clone().requires_grad_()
    weights = torch.rand(2, 3, 6, 7, 5, generator=g, dtype=torch.float64)
    fast = plucker_rays(c2w, K, 7, 5)
    grads = torch.autograd.grad((fast * weights).sum(), (c2w, K))
    ref = per_pixel_plucker(c2w, K, 7, 5)
    ref_grads = torch.autograd.grad((ref * weights).sum(), (c2w, K))
    torch.testing.assert_close(fast, ref)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)
    _, dirs = camera_rays(c2w, K, 7, 5, normalize_dirs=False)
    torch.testing.assert_close(
        dirs[..., 2, 3, :],
        (
            c2w[..., :3, :3]
            @ torch.stack(
                (
                    (3.5 - K[..., 2]) / K[..., 0],
                    (2.5 - K[..., 3]) / K[..., 1],
                    torch.ones_like(K[..., 0]),
                ),
                dim=-1,
            )[..., None]
        )[..., 0],
    )
