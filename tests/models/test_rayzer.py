import dataclasses

import pytest
import torch

from _tiny import tiny_model_config
from rayzer.geometry import rotation_angle
from rayzer.models import RayZer


@pytest.mark.parametrize("num_views", [2, 5, 9])
@pytest.mark.parametrize("hw", [(32, 32), (16, 40)])
def test_output_shapes_and_camera_invariants(tiny_cfg, num_views, hw):
    model = RayZer(tiny_cfg)
    h, w = hw
    images = torch.rand(2, num_views, 3, h, w)
    inp = torch.arange(0, num_views, 2)
    tgt = torch.arange(1, num_views, 2) if num_views > 2 else torch.tensor([1])
    out = model({"image": images}, inp, tgt)
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
    out = model({"image": torch.rand(1, 6, 3, 16, 16)}, [0, 1, 2], [3, 4, 5])
    angles = torch.rad2deg(rotation_angle(out.cameras.c2w[..., :3, :3]))
    assert angles.max() < 2.0
    assert out.cameras.c2w[..., :3, 3].norm(dim=-1).max() < 0.05
    torch.testing.assert_close(
        out.cameras.K_norm[..., 0],
        torch.full((1, 6), tiny_cfg.camera.focal_init),
        atol=0.02,
        rtol=0,
    )


def test_gradients_reach_pose_and_focal_heads_through_renders(tiny_cfg):
    model = RayZer(tiny_cfg)
    images = torch.rand(2, 4, 3, 16, 16)
    out = model({"image": images}, [0, 2], [1, 3])
    loss = torch.nn.functional.mse_loss(out.render, images[:, [1, 3]])
    loss.backward()
    for head in (model.camera_estimator.pose_head, model.camera_estimator.focal_head):
        grad = head[2].weight.grad
        assert grad is not None and grad.abs().sum() > 0
    assert model.camera_estimator.cam_token.grad.abs().sum() > 0


def test_scene_never_sees_target_images(tiny_cfg):
    """With cameras fixed, changing target pixels must not change any render."""
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(1, 5, 3, 16, 16)
    fixed = model.predict_cameras(images)
    model.predict_cameras = lambda _images: fixed  # type: ignore[method-assign]
    out1 = model({"image": images}, [0, 2, 4], [1, 3])
    changed = images.clone()
    changed[:, [1, 3]] = torch.rand(1, 2, 3, 16, 16)
    out2 = model({"image": changed}, [0, 2, 4], [1, 3])
    torch.testing.assert_close(out1.render, out2.render)
    # …whereas input pixels do matter
    changed[:, 0] = torch.rand(3, 16, 16)
    assert not torch.allclose(model({"image": changed}, [0, 2, 4], [1, 3]).render, out1.render)


def test_renders_follow_the_target_camera(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images[:, :2], cams.c2w[:, :2], cams.K_norm[:, :2])
    moved = cams.c2w[:, 2:].clone()
    moved[..., 0, 3] += 0.5
    r1 = model.render(scene, cams.c2w[:, 2:], cams.K_norm[:, 2:], 16, 16).rgb
    r2 = model.render(scene, moved, cams.K_norm[:, 2:], 16, 16).rgb
    assert (r1 - r2).abs().max() > 1e-4


def test_batch_samples_are_independent(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(2, 4, 3, 16, 16)
    joint = model({"image": images}, [0, 1], [2, 3]).render
    alone = model({"image": images[1:]}, [0, 1], [2, 3]).render
    torch.testing.assert_close(joint[1:], alone, atol=1e-5, rtol=1e-4)


def test_per_sample_view_splits(tiny_cfg):
    model = RayZer(tiny_cfg).eval()
    images = torch.rand(2, 4, 3, 16, 16)
    inp = torch.tensor([[0, 1], [2, 3]])
    tgt = torch.tensor([[2, 3], [0, 1]])
    out = model({"image": images}, inp, tgt)
    ref0 = model({"image": images[:1]}, [0, 1], [2, 3]).render
    ref1 = model({"image": images[1:]}, [2, 3], [0, 1]).render
    torch.testing.assert_close(out.render, torch.cat((ref0, ref1)), atol=1e-5, rtol=1e-4)


def test_view_count_is_not_tied_to_training(tiny_cfg):
    """A model used with 8 views runs unchanged with 3 and 21 views (no per-view tables)."""
    model = RayZer(tiny_cfg)
    n_params = sum(p.numel() for p in model.parameters())
    for v in (3, 8, 21):
        out = model(
            {"image": torch.rand(1, v, 3, 16, 16)}, list(range(0, v, 2)), list(range(1, v, 2))
        )
        assert torch.isfinite(out.render).all()
    assert sum(p.numel() for p in model.parameters()) == n_params
    state_keys = set(model.state_dict())
    assert not any("index" in k and "table" in k for k in state_keys)


def test_bad_inputs_raise_clear_errors(tiny_cfg):
    model = RayZer(tiny_cfg)
    with pytest.raises(ValueError, match="at least 2 views"):
        model({"image": torch.rand(1, 1, 3, 16, 16)}, [0], [0])
    with pytest.raises(ValueError, match="not divisible"):
        model({"image": torch.rand(1, 3, 3, 12, 16)}, [0], [1])
    with pytest.raises(ValueError, match=r"\(B, V, 3, H, W\)"):
        model({"image": torch.rand(3, 3, 16, 16)}, [0], [1])
    with pytest.raises(ValueError, match="out of range"):
        model({"image": torch.rand(1, 3, 3, 16, 16)}, [0], [5])


def test_config_validation(tiny_cfg):
    with pytest.raises(ValueError, match="divisible"):
        dataclasses.replace(tiny_cfg, dim=30, num_heads=4)
    with pytest.raises(ValueError, match=r"model\.name must be one of"):
        tiny_model_config(name="nerf")
    with pytest.raises(ValueError, match=r"sense\.mirror"):
        tiny_model_config(sense_mirror="sometimes")
    # a deleted switch: accepted at its old default (old configs), refused otherwise
    assert tiny_model_config(cam_chain=False) == tiny_cfg
    with pytest.raises(ValueError, match=r"cam_chain.*removed"):
        tiny_model_config(cam_chain=True)


def test_keep_input_tokens_extends_the_scene(tiny_cfg):
    model = RayZer(tiny_model_config(keep_input_tokens=True, num_scene_tokens=0))
    images = torch.rand(1, 4, 3, 16, 16)
    cams = model.predict_cameras(images)
    scene = model.reconstruct(images[:, :3], cams.c2w[:, :3], cams.K_norm[:, :3])
    assert scene.tokens.shape == (1, 3 * 4, tiny_cfg.dim)  # 3 views × 4 patches, no latent tokens
    out = model({"image": images}, [0, 1, 2], [3])
    assert out.render.shape == (1, 1, 3, 16, 16)
    with pytest.raises(ValueError, match="num_tokens"):
        tiny_model_config(num_scene_tokens=0)


def test_focal_floor_is_smooth(tiny_cfg):
    """A raw focal far below the floor still gives a valid focal and a gradient back up (a
    clamped focal that reached the floor stayed there for good); normal values pass through."""
    from rayzer.models.camera import FOCAL_FLOOR

    model = RayZer(tiny_cfg)
    images = torch.rand(1, 3, 3, 16, 16)
    last = model.camera_estimator.focal_head[2]
    for raw, expect in ((-0.5, None), (1.25, 1.25), (0.8, 0.8)):
        with torch.no_grad():
            last.bias.fill_(raw - tiny_cfg.camera.focal_init)
            last.weight.zero_()
        model.zero_grad()
        focal = model.predict_cameras(images).K_norm[..., 0]
        focal.sum().backward()
        if expect is None:
            assert (focal > FOCAL_FLOOR).all() and (focal < FOCAL_FLOOR + 0.01).all()
            assert last.bias.grad.abs().item() > 0  # not a dead clamp
        else:
            torch.testing.assert_close(focal, torch.full_like(focal, expect), atol=1e-3, rtol=0)
