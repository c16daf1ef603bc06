"""Diagnostic: does the camera estimator's output stay image-dependent during supervised training?

Trains the RayZer camera estimator on (view, canonical) pairs with the rot6d + translation loss
and prints, before and after 400 steps, how much the input tokens, the camera token and the
predicted translation vary across 256 held-out samples, plus gradient norms on the way.
"""

import torch

from rayzer.geometry import matrix_to_rot6d
from rayzer.models import ModelConfig, RayZer

torch.set_num_threads(1)
torch.manual_seed(0)
train = torch.load("cache/orbitc_32_train.pt")
test = torch.load("cache/orbitc_32_test.pt")


def batch(data, n, gen):
    """(n, 2, 3, H, W) images [view, canonical] and their (n, 4, 4) relative poses."""
    num, frames = data["images"].shape[:2]
    clip = torch.randint(0, num, (n,), generator=gen)
    c = torch.randint(6, frames - 6, (n,), generator=gen)
    i = c + torch.randint(-5, 6, (n,), generator=gen)
    imgs = torch.stack((data["images"][clip, i], data["images"][clip, c]), 1).float() / 255
    return imgs, torch.linalg.inv(data["c2w"][clip, c]) @ data["c2w"][clip, i]


model = RayZer(
    ModelConfig(dim=128, num_heads=4, patch_size=8, cam_layers=3, scene_layers=1, dec_layers=1)
)
opt = torch.optim.Adam(model.parameters(), 1e-3)
gen = torch.Generator().manual_seed(0)
x_test, _ = batch(test, 256, torch.Generator().manual_seed(1))


def report(tag):
    with torch.no_grad():
        pos = torch.arange(2)[None].expand(256, -1)
        tokens = model.camera_input_tokens(x_test, pos)
        cams = model.predict_cameras(x_test)
    print(
        tag,
        f"input-token std {tokens.std(0).mean():.4f}",
        f"camera-token std {cams.tokens[:, 0].std(0).mean():.5f}",
        f"predicted t std {cams.c2w[:, 0, :3, 3].std(0).mean():.2e}",
    )


report("init")
for step in range(400):
    x, rel = batch(train, 32, gen)
    pred = model.predict_cameras(x).c2w[:, 0]
    rot = matrix_to_rot6d(pred[:, :3, :3]) - matrix_to_rot6d(rel[:, :3, :3])
    loss = rot.square().mean() + (pred[:, :3, 3] - rel[:, :3, 3]).square().mean()
    opt.zero_grad()
    loss.backward()
    if step % 100 == 0:
        watch = ("tokenizer.patch", "blocks.0.attn.qkv", "pose_head.2.weight")
        norms = {
            n: round(p.grad.norm().item(), 5)
            for n, p in model.named_parameters()
            if p.grad is not None and any(w in n for w in watch)
        }
        print(step, round(loss.item(), 3), norms)
    opt.step()
report("trained")
