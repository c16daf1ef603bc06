import dataclasses

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.geometry import axis_angle_to_matrix, make_c2w, matrix_to_rot6d, rotation_angle
from rayzer.models import RayZer
from rayzer.models.rayzer import compose_steps


@pytest.mark.parametrize("num_views", [2, 5, 9])
@pytest.mark.parametrize("hw", [(32, 32), (16, 40)])
def test_output_shapes_and_camera_invariants(tiny_cfg, num_views, hw):
    model = RayZer(tiny_cfg)
    h, w = hw
    images = torch.rand(2, num_views, 3, h, w)
    inp = torch.arange(0, num_views, 2)
    tgt = torch.arange(1, num_views, 2) if num_views > 2 else torch.tensor([1])
    out = model(images, inp, tgt)
    assert out.render.shape == (2, len(tgt), 3, h, w)
    assert out.render.min() >= 0 and out.render.max() <= 1
    c2w, K = out.cameras.c2w, out.cameras.K_norm
    assert c2w.shape == (2, num_views, 4, 4) and K.shape == (2, num_views, 4)
    c = num_views // 2
    assert out.cameras.canonical == c
    torch.testing.assert_close(c2w[:, c], torch.eye(4).expand(2, 4, 4))
    R = c2w[..., :3, :3]
    torch.testing.assert_close(
        R.transpose(-1, -2) @ R, torch.eye(3).expand_as(R), atol=1e-5, rtol=0
    )
    assert torch.allclose(torch.linalg.det(R), torch.ones(()), atol=1e-5)
    torch.testing.assert_close(
        c2w[..., 3, :], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(2, num_views, 4)
    )
    # one shared pixel focal: fx·W == fy·H, principal point at the centre
    torch.testing.assert_close(K[..., 0] * w, K[..., 1] * h)
    torch.testing.assert_close(K[..., 2:], torch.full_like(K[..., 2:], 0.5))
    assert torch.allclose(K[..., 0], K[:, :1, 0].expand_as(K[..., 0]))


def test_initial_cameras_are_near_identity_with_focal_init(tiny_cfg):
    model = RayZer(tiny_cfg)
    out = model(torch.rand(1, 6, 3, 16, 16), [0, 1, 2], [3, 4, 5])
    angles = torch.rad2deg(rotation_angle(out.cameras.c2w[..., :3, :3]))
    assert angles.max() < 2.0
    assert out.cameras.c2w[..., :3, 3].norm(dim=-1).max() < 0.05
    torch.testing.assert_close(
        out.cameras.K_norm[..., 0], torch.full((1, 6), tiny_cfg.focal_init), atol=0.02, rtol=0
    )


def test_gradients_reach_pose_and_focal_heads_through_renders(tiny_cfg):
    model = RayZer(tiny_cfg)
    images = torch.rand(2, 4, 3, 16, 16)
    out = model(images, [0, 2], [1, 3])
    loss = torch.nn.functional.mse_loss(out.render, images[:, [1, 3]])
    loss.backward()
    for head in (model.camera_estimator.pose_head, model.camera_estimator.focal_head):
        grad = head[2].weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert model.camera_estimator.cam_token.grad.abs().sum() > 0


def test_fixed_focal_option(tiny_cfg):
    model = RayZer(dataclasses.replace(tiny_cfg, learn_focal=False, focal_init=1.1))
    out = model(torch.rand(2, 3, 3, 16, 16), [0, 1], [2])
    torch.testing.assert_close(out.cameras.K_norm[..., 0], torch.full((2, 3), 1.1))
    assert model.camera_estimator.focal_head is None


def test_scene_never_sees_target_images(tiny_cfg):
    """With cameras fixed, changing target pixels must not change any render."""
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(1, 5, 3, 16, 16)
    fixed = model.predict_cameras(images)
    model.predict_cameras = lambda _images: fixed  # type: ignore[method-assign]
    out1 = model(images, [0, 2, 4], [1, 3])
    changed = images.clone()
    changed[:, [1, 3]] = torch.rand(1, 2, 3, 16, 16)
    out2 = model(changed, [0, 2, 4], [1, 3])
    torch.testing.assert_close(out1.render, out2.render)
    # …whereas input pixels do matter
    changed[:, 0] = torch.rand(3, 16, 16)
    assert not torch.allclose(model(changed, [0, 2, 4], [1, 3]).render, out1.render)


def test_renders_follow_the_target_camera(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images[:, :2], cams.c2w[:, :2], cams.K_norm[:, :2])
    moved = cams.c2w[:, 2:].clone()
    moved[..., 0, 3] += 0.5
    r1 = model.render(scene, cams.c2w[:, 2:], cams.K_norm[:, 2:], 16, 16)
    r2 = model.render(scene, moved, cams.K_norm[:, 2:], 16, 16)
    assert (r1 - r2).abs().max() > 1e-4


def test_batch_samples_are_independent(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(2, 4, 3, 16, 16)
    joint = model(images, [0, 1], [2, 3]).render
    alone = model(images[1:], [0, 1], [2, 3]).render
    torch.testing.assert_close(joint[1:], alone, atol=1e-5, rtol=1e-4)


def test_per_sample_view_splits(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(2, 4, 3, 16, 16)
    inp = torch.tensor([[0, 1], [2, 3]])
    tgt = torch.tensor([[2, 3], [0, 1]])
    out = model(images, inp, tgt)
    ref0 = model(images[:1], [0, 1], [2, 3]).render
    ref1 = model(images[1:], [2, 3], [0, 1]).render
    torch.testing.assert_close(out.render, torch.cat((ref0, ref1)), atol=1e-5, rtol=1e-4)


def test_view_count_is_not_tied_to_training(tiny_cfg):
    """A model used with 8 views runs unchanged with 3 and 21 views (no per-view tables)."""
    model = RayZer(tiny_cfg)
    n_params = sum(p.numel() for p in model.parameters())
    for v in (3, 8, 21):
        out = model(torch.rand(1, v, 3, 16, 16), list(range(0, v, 2)), list(range(1, v, 2)))
        assert torch.isfinite(out.render).all()
    assert sum(p.numel() for p in model.parameters()) == n_params
    state_keys = set(model.state_dict())
    assert not any("index" in k and "table" in k for k in state_keys)


def test_bad_inputs_raise_clear_errors(tiny_cfg):
    model = RayZer(tiny_cfg)
    with pytest.raises(ValueError, match="at least 2 views"):
        model(torch.rand(1, 1, 3, 16, 16), [0], [0])
    with pytest.raises(ValueError, match="not divisible"):
        model(torch.rand(1, 3, 3, 12, 16), [0], [1])
    with pytest.raises(ValueError, match=r"\(B, V, 3, H, W\)"):
        model(torch.rand(3, 3, 16, 16), [0], [1])
    with pytest.raises(ValueError, match="out of range"):
        model(torch.rand(1, 3, 3, 16, 16), [0], [5])


def test_config_validation(tiny_cfg):
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(tiny_cfg, dim=30, num_heads=4)
    with pytest.raises(ValueError, match=r"model\.name"):
        dataclasses.replace(tiny_cfg, name="nerf")
    with pytest.raises(ValueError, match=r"cam_pair_cnn_init_std"):
        dataclasses.replace(tiny_cfg, cam_pair_cnn_init_std=0.0)


def test_keep_input_tokens_extends_the_scene(tiny_cfg):
    model = RayZer(dataclasses.replace(tiny_cfg, keep_input_tokens=True, num_scene_tokens=0))
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images[:, :3], cams.c2w[:, :3], cams.K_norm[:, :3])
    assert scene.tokens.shape == (1, 3 * 4, tiny_cfg.dim)  # 3 views × 4 patches, no latent tokens
    out = model(images, [0, 1, 2], [3])
    assert out.render.shape == (1, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="num_scene_tokens"):
        dataclasses.replace(tiny_cfg, num_scene_tokens=0)


def test_pair_canonical_tokenizer_sees_the_canonical_view(tiny_cfg):
    images = torch.rand(1, 5, 3, 16, 16)
    changed = images.clone()
    changed[:, 2] = torch.rand(3, 16, 16)  # the canonical view (5 // 2)
    pos = torch.arange(5).unsqueeze(0)
    single = RayZer(tiny_cfg)
    # single-view tokens of view 0 ignore the canonical image …
    torch.testing.assert_close(
        single.camera_input_tokens(images, pos)[:, 0],
        single.camera_input_tokens(changed, pos)[:, 0],
    )
    # … pair tokens of view 0 already see it, before any attention
    model = RayZer(dataclasses.replace(tiny_cfg, cam_pair_canonical=True)).eval()
    a, b = model.camera_input_tokens(images, pos), model.camera_input_tokens(changed, pos)
    assert not torch.allclose(a[:, 0], b[:, 0])
    out = model(images, [0, 2, 4], [1, 3])
    assert out.render.shape == (1, 2, 3, 16, 16)
    torch.testing.assert_close(out.cameras.c2w[:, 2], torch.eye(4).unsqueeze(0))


def test_conv_stem_camera_tokenizer(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, cam_conv_stem=True, cam_pair_canonical=True)
    model = RayZer(cfg)
    out = model(torch.rand(1, 4, 3, 16, 24), [0, 1], [2, 3])
    assert out.render.shape == (1, 2, 3, 16, 24)
    out.render.mean().backward()
    assert model.cam_patch.net[0].weight.grad.abs().sum() > 0


def test_pooled_camera_readout(tiny_cfg):
    model = RayZer(dataclasses.replace(tiny_cfg, cam_readout="token+pool"))
    out = model(torch.rand(2, 4, 3, 16, 16), [0, 1], [2, 3])
    assert torch.isfinite(out.render).all() and out.cameras.tokens.shape == (2, 4, tiny_cfg.dim)
    with pytest.raises(ValueError, match="cam_readout"):
        dataclasses.replace(tiny_cfg, cam_readout="cls")


def test_alternating_camera_attention(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, cam_attention="alternating", cam_layers=2)
    out = RayZer(cfg)(torch.rand(2, 5, 3, 16, 16), [0, 2, 4], [1, 3])
    assert out.cameras.c2w.shape == (2, 5, 4, 4)
    with pytest.raises(ValueError, match="cam_attention"):
        dataclasses.replace(tiny_cfg, cam_attention="local")


def test_grid_readout_is_position_aware(tiny_cfg):
    from rayzer.models.rayzer import GridReadout

    torch.manual_seed(0)
    readout = GridReadout(tiny_cfg.dim)
    tokens = torch.rand(2, 3, 4, 6, tiny_cfg.dim)  # any grid, pooled to 4 × 4
    out = readout(tokens)
    assert out.shape == (2, 3, tiny_cfg.dim)
    # Moving content to another place changes the summary (a mean would not see it).
    moved = torch.roll(tokens, shifts=2, dims=3)
    assert torch.allclose(tokens.mean(dim=(2, 3)), moved.mean(dim=(2, 3)))
    assert not torch.allclose(readout(moved), out, atol=1e-4)


def test_correlation_tokens_and_grid_readout_in_rayzer(tiny_cfg):
    cfg = dataclasses.replace(tiny_cfg, cam_correlation=True, cam_readout="token+grid")
    model = RayZer(cfg)
    images = torch.rand(1, 4, 3, 16, 24)
    out = model(images, [0, 1], [2, 3])
    assert out.render.shape == (1, 2, 3, 16, 24)
    torch.testing.assert_close(out.cameras.c2w[:, 2], torch.eye(4).unsqueeze(0))
    out.render.mean().backward()
    assert model.cam_correlation.features.weight.grad.abs().sum() > 0
    assert model.camera_estimator.grid_readout.proj.weight.grad.abs().sum() > 0

    # The readout sees the tokens as the row-major (H/p, W/p) grid of the 16×24 image:
    # pooling 2×3 → 4×4 repeats each token along rows twice and along columns 4/3 times, which
    # a transposed (3×2) reading would not reproduce.
    readout = model.camera_estimator.grid_readout
    tokens = torch.rand(1, 1, 2 * 3, cfg.dim)
    expected = readout(tokens.unflatten(2, (2, 3)))
    seen = []
    handle = readout.register_forward_hook(lambda _m, args, _o: seen.append(args[0].shape))
    model.predict_cameras(images)
    handle.remove()
    assert seen == [(1, 4, 2, 3, cfg.dim)]
    assert not torch.allclose(expected, readout(tokens.unflatten(2, (3, 2))))


def test_unit_translation_fixes_the_scale_gauge():
    torch.manual_seed(0)
    model = RayZer(tiny_model_config(cam_unit_translation=True))
    cams = model.predict_cameras(torch.rand(3, 5, 3, 16, 16))
    centres = cams.c2w[..., :3, 3]  # (3, 5, 3)
    others = [i for i in range(5) if i != cams.canonical]
    torch.testing.assert_close(centres[:, others].norm(dim=-1).mean(1), torch.ones(3))
    torch.testing.assert_close(cams.c2w[:, cams.canonical], torch.eye(4).expand(3, 4, 4))


def test_focal_floor_is_smooth(tiny_cfg):
    """A raw focal far below the floor still gives a valid focal and a gradient back up (a
    clamped focal that reached the floor stayed there for good); normal values pass through."""
    from rayzer.models.rayzer import FOCAL_FLOOR

    model = RayZer(tiny_cfg)
    images = torch.rand(1, 3, 3, 16, 16)
    last = model.camera_estimator.focal_head[2]
    for raw, expect in ((-0.5, None), (1.25, 1.25), (0.8, 0.8)):
        with torch.no_grad():
            last.bias.fill_(raw - tiny_cfg.focal_init)
            last.weight.zero_()
        model.zero_grad()
        focal = model.predict_cameras(images).K_norm[..., 0]
        focal.sum().backward()
        if expect is None:
            assert (focal > FOCAL_FLOOR).all() and (focal < FOCAL_FLOOR + 0.01).all()
            assert last.bias.grad.abs().item() > 0  # not a dead clamp
        else:
            torch.testing.assert_close(focal, torch.full_like(focal, expect), atol=1e-3, rtol=0)


@pytest.mark.parametrize("unit", [False, True])
def test_translation_gain_scales_the_predicted_translations(tiny_cfg, unit):
    """Also with cam_unit_translation, whose rescaling must not undo the gain."""
    model = RayZer(dataclasses.replace(tiny_cfg, cam_unit_translation=unit, pose_head_init_std=0.1))
    images = torch.rand(1, 4, 3, 16, 16)
    t = {}
    for gain in (0.0, 0.5, 1.0):
        model.set_translation_gain(gain)
        t[gain] = model.predict_cameras(images).c2w[..., :3, 3]
    assert t[1.0].abs().max() > 1e-3
    torch.testing.assert_close(t[0.5], 0.5 * t[1.0])
    assert t[0.0].abs().max() == 0
    with pytest.raises(ValueError, match="gain"):
        model.set_translation_gain(1.5)


def _random_path(batch: int, views: int, canonical: int) -> torch.Tensor:
    """(B, V, 4, 4) random camera-to-world matrices relative to view ``canonical``."""
    path = make_c2w(
        axis_angle_to_matrix(0.4 * torch.randn(batch, views, 3)), torch.randn(batch, views, 3)
    )
    return torch.linalg.inv(path[:, canonical : canonical + 1]) @ path


@pytest.mark.parametrize("views", [2, 5, 8])
def test_compose_steps_inverts_the_steps_of_a_path(views):
    torch.manual_seed(0)
    c = views // 2
    path = _random_path(3, views, c)
    steps = torch.linalg.inv(path[:, :-1]) @ path[:, 1:]  # camera i + 1 in camera i's frame
    torch.testing.assert_close(compose_steps(steps, c), path, atol=1e-5, rtol=0)
    assert torch.equal(compose_steps(steps, c)[:, c], torch.eye(4).expand(3, 4, 4))


def test_chained_cameras_compose_one_step_per_view(tiny_cfg):
    """With cam_chain, a pose head that outputs the same step S for every pair puts view c + k
    at S^k and view c - k at S^-k (c: the canonical view)."""
    torch.manual_seed(0)
    model = RayZer(dataclasses.replace(tiny_cfg, cam_chain=True))
    head = model.camera_estimator.pose_head[2]
    step = make_c2w(
        axis_angle_to_matrix(torch.tensor([0.0, 0.2, 0.05])), torch.tensor([0.3, 0.0, 0.1])
    )
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(
            torch.cat(
                (matrix_to_rot6d(step[:3, :3]) - model.camera_estimator.identity_6d, step[:3, 3])
            )
        )
    cams = model.predict_cameras(torch.rand(2, 5, 3, 16, 16))
    for k in range(-2, 3):
        expected = torch.linalg.matrix_power(step, k)
        torch.testing.assert_close(cams.c2w[:, 2 + k], expected.expand(2, 4, 4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("chain", [False, True])
def test_pair_cnn_adds_an_image_path_to_the_poses(tiny_cfg, chain):
    """The pose CNN reads [view ‖ canonical] pairs (or [view i+1 ‖ view i] with cam_chain), its
    output moves the cameras, the canonical view stays the identity, and gradients reach it."""
    torch.manual_seed(0)
    model = RayZer(dataclasses.replace(tiny_cfg, cam_pair_cnn=True, cam_chain=chain))
    seen = []
    model.pose_cnn.features.register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    images = torch.rand(2, 5, 3, 16, 16)
    cams = model.predict_cameras(images)
    assert seen == [(2 * (4 if chain else 5), 6, 16, 16)]
    torch.testing.assert_close(cams.c2w[:, 2], torch.eye(4).expand(2, 4, 4))
    cams.c2w[..., :3, 3].sum().backward()
    assert model.pose_cnn.features[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        model.pose_cnn.head[-1].bias.add_(0.1)
    assert not torch.allclose(model.predict_cameras(images).c2w, cams.c2w.detach())
