"""E-RayZer (issue 18): cameras, Gaussians through the rasterizer, any view count, overfitting."""

import pytest
import torch

from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.models.base import Capabilities, ModelOutput
from rayzer.models.erayzer import ERayZer, ERayZerConfig
from rayzer.models.gaussians import GaussianScene, pixel_rays
from rayzer.models.views import gather_views

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


#: Tiny enough for CPU tests: d 32, 1 + 1 pairs, patch 8.
TINY = {"dim": 32, "num_heads": 2, "pose_depth": 1, "scene_depth": 1, "pos_enc_dim": 16}


def tiny(**changes) -> ERayZer:
    torch.manual_seed(0)
    return ERayZer(ERayZerConfig(**{**TINY, **changes}))


def test_capabilities_and_config():
    assert ERayZer.capabilities == Capabilities(
        predicts_cameras=True, outputs_depth=True, outputs_gaussians=True
    )
    assert ERayZer.config_class is ERayZerConfig
    assert ERayZerConfig().gaussian_channels == 12  # 1 + 3 + 4 + 1 + 3·1
    assert ERayZerConfig(sh_degree=3).gaussian_channels == 9 + 48


def test_forward_shapes_4_plus_4():
    model = tiny()
    images = torch.rand(2, 8, 3, 32, 32)
    out = model({"image": images}, [0, 2, 4, 6], [1, 3, 5, 7])
    assert isinstance(out, ModelOutput) and isinstance(out.scene, GaussianScene)
    cams, scene = out.cameras, out.scene
    assert cams.c2w.shape == (2, 8, 4, 4) and cams.K_norm.shape == (2, 8, 4)
    assert cams.tokens.shape == (2, 8, 32) and cams.canonical == 4
    n = 4 * 32 * 32
    assert scene.means.shape == (2, n, 3) and scene.quats.shape == (2, n, 4)
    assert scene.scales.shape == (2, n, 3) and scene.opacities.shape == (2, n)
    assert scene.sh.shape == (2, n, 1, 3) and scene.sh_degree == 0
    assert out.input_depth.shape == (2, 4, 1, 32, 32) and out.input_depth is scene.input_depth
    assert out.rendered.rgb.shape == (2, 4, 3, 32, 32) and out.render is out.rendered.rgb
    assert out.rendered.depth.shape == out.rendered.alpha.shape == (2, 4, 1, 32, 32)
    assert out.input_index.tolist() == [[0, 2, 4, 6]] * 2
    # Activations keep every Gaussian parameter in its documented range.
    cfg = model.cfg
    assert (out.input_depth > 0).all() and (out.input_depth < cfg.depth_far).all()
    assert (scene.scales >= torch.exp(torch.tensor(cfg.scale_log_min)) * 0.999).all()
    assert (scene.scales <= torch.exp(torch.tensor(cfg.scale_log_max)) * 1.001).all()
    assert ((scene.opacities > 0) & (scene.opacities < 1)).all()
    torch.testing.assert_close(scene.quats.norm(dim=-1), torch.ones(2, n))
    assert ((out.render >= 0) & (out.render <= 1)).all()
    terms = model.loss(out, {"image": images}, None)
    assert {"loss", "mse", "psnr"} <= set(terms) and terms["loss"].requires_grad


def test_canonical_middle_view_is_exact_identity_and_focal_starts_at_init():
    model = tiny()
    for v in (2, 3, 5, 8):
        cams = model.predict_cameras(torch.rand(1, v, 3, 16, 24))
        assert cams.canonical == v // 2
        assert torch.equal(cams.c2w[0, v // 2], torch.eye(4))
        others = [i for i in range(v) if i != v // 2]
        assert (cams.c2w[0, others] - torch.eye(4)).abs().max() < 0.05  # near identity
        f = cams.K_norm[0, :, 0]
        assert (f - 1.25).abs().max() < 0.02 and torch.equal(f, f[:1].expand(v))  # one focal
        torch.testing.assert_close(cams.K_norm[0, :, 1], f * 24 / 16)  # fx = fy in pixels
        assert (cams.K_norm[0, :, 2:] == 0.5).all()


@pytest.mark.parametrize(
    "views,inputs,targets,hw",
    [(2, [0], [1], (16, 16)), (3, [0, 2], [1], (24, 16)), (5, [1, 3], [0, 2, 4], (16, 40))],
)
def test_any_view_count_and_non_square(views, inputs, targets, hw):
    model = tiny()
    h, w = hw
    out = model({"image": torch.rand(1, views, 3, h, w)}, inputs, targets)
    assert out.cameras.c2w.shape == (1, views, 4, 4)
    assert out.render.shape == (1, len(targets), 3, h, w)
    assert out.input_depth.shape == (1, len(inputs), 1, h, w)
    assert out.scene.num_gaussians == len(inputs) * h * w
    assert torch.isfinite(out.render).all()


def test_rejects_bad_sizes():
    model = tiny()
    with pytest.raises(ValueError, match="divisible"):
        model.predict_cameras(torch.rand(1, 3, 3, 20, 16))
    with pytest.raises(ValueError, match="at least 2"):
        model.predict_cameras(torch.rand(1, 1, 3, 16, 16))


def test_scene_never_reads_target_images():
    """The scene is a function of the input images and input cameras only: with the input
    cameras held fixed, changing a target image changes nothing in it. (In ``forward`` a target
    still moves the input cameras, because the pose encoder sees all views, as in the paper.)"""
    model = tiny().eval()
    images = torch.rand(1, 5, 3, 16, 16)
    inputs, targets = [0, 2, 4], [1, 3]
    out = model({"image": images}, inputs, targets)
    idx = out.input_index
    c2w_in = gather_views(out.cameras.c2w, idx)
    K_in = gather_views(out.cameras.K_norm, idx)
    # forward's scene is exactly reconstruct() of the input views at their predicted cameras.
    again = model.reconstruct(images[:, inputs], c2w_in, K_in)
    for name in ("means", "quats", "scales", "opacities", "sh", "input_depth"):
        torch.testing.assert_close(getattr(out.scene, name), getattr(again, name))
    changed = images.clone()
    changed[:, targets] = torch.rand_like(changed[:, targets])
    out2 = model({"image": changed}, inputs, targets)
    scene2 = model.reconstruct(changed[:, inputs], c2w_in, K_in)
    for name in ("means", "quats", "scales", "opacities", "sh", "input_depth"):
        assert torch.equal(getattr(again, name), getattr(scene2, name)), name
    # ... while the pose encoder does look at the targets.
    assert (out2.cameras.c2w - out.cameras.c2w).abs().max() > 0


def test_render_any_cameras_any_size():
    model = tiny().eval()
    images = torch.rand(1, 3, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images, cams.c2w, cams.K_norm)
    big = model.render(scene, cams.c2w[:, :2], cams.K_norm[:, :2], 40, 24)
    assert big.rgb.shape == (1, 2, 3, 40, 24) and big.depth.shape == (1, 2, 1, 40, 24)
    # A camera far behind the scene, looking away from it, sees only the background.
    away = torch.eye(4).clone()
    away[2, 3] = -100.0
    away[:3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0]))
    empty = model.render(scene, away[None, None], cams.K_norm[:, :1], 8, 8)
    torch.testing.assert_close(empty.rgb, torch.ones_like(empty.rgb))  # white background
    assert empty.alpha.abs().max() == 0


def test_gradients_reach_pose_and_focal_through_the_rasterizer():
    model = tiny(focal_freeze_steps=5)
    images = torch.rand(1, 4, 3, 16, 16)
    batch, inputs, targets = {"image": images}, [0, 2], [1, 3]

    def grads() -> tuple[float, float]:
        model.zero_grad()
        model.loss(model(batch, inputs, targets), batch, None)["loss"].backward()
        pose = sum(p.grad.abs().sum() for p in model.pose_head.parameters() if p.grad is not None)
        focal = sum(p.grad.abs().sum() for p in model.focal_head.parameters() if p.grad is not None)
        return float(pose), float(focal)

    model.on_train_step(0, 100)
    pose, focal = grads()
    assert pose > 0 and focal == 0  # focal detached during the freeze
    model.on_train_step(5, 100)
    pose, focal = grads()
    assert pose > 0 and focal > 0
    # The rasterizer itself passes gradients to a target camera's pose and focal.
    scene = model.reconstruct(
        images[:, :2],
        torch.eye(4).expand(1, 2, 4, 4),
        model.predict_cameras(images).K_norm[:, :2].detach(),
    )
    c2w = torch.eye(4)[None, None].clone().requires_grad_()
    K = torch.tensor([[[1.25, 1.25, 0.5, 0.5]]], requires_grad=True)
    model.render(scene.detach(), c2w, K, 16, 16).rgb.sub(images[:, 1:2]).square().mean().backward()
    assert c2w.grad[0, 0, :3].abs().sum() > 0 and K.grad[0, 0, :2].abs().sum() > 0


def test_tiny_erayzer_overfits_one_clip():
    """60 Adam steps on one 32 px orbit clip (3 inputs, 3 targets): the target PSNR rises by
    more than 3 dB and ends above a flat image of the inputs' mean colour (structure, not just
    colour, was learned)."""
    torch.manual_seed(0)
    clip = render_clip(3, SynthConfig(family="orbit", frames=6, height=32, width=32))
    images = clip.images.unsqueeze(0)
    batch, inputs, targets = {"image": images}, [0, 2, 4], [1, 3, 5]
    model = ERayZer(ERayZerConfig(dim=48, num_heads=4, pose_depth=1, scene_depth=2))
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, betas=(0.9, 0.95))
    psnr = []
    for step in range(60):
        model.on_train_step(step, 60)
        terms = model.loss(model(batch, inputs, targets), batch, None)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        psnr.append(float(terms["psnr"]))
    first, last = psnr[0], sum(psnr[-5:]) / 5
    flat = images[:, inputs].mean(dim=(1, 3, 4), keepdim=True).expand_as(images[:, targets])
    flat_psnr = float(
        (-10 * (flat - images[:, targets]).square().flatten(2).mean(-1).log10()).mean()
    )
    assert last > first + 3.0, f"PSNR rose only from {first:.2f} to {last:.2f} dB"
    assert last > flat_psnr + 1.5, f"PSNR {last:.2f} dB vs the flat mean colour's {flat_psnr:.2f}"


def test_presets_build_and_match_the_paper_config():
    from rayzer.config import load_config

    tiny_cfg = load_config("erayzer-tiny-cpu")
    assert isinstance(tiny_cfg.model, ERayZerConfig)
    assert tiny_cfg.data.image_size % tiny_cfg.model.patch_size == 0
    ERayZer(tiny_cfg.model)
    paper = load_config("erayzer-dl3dv")
    assert paper.model == ERayZerConfig.paper()
    assert (paper.data.image_size, paper.data.num_views, paper.train.perceptual_weight) == (
        256,
        10,
        0.2,
    )
    with torch.device("meta"):  # paper scale without allocating it
        n = sum(p.numel() for p in ERayZer(paper.model).parameters())
    assert 200e6 < n < 300e6  # 32 blocks at d 768 (7.1 M each) + embeddings and heads


def test_rendered_depth_agrees_with_input_depth_at_the_input_camera():
    """Both depths are camera z (the Gaussians sit at a distance along the unit ray; the
    interface's depth is z): opaque, small Gaussians of one view, rendered at that view's own
    camera, give back its input depth."""
    model = tiny().eval()
    p2 = model.cfg.patch_size**2
    with torch.no_grad():  # every Gaussian at distance 4 along its unit ray: a smooth depth map
        model.gaussian_decoder.unembed.proj.weight[:p2] = 0.0
    images = torch.rand(1, 2, 3, 16, 24)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images[:, :1], cams.c2w[:, :1], cams.K_norm[:, :1]).detach()
    scene.opacities = torch.full_like(scene.opacities, 0.99)
    scene.scales = torch.full_like(scene.scales, 0.01)
    out = model.render(scene, cams.c2w[:, :1], cams.K_norm[:, :1], 16, 24)
    seen = out.alpha > 0.9
    assert seen.float().mean() > 0.9
    torch.testing.assert_close(out.depth[seen], scene.input_depth[seen], atol=0.02, rtol=0.01)
    # ... and not the distance along the ray, which is larger off-axis.
    _, _, cos_z = pixel_rays(cams.c2w[:, :1], cams.K_norm[:, :1], 16, 24)
    dist = scene.input_depth[:, :, 0] / cos_z
    assert (dist[..., 0, 0] - scene.input_depth[..., 0, 0, 0]).abs().max() > 0.1


def test_geometry_stays_fp32_under_bf16_autocast():
    model = tiny()
    images = torch.rand(1, 3, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model({"image": images}, [0, 2], [1])
        terms = model.loss(out, {"image": images}, None)
    terms["loss"].backward()
    assert out.cameras.c2w.dtype == out.cameras.K_norm.dtype == torch.float32
    assert out.scene.means.dtype == out.render.dtype == torch.float32
    assert torch.isfinite(out.render).all() and torch.isfinite(terms["loss"])


@pytest.mark.parametrize("views", [2, 3, 5])
def test_pose_pair_input_reads_each_view_with_its_change_from_the_canonical(views):
    """pose_pair_input (our lever, default off): the pose patch embedding reads 6 channels,
    [view ‖ view − canonical], for any view count; the canonical stays at the identity."""
    assert tiny().pose_patch.proj.in_features == 3 * 8 * 8  # the release's layout by default
    model = tiny(pose_pair_input=True)
    assert model.pose_patch.proj.in_features == 6 * 8 * 8
    with torch.no_grad():  # every weight moves: the fresh heads predict (almost) identity
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    images = torch.rand(1, views, 3, 16, 24)
    canonical = views // 2
    cams = model.predict_cameras(images)
    assert cams.canonical == canonical
    torch.testing.assert_close(cams.c2w[0, canonical], torch.eye(4), rtol=0, atol=0)
    # what the patch embedding was given: exactly [view ‖ view − canonical]
    seen = {}
    hook = model.pose_patch.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    model.predict_cameras(images)
    hook.remove()
    torch.testing.assert_close(seen["x"][:, :, :3], images, rtol=0, atol=0)
    torch.testing.assert_close(
        seen["x"][:, :, 3:], images - images[:, canonical : canonical + 1], rtol=0, atol=0
    )
