"""Diagnostic: can a small CNN regress the signed relative yaw between a view and the canonical view?"""

import time

import torch
import torch.nn as nn

from rayzer.geometry import matrix_to_axis_angle

torch.set_num_threads(1)
torch.manual_seed(0)
tr = torch.load("cache/orbitc_32_train.pt")
te = torch.load("cache/orbitc_32_test.pt")


def batch(d, n, g):
    N, F = d["images"].shape[:2]
    clip = torch.randint(0, N, (n,), generator=g)
    c = torch.randint(6, F - 6, (n,), generator=g)
    off = torch.randint(-5, 6, (n,), generator=g)
    i = c + off
    a = d["images"][clip, i].float() / 255
    b = d["images"][clip, c].float() / 255
    rel = torch.linalg.inv(d["c2w"][clip, c]) @ d["c2w"][clip, i]
    yaw = matrix_to_axis_angle(rel[:, :3, :3])[:, 1]  # rotation about camera y (≈ vertical)
    return torch.cat((a, b), 1), torch.rad2deg(yaw)


net = nn.Sequential(
    nn.Conv2d(6, 32, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(32, 64, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(64, 64, 3, stride=2, padding=1),
    nn.ReLU(),
    nn.Conv2d(64, 128, 1),
    nn.Flatten(),
    nn.Linear(128 * 16, 128),
    nn.ReLU(),
    nn.Linear(128, 1),
)
opt = torch.optim.Adam(net.parameters(), 1e-3)
g = torch.Generator().manual_seed(0)
gt = torch.Generator().manual_seed(1)
xt, yt = batch(te, 512, gt)
print("test |yaw| median", yt.abs().median().item())
t0 = time.time()
for it in range(1501):
    x, y = batch(tr, 32, g)
    loss = (net(x).squeeze(1) - y / 10).square().mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if it % 250 == 0:
        with torch.no_grad():
            e = (net(xt).squeeze(1) * 10 - yt).abs()
        print(
            it,
            round(loss.item(), 3),
            "test median abs err",
            round(e.median().item(), 2),
            "sign acc",
            ((net(xt).squeeze(1) > 0) == (yt > 0)).float().mean().item(),
            round(time.time() - t0),
            flush=True,
        )
