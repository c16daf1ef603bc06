"""NAS3R (issue 18): masked attention, identity start, any view count, overfitting."""

import math

import pytest
import torch

from _tiny import EXPLICIT_TINY
from rayzer.data.synthetic import SynthConfig, render_clip
from rayzer.models.base import Capabilities
from rayzer.models.gaussians import GaussianScene
from rayzer.models.nas3r import NAS3R, NAS3RConfig
from rayzer.models.views import gather_views

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


#: Tiny enough for CPU tests: d 32, 2 pairs, patch 8, small heads (shared with the loss tests).
TINY = EXPLICIT_TINY["nas3r"]
SCENE_FIELDS = ("means", "quats", "scales", "opacities", "sh", "input_depth")


def tiny(**changes) -> NAS3R:
    torch.manual_seed(0)
    return NAS3R(NAS3RConfig(**{**TINY, **changes}))


def randomise_heads(model: NAS3R) -> None:
    """Trained-like heads: the camera head's last layer starts at zero and the dense heads'
    output convs near zero, which would hide dependencies."""
    torch.nn.init.normal_(model.camera_head.mlp[3].weight, std=0.05)
    torch.nn.init.normal_(model.depth_head.out.weight, std=0.1)
    torch.nn.init.normal_(model.gaussian_head.out.weight, std=0.1)


def test_capabilities_and_paper_config():
    assert NAS3R.capabilities == Capabilities(
        predicts_cameras=True, outputs_depth=True, outputs_gaussians=True
    )
    assert NAS3RConfig().gaussian_channels == 11
    paper = NAS3RConfig.paper()
    assert (paper.dim, paper.depth, paper.patch_size, paper.sh_degree) == (1024, 24, 14, 4)
    assert max(paper.head_taps) < paper.depth


def test_forward_shapes_4_plus_4():
    model = tiny()
    images = torch.rand(2, 8, 3, 32, 32)
    out = model({"image": images}, [0, 2, 4, 6], [1, 3, 5, 7])
    assert isinstance(out.scene, GaussianScene)
    cams, scene = out.cameras, out.scene
    assert cams.c2w.shape == (2, 8, 4, 4) and cams.K_norm.shape == (2, 8, 4)
    assert cams.tokens.shape == (2, 8, 32) and cams.canonical == 0
    n = 4 * 32 * 32
    assert scene.means.shape == (2, n, 3) and scene.sh.shape == (2, n, 1, 3)
    assert scene.quats.shape == (2, n, 4) and scene.scales.shape == (2, n, 3)
    assert scene.opacities.shape == (2, n)
    assert out.input_depth.shape == (2, 4, 1, 32, 32)
    assert out.render.shape == (2, 4, 3, 32, 32)
    assert out.rendered.depth.shape == out.rendered.alpha.shape == (2, 4, 1, 32, 32)
    cfg = model.cfg
    assert (out.input_depth > cfg.depth_near).all() and (out.input_depth < cfg.depth_far).all()
    assert (scene.scales > 0).all() and (scene.scales <= cfg.scale_max).all()
    # Centres are the depth lifted with the predicted cameras: at step 0 (identity cameras,
    # focal 1) the centre of input pixel (i, j) is z·((j + 0.5)/W − 0.5, (i + 0.5)/H − 0.5, 1).
    z = out.input_depth[0, 0, 0]
    u = (torch.arange(32) + 0.5) / 32 - 0.5
    expected = torch.stack((z * u[None, :], z * u[:, None], z), dim=-1).reshape(-1, 3)
    torch.testing.assert_close(scene.means[0, : 32 * 32], expected, atol=1e-5, rtol=1e-5)
    terms = model.loss(out, {"image": images}, None)
    assert {"loss", "mse", "psnr"} <= set(terms)


def test_every_camera_starts_at_identity_with_fov_2_atan_half():
    model = tiny()
    for hw in ((32, 32), (16, 40)):
        h, w = hw
        images = torch.rand(2, 5, 3, h, w)
        for cams in (
            model.predict_cameras(images),
            model({"image": images}, [1, 3], [0, 2, 4]).cameras,
        ):
            assert torch.equal(cams.c2w, torch.eye(4).expand(2, 5, 4, 4))
            f = cams.K_norm[..., 0]
            torch.testing.assert_close(f, torch.ones(2, 5))
            fov = 2 * torch.atan(0.5 / f)
            torch.testing.assert_close(fov, torch.full((2, 5), 2 * math.atan(0.5)))
            torch.testing.assert_close(cams.K_norm[..., 1], f * w / h)  # fx = fy in pixels
            assert (cams.K_norm[..., 2:] == 0.5).all()


@pytest.mark.parametrize(
    "views,inputs,targets,hw",
    [(2, [0], [1], (16, 16)), (3, [0, 2], [1], (24, 16)), (5, [1, 2, 4], [0, 3], (16, 40))],
)
def test_any_view_count_and_non_square(views, inputs, targets, hw):
    model = tiny()
    randomise_heads(model)
    h, w = hw
    out = model({"image": torch.rand(1, views, 3, h, w)}, inputs, targets)
    assert out.render.shape == (1, len(targets), 3, h, w)
    assert out.input_depth.shape == (1, len(inputs), 1, h, w)
    assert out.cameras.canonical == inputs[0]
    assert torch.equal(out.cameras.c2w[0, inputs[0]], torch.eye(4))  # first context view
    assert torch.isfinite(out.render).all()


@pytest.mark.parametrize("pair_input", [False, True])
def test_context_outputs_never_see_a_target_image(pair_input):
    """The mask test: changing a target image leaves the context cameras, depth and Gaussians
    unchanged (to float rounding), and moves the target cameras; also with the pair input."""
    model = tiny(pair_input=pair_input).eval()
    randomise_heads(model)
    images = torch.rand(2, 5, 3, 16, 24)
    inputs, targets = [0, 2, 3], [1, 4]
    out = model({"image": images}, inputs, targets)
    changed = images.clone()
    changed[:, targets] = torch.rand_like(changed[:, targets])
    out2 = model({"image": changed}, inputs, targets)
    for name in SCENE_FIELDS:
        torch.testing.assert_close(
            getattr(out2.scene, name), getattr(out.scene, name), atol=1e-5, rtol=0
        )
    torch.testing.assert_close(out2.cameras.c2w[:, inputs], out.cameras.c2w[:, inputs])
    torch.testing.assert_close(out2.cameras.K_norm, out.cameras.K_norm)  # focal: context only
    assert (out2.cameras.c2w[:, targets] - out.cameras.c2w[:, targets]).abs().max() > 1e-4
    # Changing a context image does change the scene (the test above can fail).
    changed_ctx = images.clone()
    changed_ctx[:, 2] = torch.rand_like(changed_ctx[:, 2])
    out3 = model({"image": changed_ctx}, inputs, targets)
    assert (out3.scene.input_depth - out.scene.input_depth).abs().max() > 1e-4  # >> atol
    # reconstruct() on the context views alone builds the same scene as forward().
    again = model.reconstruct(
        images[:, inputs],
        gather_views(out.cameras.c2w, out.input_index),
        gather_views(out.cameras.K_norm, out.input_index),
    )
    for name in SCENE_FIELDS:
        torch.testing.assert_close(
            getattr(again, name), getattr(out.scene, name), atol=1e-5, rtol=0
        )


def test_render_any_cameras_any_size():
    model = tiny().eval()
    images = torch.rand(1, 2, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images, cams.c2w, cams.K_norm)
    c2w = cams.c2w[:, [0, 1, 1]]
    out = model.render(scene, c2w, cams.K_norm[:, :1].expand(1, 3, 4), 24, 48)
    assert out.rgb.shape == (1, 3, 3, 24, 48) and torch.isfinite(out.depth).all()


def test_gradients_reach_pose_and_focal_through_the_rasterizer():
    model = tiny()
    images = torch.rand(1, 3, 3, 16, 16)
    batch = {"image": images}
    model.loss(model(batch, [0, 2], [1]), batch, None)["loss"].backward()
    last = model.camera_head.mlp[3]
    # Zero-initialised last layer: its weights get gradients for translation, rotation and the
    # FoV channel (only through the renders: nothing else reads the cameras).
    assert last.weight.grad[6:9].abs().sum() > 0  # translation
    assert last.weight.grad[:6].abs().sum() > 0  # rotation
    assert last.weight.grad[9].abs().sum() > 0  # FoV → focal
    assert model.depth_head.out.weight.grad.abs().sum() > 0


def test_tiny_nas3r_overfits_one_clip():
    """60 Adam steps on one 32 px orbit clip (3 context, 3 targets): the target PSNR rises by
    more than 3 dB and ends above a flat image of the inputs' mean colour."""
    torch.manual_seed(0)
    clip = render_clip(3, SynthConfig(family="orbit", frames=6, height=32, width=32))
    images = clip.images.unsqueeze(0)
    batch, inputs, targets = {"image": images}, [0, 2, 4], [1, 3, 5]
    model = NAS3R(NAS3RConfig(**{**TINY, "dim": 48, "num_heads": 4}))
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, betas=(0.9, 0.95))
    psnr = []
    for _ in range(60):
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

    tiny_cfg = load_config("nas3r-tiny-cpu")
    assert isinstance(tiny_cfg.model, NAS3RConfig)
    NAS3R(tiny_cfg.model)
    paper = load_config("nas3r-re10k")
    assert paper.model == NAS3RConfig.paper()
    assert (paper.data.image_size, paper.data.num_input_views, paper.data.num_target_views) == (
        224,
        2,
        1,
    )
    assert paper.data.image_size % paper.model.patch_size == 0
    with torch.device("meta"):
        n = sum(p.numel() for p in NAS3R(paper.model).parameters())
    assert 550e6 < n < 700e6  # 48 blocks at d 1024 (12.6 M each) + heads


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
def test_pair_input_reads_each_view_with_its_change_from_the_reference(views):
    """pair_input (our lever, default off): the patch embedding reads 6 channels,
    [view ‖ view − reference], the reference being the first input view; the reference stays
    at the identity and the Gaussian head's RGB skip still gets the plain pixels."""
    assert tiny().patch.proj.in_features == 3 * 8 * 8  # the release's layout by default
    model = tiny(pair_input=True).eval()
    assert model.patch.proj.in_features == 6 * 8 * 8
    randomise_heads(model)
    images = torch.rand(1, views, 3, 16, 24)
    inputs = list(range(views))[::-1][: max(1, views - 1)]  # reference = the last view
    targets = [i for i in range(views) if i not in inputs] or [0]
    reference = inputs[0]
    seen = {}
    hook = model.patch.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    out = model({"image": images}, inputs, targets)
    hook.remove()
    torch.testing.assert_close(out.cameras.c2w[0, reference], torch.eye(4), rtol=0, atol=0)
    torch.testing.assert_close(seen["x"][:, :, :3], images, rtol=0, atol=0)
    torch.testing.assert_close(
        seen["x"][:, :, 3:], images - images[:, reference : reference + 1], rtol=0, atol=0
    )
    # predict_cameras / reconstruct take view 0 as the reference
    hook = model.patch.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    model.predict_cameras(images)
    hook.remove()
    torch.testing.assert_close(seen["x"][:, :, 3:], images - images[:, :1], rtol=0, atol=0)


def test_pair_input_differences_each_sample_to_its_own_reference():
    """Training batches carry per-sample views, (B, Vi) input indices (the stream sorts each
    sample's own), so the references differ across the batch: each sample's views are
    differenced with its own first input view, and a target of one sample that is the other
    sample's reference still never reaches that sample's context outputs."""
    model = tiny(pair_input=True).eval()
    randomise_heads(model)
    images = torch.rand(2, 4, 3, 16, 24)
    inputs = torch.tensor([[1, 3], [0, 2]])  # references: view 1, view 0
    targets = torch.tensor([[0, 2], [1, 3]])  # each sample's reference is the other's target
    seen = {}
    hook = model.patch.register_forward_hook(lambda m, args, out: seen.update(x=args[0]))
    out = model({"image": images}, inputs, targets)
    hook.remove()
    own_reference = torch.stack((images[0, 1], images[1, 0]))[:, None]
    torch.testing.assert_close(seen["x"][:, :, 3:], images - own_reference, rtol=0, atol=0)
    changed = images.clone()
    for b in range(2):
        changed[b, targets[b]] = torch.rand_like(changed[b, targets[b]])
    out2 = model({"image": changed}, inputs, targets)
    for name in SCENE_FIELDS:
        torch.testing.assert_close(
            getattr(out2.scene, name), getattr(out.scene, name), atol=1e-5, rtol=0
        )
    for b in range(2):
        torch.testing.assert_close(out2.cameras.c2w[b, inputs[b]], out.cameras.c2w[b, inputs[b]])
