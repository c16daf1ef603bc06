import torch

from rayzer.geometry import look_at
from rayzer.models import LVSM, CopyNearest, mean_of_inputs


def orbit_cameras(n: int, radius: float = 3.0) -> torch.Tensor:
    angles = torch.linspace(0, 1.5, n)
    eye = torch.stack(
        (radius * angles.cos(), radius * angles.sin(), torch.full_like(angles, 0.5)), -1
    )
    return look_at(eye, torch.zeros(n, 3), torch.tensor([0.0, 0.0, 1.0]).expand(n, 3))


def test_lvsm_shapes_and_dependence_on_true_cameras(tiny_cfg):
    model = LVSM(tiny_cfg).eval()
    images = torch.rand(2, 5, 3, 16, 24)
    c2w = orbit_cameras(5).expand(2, -1, -1, -1)
    K = torch.tensor([20.0, 20.0, 12.0, 8.0]).expand(2, 5, 4)
    out = model({"image": images, "c2w": c2w, "K": K}, [0, 2, 4], [1, 3]).render
    assert out.shape == (2, 2, 3, 16, 24)
    # target images are never read
    changed = images.clone()
    changed[:, [1, 3]] = 0
    torch.testing.assert_close(
        model({"image": changed, "c2w": c2w, "K": K}, [0, 2, 4], [1, 3]).render, out
    )
    # the target camera is
    moved = c2w.clone()
    moved[:, 1, :3, 3] += 0.3
    assert (model({"image": images, "c2w": moved, "K": K}, [0, 2, 4], [1, 3]).render - out)[
        :, 0
    ].abs().max() > 1e-5


def test_lvsm_gradients_reach_every_stage(tiny_cfg):
    model = LVSM(tiny_cfg)
    images = torch.rand(1, 4, 3, 16, 16)
    c2w = orbit_cameras(4).unsqueeze(0)
    K = torch.tensor([16.0, 16.0, 8.0, 8.0]).expand(1, 4, 4)
    model({"image": images, "c2w": c2w, "K": K}, [0, 1], [2, 3]).render.mean().backward()
    assert model.input_embed.proj.weight.grad.abs().sum() > 0
    assert model.reconstructor.scene_tokens.grad.abs().sum() > 0
    assert model.decoder.ray_embed.proj.weight.grad.abs().sum() > 0


def test_copy_nearest_by_frame_index():
    images = torch.arange(5.0).view(1, 5, 1, 1, 1).expand(1, 5, 3, 2, 2)
    frames = torch.tensor([[0, 10, 20, 30, 40]])
    out = CopyNearest()(images, [0, 4], [1, 3], frame_index=frames)
    assert out[0, :, 0, 0, 0].tolist() == [0.0, 4.0]
    # unequal spacing: frame 21 is nearer to 30 than to 0
    frames = torch.tensor([[0, 10, 21, 30, 40]])
    out = CopyNearest()(images, [0, 3], [2], frame_index=frames)
    assert out[0, 0, 0, 0, 0].item() == 3.0


def test_copy_nearest_by_pose_overrides_frame_order():
    images = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 3, 2, 2)
    c2w = orbit_cameras(4).unsqueeze(0).clone()
    # give target view 2 the pose of view 0 (slightly moved): by pose its nearest input is view 0
    c2w[:, 2] = c2w[:, 0]
    c2w[:, 2, :3, 3] += 0.01
    out = CopyNearest()(images, [0, 3], [2], c2w=c2w)
    assert out[0, 0, 0, 0, 0].item() == 0.0
    out = CopyNearest()(images, [0, 3], [2])
    assert out[0, 0, 0, 0, 0].item() == 3.0  # frame order alone: views 2 and 3 are adjacent


def test_mean_of_inputs():
    images = torch.rand(2, 4, 3, 5, 5)
    out = mean_of_inputs(images, [0, 2], 3)
    assert out.shape == (2, 3, 3, 5, 5)
    torch.testing.assert_close(out[:, 1], (images[:, 0] + images[:, 2]) / 2)
