"""Shared explicit-3D parts: Gaussian scene layout, rays, heads and the encoder."""

import pytest
import torch

from rayzer.geometry import (
    look_at,
    matrix_to_quaternion,
    quaternion_to_matrix,
    random_rotation,
    se3_inverse,
)
from rayzer.models.gaussians import (
    SH_C0,
    GaussianScene,
    pixel_quaternions,
    pixel_rays,
    pixel_sh,
    rgb_to_sh_dc,
    sh_band_damping,
)
from rayzer.models.heads import (
    CameraTokenHead,
    DPTLiteHead,
    PairwisePoseHead,
    PixelLinearDecoder,
    SoftplusFocalHead,
    focal_from_fov_logit,
    inverse_softplus,
)
from rayzer.models.heads.focal import shared_focal_intrinsics
from rayzer.models.view_encoder import ViewTokenEncoder

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _cameras(b: int, v: int) -> torch.Tensor:
    eye = torch.randn(b, v, 3) * 2
    return look_at(eye, torch.zeros(3), torch.tensor([0.0, -1.0, 0.0]))


def test_pixel_rays_unit_and_depth_relation():
    torch.manual_seed(0)
    c2w = _cameras(2, 3)
    K = torch.tensor([0.9, 1.2, 0.45, 0.55]).expand(2, 3, 4)
    origins, dirs, cos_z = pixel_rays(c2w, K, 8, 6)
    assert origins.shape == dirs.shape == (2, 3, 8, 6, 3) and cos_z.shape == (2, 3, 8, 6)
    torch.testing.assert_close(dirs.norm(dim=-1), torch.ones(2, 3, 8, 6))
    t = torch.rand(2, 3, 8, 6) * 5 + 0.5
    points = origins + t[..., None] * dirs
    # Camera-frame z of the point = distance · cos_z.
    w2c = se3_inverse(c2w)[:, :, None, None]
    z = (w2c[..., 2, :3] * points).sum(-1) + w2c[..., 2, 3]
    torch.testing.assert_close(z, t * cos_z, atol=1e-5, rtol=1e-5)
    # The centre ray of a centred camera is the optical axis: cos_z = 1 there.
    _, _, c = pixel_rays(c2w, torch.tensor([1.0, 1.0, 0.5, 0.5]).expand(2, 3, 4), 3, 3)
    torch.testing.assert_close(c[..., 1, 1], torch.ones(2, 3))


def test_pixel_quaternions_follow_the_camera():
    torch.manual_seed(0)
    R = random_rotation(6).reshape(2, 3, 3, 3)
    c2w = torch.eye(4).repeat(2, 3, 1, 1)
    c2w[..., :3, :3] = R
    zero = torch.zeros(2, 3, 4, 2, 2)
    q = pixel_quaternions(zero, c2w)  # camera-frame identity → the camera's own rotation
    assert q.shape == (2, 3 * 4, 4)
    torch.testing.assert_close(
        quaternion_to_matrix(q).reshape(2, 3, 4, 3, 3),
        R[:, :, None].expand(-1, -1, 4, -1, -1),
        atol=1e-5,
        rtol=0,
    )
    torch.testing.assert_close(q.norm(dim=-1), torch.ones(2, 12))
    # A camera-frame rotation composes on the right of the camera's rotation.
    Rc = random_rotation(1)[0]
    raw = (matrix_to_quaternion(Rc) - torch.tensor([1.0, 0, 0, 0]))[None, None, :, None, None]
    q2 = pixel_quaternions(raw.expand(2, 3, 4, 2, 2), c2w)
    expected = (R @ Rc)[:, :, None].expand(-1, -1, 4, -1, -1).reshape(2, 12, 3, 3)
    torch.testing.assert_close(quaternion_to_matrix(q2), expected, atol=1e-5, rtol=0)


def test_pixel_sh_layout_and_damping():
    degree, k = 2, 9
    raw = torch.arange(2 * 3 * k * 4 * 5, dtype=torch.float32).reshape(2, 1, 3 * k, 4, 5)
    sh = pixel_sh(raw, degree)
    assert sh.shape == (2, 20, k, 3)
    # Gaussian of pixel (i, j) of view 0, coefficient c, colour ch = channel ch·K + c.
    i, j, c, ch = 3, 2, 4, 1
    assert sh[1, i * 5 + j, c, ch] == raw[1, 0, ch * k + c, i, j]
    with pytest.raises(ValueError, match="SH channels"):
        pixel_sh(raw, 1)
    damp = sh_band_damping(2)
    torch.testing.assert_close(damp, torch.tensor([1.0] + [0.025] * 3 + [0.00625] * 5))
    torch.testing.assert_close(
        0.5 + SH_C0 * rgb_to_sh_dc(torch.tensor([0.2, 0.9])), torch.tensor([0.2, 0.9])
    )


def test_gaussian_scene_render_args_and_detach():
    n = 6
    scene = GaussianScene(
        means=torch.randn(1, n, 3, requires_grad=True),
        quats=torch.randn(1, n, 4),
        scales=torch.rand(1, n, 3),
        opacities=torch.rand(1, n),
        sh=torch.randn(1, n, 1, 3),
        sh_degree=0,
        input_depth=torch.rand(1, 1, 1, 2, 3),
        c2w=torch.eye(4)[None, None],
        K_norm=torch.ones(1, 1, 4),
    )
    args = scene.to_render_args()
    assert set(args) == {"means", "quats", "scales", "opacities", "colors", "sh_degree"}
    assert args["colors"] is scene.sh and scene.num_gaussians == n
    detached = scene.detach()
    assert not detached.means.requires_grad and detached.sh_degree == 0


def test_focal_parameterisations():
    torch.testing.assert_close(focal_from_fov_logit(torch.zeros(3)), torch.ones(3))
    f = focal_from_fov_logit(torch.tensor([-50.0, -3.0, 3.0, 50.0]))
    assert (f > 0).all() and torch.isfinite(f).all() and f[0] > f[1] > 1 > f[2] > f[3]
    for y in (0.05, 1.25, 7.0):
        torch.testing.assert_close(
            torch.nn.functional.softplus(torch.tensor(inverse_softplus(y))), torch.tensor(y)
        )
    head = SoftplusFocalHead(16, focal_init=1.25)
    f = head(torch.randn(4, 16) * 100)  # any token: positive, near 1.25 at initialisation
    assert (f > 0).all() and (f - 1.25).abs().max() < 0.05
    K = shared_focal_intrinsics(torch.tensor([1.0, 2.0]), 3, height=32, width=64)
    assert K.shape == (2, 3, 4)
    torch.testing.assert_close(K[1, 2], torch.tensor([2.0, 4.0, 0.5, 0.5]))  # fx = fy in pixels


def test_pose_heads_start_at_identity():
    torch.manual_seed(0)
    tokens = torch.randn(2, 5, 16)
    c2w = PairwisePoseHead(16)(tokens, canonical=2)
    assert c2w.shape == (2, 5, 4, 4)
    assert torch.equal(c2w[:, 2], torch.eye(4).expand(2, 4, 4))  # exactly
    assert (c2w - torch.eye(4)).abs().max() < 0.05  # the others near it
    assert (c2w[:, [0, 1, 3, 4]] - torch.eye(4)).abs().max() > 0  # but not clamped to it
    head = CameraTokenHead(16)
    c2w, fov = head(tokens)
    assert torch.equal(c2w, torch.eye(4).expand(2, 5, 4, 4)) and torch.equal(fov, torch.zeros(2, 5))
    # Zero last layer still learns: its gradient is non-zero.
    (c2w[..., :3, 3].sum() + fov.sum()).backward()
    assert head.mlp[3].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("patch,hw", [(8, (32, 24)), (14, (28, 42)), (4, (8, 8))])
def test_dense_heads_any_patch_and_size(patch, hw):
    torch.manual_seed(0)
    h, w = hw
    n = (h // patch) * (w // patch)
    taps = [torch.randn(2, 3, n, 32) for _ in range(2)]
    head = DPTLiteHead(32, patch, 5, num_taps=2, features=32, rgb_skip=8)
    images = torch.rand(2, 3, 3, h, w)
    out = head(taps, h, w, images)
    assert out.shape == (2, 3, 5, h, w)
    with pytest.raises(ValueError, match="RGB skip"):
        head(taps, h, w)
    dec = PixelLinearDecoder(32, patch, 7)
    assert dec(taps[0], h, w).shape == (2, 3, 7, h, w)


def test_dpt_rgb_skip_reads_pixels_at_full_resolution():
    torch.manual_seed(0)
    head = DPTLiteHead(16, 8, 1, num_taps=1, features=16, rgb_skip=4, out_init_std=0.1)
    taps = [torch.randn(1, 1, 4, 16)]
    images = torch.rand(1, 1, 3, 16, 16)
    changed = images.clone()
    changed[..., 5, 6] += 0.5  # one pixel
    diff = (head(taps, 16, 16, changed) - head(taps, 16, 16, images)).abs()[0, 0, 0]
    assert diff[5, 6] > 0 and diff[0, 0] == 0 and diff[12, 12] == 0  # local: a 3×3 + 3×3 reach


def test_view_encoder_reference_tokens_and_set_equivariance():
    torch.manual_seed(0)
    enc = ViewTokenEncoder(
        dim=32, depth=1, num_heads=4, num_registers=2, pos_enc_dim=16, reference_tokens=True
    ).eval()
    x = torch.randn(1, 3, 4, 32)
    ref = torch.tensor([[True, False, False]])
    out = enc(x, (2, 2), ref)
    assert out.camera.shape == (1, 3, 32) and out.patches.shape == (1, 3, 4, 32)
    # No view-index embedding: swapping two non-reference views swaps their outputs.
    swapped = enc(x[:, [0, 2, 1]], (2, 2), ref)
    torch.testing.assert_close(swapped.camera[:, [0, 2, 1]], out.camera, atol=1e-5, rtol=0)
    # The reference tokens differ from the others': moving the reference changes view 0.
    other = enc(x, (2, 2), torch.tensor([[False, True, False]]))
    assert (other.camera[:, 0] - out.camera[:, 0]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="is_reference"):
        enc(x, (2, 2))
    assert torch.isfinite(out.patches).all()
