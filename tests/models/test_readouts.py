"""The geometric decoder readout (sweep): geometry of the plane sweep, copying an input
view at initialisation, gradients to the cameras, and config validation."""

import math

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.geometry import make_c2w
from rayzer.models import LVSM, RayZer
from rayzer.models.readouts import sweep_colours


def orbit_cameras(v: int, step_deg: float, radius: float = 3.0) -> torch.Tensor:
    """(1, v, 4, 4) cameras on a horizontal circle, ``step_deg`` apart, looking at the origin."""
    out = []
    for i in range(v):
        a = math.radians(step_deg * i)
        pos = torch.tensor([radius * math.sin(a), 0.0, -radius * math.cos(a)])
        forward = -pos / pos.norm()
        down = torch.tensor([0.0, 1.0, 0.0])
        right = torch.linalg.cross(down, forward)
        out.append(make_c2w(torch.stack((right, down, forward), dim=1), pos))
    return torch.stack(out)[None]


K_NORM = torch.tensor([1.0, 1.0, 0.5, 0.5])


def test_sweep_of_an_input_camera_reads_its_own_pixels_at_every_depth():
    c2w = orbit_cameras(2, 20.0)
    K = K_NORM.expand(1, 2, 4)
    images = torch.rand(1, 2, 3, 8, 12)
    col, valid, cos = sweep_colours(c2w[:, :1], K[:, :1], images, c2w, K, num_depths=6, near=0.5)
    assert col.shape == (1, 2, 3, 1, 96, 6) and valid.shape == cos.shape == (1, 2, 1, 96, 6)
    own = images[0, 0].flatten(1)  # (3, HW)
    torch.testing.assert_close(col[0, 0, :, 0], own[:, :, None].expand(-1, -1, 6))
    assert valid[0, 0].all()
    torch.testing.assert_close(cos[0, 0, 0], torch.ones(96, 6))


def test_sweep_reads_extra_channels_like_the_colours():
    """Any per-pixel channels beyond RGB (e.g. a depth map) are sampled at the same places."""
    c2w = orbit_cameras(3, 15.0)
    K = K_NORM.expand(1, 3, 4)
    images = torch.rand(1, 2, 3, 8, 8)
    extra = torch.cat((images, images[:, :, :2]), dim=2)  # 5 channels, the last two copies
    col3, _, _ = sweep_colours(c2w[:, 2:], K[:, 2:], images, c2w[:, :2], K[:, :2], 4, 0.5)
    col5, _, _ = sweep_colours(c2w[:, 2:], K[:, 2:], extra, c2w[:, :2], K[:, :2], 4, 0.5)
    assert col5.shape == (1, 2, 5, 1, 64, 4)
    torch.testing.assert_close(col5[:, :, :3], col3)
    torch.testing.assert_close(col5[:, :, 3:], col3[:, :, :2])


def test_sweep_finds_the_depth_of_a_fronto_parallel_plane():
    # Camera 1 is 0.5 to the right of camera 0; both see a plane at z = 2 textured with a
    # horizontal pattern. At the depth sample nearest 2, camera 0's rays read camera 1's image
    # where the plane point is: the colour matches camera 0's own image there.
    h = w = 32
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, 0, 3] = 0.5
    K = K_NORM.expand(1, 2, 4)
    u = torch.arange(w) + 0.5
    x_world = lambda cam_x: (u - 16) / 32 * 2.0 + cam_x  # noqa: E731 (plane point seen at u)
    pattern = lambda x: 0.5 + 0.5 * torch.sin(3.0 * x)  # noqa: E731
    img = lambda cam_x: pattern(x_world(cam_x)).expand(3, h, w)  # noqa: E731
    images = torch.stack((img(0.0), img(0.5)))[None]
    # D = 9 over inverse depth [2, 0]: sample 6 is inverse depth 0.5 = depth 2.
    col, valid, _ = sweep_colours(c2w[:, :1], K[:, :1], images, c2w, K, num_depths=9, near=0.5)
    inside = valid[0, 1, 0, :, 6] > 0
    truth = images[0, 0].flatten(1)[:, inside]  # (3, n)
    at_plane = (col[0, 1, :, 0, inside, 6] - truth).abs().mean()
    elsewhere = (col[0, 1, :, 0, inside, 2] - truth).abs().mean()
    assert inside.sum() > 200
    assert at_plane < 0.02 and elsewhere > 5 * at_plane


def test_sweep_marks_samples_behind_or_outside_an_input_view_invalid():
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, :3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))  # looks backwards
    K = K_NORM.expand(1, 2, 4)
    _, valid, _ = sweep_colours(
        c2w[:, :1], K[:, :1], torch.rand(1, 2, 3, 8, 8), c2w, K, num_depths=4, near=0.5
    )
    assert valid[:, 1].sum() == 0 and valid[:, 0].all()


@pytest.mark.parametrize("readout", ["sweep"])
def test_readout_copies_an_input_view_at_initialisation(readout):
    # Rendering an input view's own camera: the untrained geometric readouts already reproduce
    # it; the regression head has to learn this (calibration notes, issue 3).
    torch.manual_seed(0)
    model = LVSM(tiny_model_config(name="lvsm", keep_input_tokens=True, decoder_readout=readout))
    c2w = orbit_cameras(4, step_deg=30.0)
    K = torch.tensor([32.0, 32.0, 16.0, 16.0]).expand(1, 4, 4)
    images = torch.rand(1, 4, 3, 32, 32)
    with torch.no_grad():
        render = model.eval()(
            {"image": images, "c2w": c2w, "K": K}, torch.arange(4), torch.tensor([0, 2])
        ).render
    for j, view in enumerate((0, 2)):
        err = (render[0, j] - images[0, view]).square().mean()
        err_mean = (images[0].mean(0) - images[0, view]).square().mean()
        # measured ≈ 0.03 – 0.09 × err_mean; the untrained regression head gives ≈ 1.3 ×
        assert err < 0.25 * err_mean


@pytest.mark.parametrize("readout", ["sweep"])
def test_rayzer_readout_sends_a_gradient_to_the_pose_and_focal_heads(readout):
    torch.manual_seed(0)
    model = RayZer(tiny_model_config(keep_input_tokens=True, decoder_readout=readout))
    images = torch.rand(2, 4, 3, 16, 16)
    out = model({"image": images}, torch.tensor([0, 2]), torch.tensor([1, 3]))
    assert out.render.shape == (2, 2, 3, 16, 16) and torch.isfinite(out.render).all()
    (out.render - images[:, [1, 3]]).square().mean().backward()
    for head in ("pose_head", "focal_head"):
        grads = [p.grad for n, p in model.named_parameters() if head in n]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0, head


def test_sweep_works_without_the_input_tokens():
    model = LVSM(tiny_model_config(name="lvsm", decoder_readout="sweep"))  # latent scene only
    c2w = orbit_cameras(3, 10.0)
    K = torch.tensor([16.0, 16.0, 8.0, 8.0]).expand(1, 3, 4)
    images = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        out = model.eval()(
            {"image": images, "c2w": c2w, "K": K}, torch.tensor([0, 2]), torch.tensor([0])
        ).render
    assert out.shape == (1, 1, 3, 16, 16) and torch.isfinite(out).all()
    # The target is input 0's camera: the sweep reads its pixels from the views themselves, so
    # the untrained model copies it without any input token in the decoder's context.
    err = (out[0, 0] - images[0, 0]).square().mean()
    assert err < 0.25 * (images[0].mean(0) - images[0, 0]).square().mean()


def test_readout_config_is_validated():
    with pytest.raises(ValueError, match=r"decoder\.readout"):
        tiny_model_config(decoder_readout="blend")  # deleted (no preset, no gain)
    with pytest.raises(ValueError, match=r"decoder\.readout"):
        tiny_model_config(decoder_readout="splat")
    with pytest.raises(ValueError, match="sweep_depths"):
        tiny_model_config(decoder_readout="sweep", sweep_depths=1)


def test_sweep_falls_back_to_the_regressed_colour_where_no_input_view_sees():
    # A target camera looking away from every input view: its rays read nothing, and the
    # render must come from the regression head (≈ 0.5 grey at initialisation), not black.
    torch.manual_seed(0)
    model = LVSM(tiny_model_config(name="lvsm", decoder_readout="sweep")).eval()
    c2w = orbit_cameras(3, 10.0)
    away = c2w[:, :1].clone()
    away[..., :3, :3] = away[..., :3, :3] @ torch.diag(torch.tensor([-1.0, 1.0, -1.0]))
    c2w = torch.cat((c2w, away), dim=1)
    K = torch.tensor([16.0, 16.0, 8.0, 8.0]).expand(1, 4, 4)
    images = torch.full((1, 4, 3, 16, 16), 0.9)
    with torch.no_grad():
        out = model(
            {"image": images, "c2w": c2w, "K": K}, torch.tensor([0, 1, 2]), torch.tensor([3, 0])
        ).render
    assert 0.4 < out[0, 0].mean() < 0.6  # looks away: the regressed colour
    assert out[0, 1].mean() > 0.8  # an input camera: the observed 0.9 (gate 0.88)


def test_geometric_decoder_rejects_a_target_size_unlike_the_inputs():
    model = LVSM(tiny_model_config(name="lvsm", decoder_readout="sweep"))
    c2w = orbit_cameras(2, 10.0)
    K = K_NORM.expand(1, 2, 4)
    scene = model.reconstruct(torch.rand(1, 2, 3, 16, 16), c2w, K)
    with pytest.raises(ValueError, match="must have their size"):
        model.render(scene, c2w[:, :1], K[:, :1], 32, 32)
