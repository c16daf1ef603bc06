import math

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.geometry import make_c2w, project_points, rot6d_to_matrix
from rayzer.models import LVSM, LatentScene, RayZer
from rayzer.nn import EpipolarBias, Transformer, epipolar_log_counts
from rayzer.nn.epipolar import project_ray_samples

FLOOR = math.log(1e-2)


def _random_cameras(b: int, v: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    R = rot6d_to_matrix(torch.eye(3)[:2].reshape(6) + 0.2 * torch.randn(b, v, 6, generator=g))
    c2w = make_c2w(R, 0.3 * torch.randn(b, v, 3, generator=g))
    K = torch.tensor([1.1, 1.0, 0.5, 0.5]) + 0.05 * torch.randn(b, v, 4, generator=g)
    return c2w, K


def test_a_view_against_itself_peaks_at_the_same_patch():
    # Copying an input is the easiest rendering: every depth sample of a ray projects back into
    # its own patch, so each query's largest count is its own patch and is ≈ log(1 + floor).
    c2w, K = _random_cameras(2, 3, seed=1)
    lc = epipolar_log_counts(c2w, K, c2w, K, 32, 32, 8)  # (2, 3, 16, 3·16)
    own = lc.unflatten(-1, (3, 16))
    for view in range(3):
        block = own[:, view, :, view]  # (2, 16, 16)
        assert torch.equal(block.argmax(-1), torch.arange(16).expand(2, 16))
        torch.testing.assert_close(
            block.diagonal(dim1=-2, dim2=-1), torch.full((2, 16), math.log(1.01))
        )


def test_counts_follow_the_epipolar_line_of_a_translated_camera():
    # Key camera 1 unit to the right: a query ray's samples from depth 0.5 to infinity project
    # onto the same image row, from its own column (infinity) leftwards; other rows stay at the
    # floor, and the count decays to the floor off the line.
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, 0, 3] = 1.0
    K = torch.tensor([1.0, 1.0, 0.5, 0.5]).expand(1, 2, 4)
    lc = epipolar_log_counts(c2w[:, :1], K[:, :1], c2w[:, 1:], K[:, 1:], 64, 64, 8)[0, 0]
    q = 3 * 8 + 6  # row 3, column 6
    counts = lc[q].exp().reshape(8, 8) - 1e-2
    # sigma = 0.5 patch: the neighbouring rows get exp(-2) of the line's weight, no more.
    assert (counts[3, :7] > 5 * counts[[2, 4], :7]).all()
    assert counts[3, :7].min() > 0.05  # columns 0…6 are crossed
    assert counts[3, 7] < 0.15 and counts[0].max() < 1e-3 and counts[7].max() < 1e-3


def test_points_behind_the_key_camera_do_not_count():
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # looks backwards
    K = torch.tensor([1.0, 1.0, 0.5, 0.5]).expand(1, 2, 4)
    lc = epipolar_log_counts(c2w[:, :1], K[:, :1], c2w[:, 1:], K[:, 1:], 32, 32, 8)
    torch.testing.assert_close(lc, torch.full_like(lc, FLOOR))


def test_counts_are_differentiable_in_the_key_cameras():
    c2w, K = _random_cameras(1, 3, seed=2)
    c2w = c2w.requires_grad_()
    K = K.requires_grad_()
    lc = epipolar_log_counts(c2w[:, :1], K[:, :1], c2w[:, 1:], K[:, 1:], 32, 32, 8)
    (lc * torch.randn_like(lc)).sum().backward()
    assert torch.isfinite(c2w.grad).all() and c2w.grad[0, 1:].abs().sum() > 0
    assert torch.isfinite(K.grad).all() and K.grad[0, 1:].abs().sum() > 0


def test_layer_biases_fill_only_the_query_by_key_block():
    bias = EpipolarBias(num_layers=2, num_heads=3, init_weight=1.0)
    lc = torch.randn(2, 4, 5, 6)  # B=2, Vq=4, Nq=5, Nk=6
    masks = bias.layer_biases(lc, seq_len=3 + 6 + 5, key_start=3)
    assert len(masks) == 2
    for m in masks:
        assert m.shape == (8, 3, 14, 14)
        torch.testing.assert_close(
            m[:, :, 9:, 3:9], lc.flatten(0, 1)[:, None].expand(-1, 3, -1, -1)
        )
        rest = m.clone()
        rest[:, :, 9:, 3:9] = 0
        assert rest.abs().max() == 0
    with pytest.raises(ValueError, match="overlap"):
        bias.layer_biases(lc, seq_len=10, key_start=3)


def test_transformer_takes_one_mask_per_block():
    t = Transformer(dim=16, depth=2, num_heads=2)
    x = torch.randn(1, 5, 16)
    zero = torch.zeros(1, 2, 5, 5)
    torch.testing.assert_close(t(x, [zero, zero]), t(x))
    with pytest.raises(ValueError, match="3 attention masks for 2 blocks"):
        t(x, [zero, zero, zero])


def test_config_needs_input_tokens_in_the_decoder():
    with pytest.raises(ValueError, match="keep_input_tokens"):
        tiny_model_config(epipolar_bias=True)


@pytest.mark.parametrize("name", ["rayzer", "lvsm"])
def test_models_render_with_the_bias_and_need_the_input_tokens(name):
    torch.manual_seed(0)
    cfg = tiny_model_config(name=name, epipolar_bias=True, keep_input_tokens=True)
    images = torch.rand(2, 4, 3, 16, 16)
    inp, tgt = torch.tensor([0, 2]), torch.tensor([1, 3])
    if name == "rayzer":
        model = RayZer(cfg)
        out = model(images, inp, tgt)
        render = out.render
        cams = out.cameras.c2w, out.cameras.K_norm
    else:
        model = LVSM(cfg)
        c2w, _ = _random_cameras(2, 4, seed=3)
        K = torch.tensor([16.0, 16.0, 8.0, 8.0]).expand(2, 4, 4)
        render = model(images, c2w, K, inp, tgt)
        cams = c2w, K / 16
    assert render.shape == (2, 2, 3, 16, 16) and torch.isfinite(render).all()
    render.mean().backward()
    assert model.decoder.epipolar.raw_weight.grad.abs().sum() > 0
    # A scene without the input-view tokens cannot be rendered with the bias.
    scene = LatentScene(
        torch.zeros(2, 3, cfg.dim), images[:, inp], cams[0][:, inp], cams[1][:, inp]
    )
    with pytest.raises(ValueError, match="keep_input_tokens"):
        model.render(scene, cams[0][:, tgt], cams[1][:, tgt], 16, 16)


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
